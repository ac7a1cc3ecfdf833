"""A first cycle decides on the records it stored without reading them back (cycle/kept.py):
the threads and decisions must be exactly those the file gives, whatever was written
between the sync and the evaluation."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable
from contextlib import suppress
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nudger.config.model import DEFAULT_RULE, Account
from nudger.core.ledger import Ledger
from nudger.core.parse import parse_record
from nudger.core.plan import decide
from nudger.core.record import MessageRecord
from nudger.core.threads import Thread
from nudger.cycle.cycle import threads_of
from nudger.cycle.kept import Kept
from nudger.cycle.state import State
from support.harness import Box, by_subject, make_box, text
from support.mail import ME, NOW, days_ago, message

FOLDERS = ("INBOX", "Sent", "Work")  # watched; Archive is not
BOB = "bob@client.example"


def rec(mid: str, folder: str, uid: int, sender: str = ME, days: float = 6, flags: tuple[str, ...] = (),
        **kw: Any) -> MessageRecord:
    return parse_record(message(mid, sender=sender, date=days_ago(days), **kw), folder=folder,
                        uid=uid, keywords=flags)


def shape(threads: list[Thread]) -> list[tuple[object, ...]]:
    """Everything of the threads, in their order (``Thread`` compares only key and messages)."""
    return [(t.key, t.messages, t.folders, t.ancestors, t.sent) for t in threads]


def both_ways(state: State) -> tuple[list[Thread], list[Thread]]:
    """The whole window's threads as the first cycle reads them (kept), and from the file."""
    seeds = state.ours_since("a", [ME], days_ago(30))
    kept = list(threads_of(state, "a", seeds, FOLDERS, "Sent", whole_window=True))
    state.kept = None
    return kept, list(threads_of(state, "a", seeds, FOLDERS, "Sent", whole_window=True))


def verdicts(state: State) -> dict[str, str]:
    """Each thread's decision (status: reason) on what the state holds now."""
    account = Account("a", "imap.example.com", 993, "implicit", ME, None, (ME,), ZoneInfo("UTC"))
    seeds = state.ours_since("a", [ME], days_ago(30))
    result = {}
    for thread in threads_of(state, "a", seeds, FOLDERS, "Sent", whole_window=True):
        d = decide(thread, account, (DEFAULT_RULE,), Ledger(), NOW)
        if d is not None:
            result[d.subject] = f"{d.status}: {d.reason}"
    return result


# -- the same threads, in the same order, whatever the writes ----------------------------------

_op = st.one_of(
    # put: (message n, folder, uid, its parent, a flag): a (folder, uid) taken again is replaced
    st.tuples(st.just("put"), st.integers(0, 12), st.sampled_from(["INBOX", "Sent", "Work", "Archive"]),
              st.integers(1, 8), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("drop"), st.sampled_from(["INBOX", "Sent", "Work"]), st.integers(1, 8)),
    st.tuples(st.just("forget"), st.sampled_from(["INBOX", "Work", "Archive"])),
    st.tuples(st.just("flag"), st.sampled_from(["INBOX", "Sent", "Work"]), st.integers(1, 8)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_op, min_size=1, max_size=40))
# A copy stored again comes after the other copies, as its new row does in the file.
@example([("put", 0, "Sent", 1, 0, True), ("put", 1, "INBOX", 1, 0, False),
          ("put", 1, "Work", 2, 0, False), ("put", 1, "INBOX", 1, 0, False)])
def test_kept_records_give_the_threads_the_file_gives(ops: list[tuple[Any, ...]]) -> None:
    state = State.memory()
    with state.keeping_records("a"):
        for op in ops:
            with state.transaction():
                if op[0] == "put":
                    _, n, folder, uid, parent, mine = op
                    sender = ME if mine or folder == "Sent" else BOB
                    state.put_records("a", [rec(f"m{n}@x", folder, uid, sender=sender, days=n % 7,
                                                reply_to=f"m{parent}@x" if parent != n else None)])
                    state.put_records("b", [rec(f"m{n}@x", "INBOX", uid)])  # another account's
                elif op[0] == "drop":
                    state.drop_records("a", op[1], [op[2]])
                elif op[0] == "forget":
                    state.forget_folder("a", op[1])
                else:
                    state.set_keywords("a", op[1], {op[2]: ("$NoNudge",)})
        assert state.kept is not None  # (the premise: the first cycle's path was taken)
        kept, stored = both_ways(state)
    assert shape(kept) == shape(stored)


# -- a record changed between the sync and the evaluation: decided on the new one ---------------

Change = Callable[[State], None]
# What changes, whether the thread had a reply before, and the decision after.
CHANGES: dict[str, tuple[Change, bool, str]] = {
    "marked $NoNudge": (lambda s: s.set_keywords("a", "Sent", {1: ("$NoNudge",)}), False,
                        "excluded: marked $NoNudge (Sent)"),
    "stored again, marked": (lambda s: s.put_records("a", [rec("p@x", "Sent", 1, to=BOB, subject="Plan",
                                                                flags=("$NoNudge",))]), False,
                             "excluded: marked $NoNudge (Sent)"),
    "the reply dropped": (lambda s: s.drop_records("a", "INBOX", [7]), True, "due: no reply yet"),
    "its folder forgotten": (lambda s: s.forget_folder("a", "INBOX"), True, "due: no reply yet"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_record_changed_after_the_sync_is_decided_as_changed(change: str) -> None:
    do, replied, expected = CHANGES[change]
    state = State.memory()
    with state.keeping_records("a"):
        with state.transaction():
            state.put_records("a", [rec("p@x", "Sent", 1, to=BOB, subject="Plan")])
            if replied:
                state.put_records("a", [rec("r@x", "INBOX", 7, sender=BOB, days=5, to=ME,
                                            subject="Re: Plan", reply_to="p@x")])
        assert verdicts(state)["Plan"].startswith("replied" if replied else "due")
        with state.transaction():
            do(state)
        assert verdicts(state)["Plan"].startswith(expected)


def test_a_write_undone_is_not_decided_on() -> None:
    state = State.memory()
    with state.keeping_records("a"):
        with state.transaction():
            state.put_records("a", [rec("p@x", "Sent", 1, to=BOB, subject="Plan")])
        with suppress(RuntimeError), state.transaction():  # (a write that failed halfway)
            state.put_records("a", [rec("r@x", "INBOX", 7, sender=BOB, days=5, to=ME,
                                        subject="Re: Plan", reply_to="p@x")])
            raise RuntimeError
        assert verdicts(state)["Plan"].startswith("due")


def test_a_state_with_mail_already_is_read_from_the_file() -> None:
    """Only an account with nothing stored is kept: other rows would be missing from memory."""
    state = State.memory()
    with state.transaction():
        state.put_records("a", [rec("p@x", "Sent", 1, to=BOB, subject="Plan")])
    with state.keeping_records("a"):
        with state.transaction():
            state.put_records("a", [rec("q@x", "Sent", 2, to=BOB, subject="Quote")])
        assert set(verdicts(state)) == {"Plan", "Quote"}
    links_only = State.memory()  # (a folder forgotten leaves its links: they join threads)
    with links_only.transaction():
        links_only.put_records("a", [rec("r@x", "INBOX", 7, sender=BOB, to=ME, reply_to="p@x")])
        links_only.forget_folder("a", "INBOX")
    with links_only.keeping_records("a"):
        assert links_only.kept is None


# -- a first cycle, against the server: the same decisions and drafts either way ----------------


def _first_cycle(box: Box, tmp_path: Path, keep: list[int]) -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
    ours = [uid for uid in box.raw("Drafts") if uid not in keep]
    if ours:  # (none: delete_drafts would take them all)
        box.delete_drafts(ours)
    decisions = box.run()
    assert box.last_code == 0, box.last_err
    drafts = sorted((str(d["Message-ID"]), str(d["Subject"]), str(d["To"]), str(d["In-Reply-To"]),
                     str(d["References"]), str(d["X-Nudger-For"]), text(d)) for d in box.drafts())
    return decisions, drafts


@pytest.mark.imap
def test_a_first_cycle_decides_and_drafts_alike_from_memory_and_from_the_file(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    me = f"Mia Example <{box.user}>"
    box.seed("Sent", message("p1@example.com", sender=me, subject="Proposal", date=days_ago(6)),
             message("p2@example.com", sender=me, subject="Quote", date=days_ago(6)),
             message("p3@example.com", sender=me, subject="Budget", date=days_ago(1)))
    box.seed("INBOX", message("r2@client.example", sender=BOB, to=box.user, subject="Re: Quote",
                              date=days_ago(5), reply_to="p2@example.com"))
    box.seed("Archive", message("r2@client.example", sender=BOB, to=box.user, subject="Re: Quote",
                                date=days_ago(5), reply_to="p2@example.com"))
    # The user's own draft of an answer: read (Drafts is), but no part of any thread.
    keep = box.seed("Drafts", message("d1@example.com", sender=me, subject="Re: Proposal",
                                      date=days_ago(2), reply_to="p1@example.com"))
    # The corpus, each message answered by the user: every kind of mail in a thread of theirs.
    ours = []
    for n, path in enumerate(sorted(corpus.rglob("*.eml"))):
        raw = path.read_bytes()
        box.seed("Archive" if n % 3 == 0 else "INBOX", raw)
        mid = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["Message-ID"]
        if mid:
            ours.append(message(f"c{n}@example.com", sender=me, subject=f"Re: corpus {n}",
                                date=days_ago(4 + n % 5), reply_to=str(mid).strip("<> \t\r\n")))
    box.seed("Sent", *ours)
    calls = []
    groups = Kept.groups
    monkeypatch.setattr(Kept, "groups", lambda self, *a: calls.append(1) or groups(self, *a))
    from_memory = _first_cycle(box, tmp_path, keep)
    assert calls  # (the premise: that cycle read its records from memory)
    monkeypatch.setattr("nudger.cycle.kept.KEPT_CAP", 0)  # (over the cap: read from the file)
    calls.clear()
    from_file = _first_cycle(box, tmp_path, keep)
    assert not calls
    assert len(from_memory[1]) == 25 + 1  # (max_new_drafts: the oldest due, the same ones)
    assert by_subject(from_memory[0])["Proposal"]["status"] == "due"
    assert from_memory == from_file


def test_one_account_keeps_its_records_at_a_time_and_the_collector_is_itself_again_after() -> None:
    """A service runs many accounts' first cycles at once: one keeps its records (200
    would hold gigabytes), the others read theirs back from the file; the full
    collector, resting meanwhile, is back when it ends, also by an error or over the cap,
    and the next first cycle may keep again."""
    assert gc.isenabled()
    one, two = State.memory(), State.memory()
    with one.keeping_records("a"):
        with two.keeping_records("b"):
            assert one.kept is not None and two.kept is None
            assert not gc.isenabled()
        assert one.kept is not None and not gc.isenabled()
    assert gc.isenabled()
    with suppress(RuntimeError), one.keeping_records("a"):
        raise RuntimeError
    assert gc.isenabled()
    with two.keeping_records("b"):
        assert two.kept is not None
        two.stop_keeping()  # (as over the cap, a rollback or a prune)
        assert gc.isenabled()
        with one.keeping_records("a"):
            assert one.kept is not None  # (the place is free again)
    assert gc.isenabled()



@pytest.mark.parametrize("threads", [1, 2])
def test_a_process_of_one_thread_freezes_what_it_kept_and_a_service_does_not(
        threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """run --once ends soon after its first cycle: what it still holds is frozen, never
    walked by the collector again; the service (an account a thread) walks it as ever."""
    from nudger.cycle import kept

    monkeypatch.setattr(kept.threading, "active_count", lambda: threads)
    before = gc.get_freeze_count()
    state = State.memory()
    try:
        with state.keeping_records("a"):
            with state.transaction():
                state.put_records("a", [rec("p@x", "Sent", 1, to=BOB, subject="Plan")])
        assert gc.isenabled()
        assert (gc.get_freeze_count() > before) == (threads == 1)
    finally:
        gc.unfreeze()
