"""A big sync's headers parsed in a helper process on the second core (cycle/parsing.py):
what is stored, decided and drafted is what the in-process parse gives, a helper that
fails costs a warning and nothing else, and none is left running."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nudger.cycle import parsing, sync
from nudger.cycle.statefile import FILE_NAME
from nudger.errors import FolderUnavailable
from support.dovecot import Dovecot
from support.harness import Box, make_box
from support.mail import ME, days_ago, message

pytestmark = pytest.mark.imap

WARNING = "the header parser on the second core stopped"


@pytest.fixture
def twins(dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> tuple[Box, Box]:
    """Two mailboxes of the same mail, for the same person (ME): one synced in-process,
    one through the helper. Small chunks and batches: many of each, and both sides parse."""
    boxes = []
    for name in ("here", "helper"):
        (tmp_path / name).mkdir()
        boxes.append(make_box(dovecot, dovecot.take_user(), tmp_path / name, capsys, monkeypatch,
                              identities=[ME]))
    monkeypatch.setattr(sync, "CHUNK", 16)
    monkeypatch.setattr(parsing, "BATCH", 5)
    monkeypatch.setattr(parsing, "AHEAD", 2)
    return boxes[0], boxes[1]


class Spy:
    """The helpers a run started: their PIDs, and how many headers each parsed. With
    ``ready``, a sync goes on once its helper is ready (or gone): on mail this small, one
    still starting would have nothing left to parse."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, ready: bool = True):
        self.started: list[parsing.HelperParser] = []
        self.pids: list[int] = []
        self.answered: list[int] = []
        real_init, real_close = parsing.HelperParser.__init__, parsing.HelperParser.close

        def init(parser: parsing.HelperParser, name: str, **kw: Any) -> None:
            real_init(parser, name, **kw)
            self.started.append(parser)
            if parser.pid is not None:
                self.pids.append(parser.pid)
            while ready and parser.proc is not None and not parser.ready:
                parser.pump(wait=True)

        def close(parser: parsing.HelperParser) -> None:
            self.answered.append(parser.answered)
            real_close(parser)

        monkeypatch.setattr(parsing.HelperParser, "__init__", init)
        monkeypatch.setattr(parsing.HelperParser, "close", close)


def _mail(corpus: Path | None) -> dict[str, list[tuple[bytes, Any]]]:
    sent = [message(f"out{i}@example.com", sender=ME, to=f"client{i % 7}@client.example",
                    subject=f"Proposal {i}", date=days_ago(10 - i / 10)) for i in range(40)]
    inbox = [message(f"re{i}@client.example", sender=f"client{i % 7}@client.example", to=ME,
                     subject=f"Re: Proposal {i}", date=days_ago(5), reply_to=f"out{i}@example.com")
             for i in range(0, 40, 3)]
    inbox += [message(f"bare{i}@client.example", sender=f"client{i % 7}@client.example", to=ME,
                      subject=f"Re: Proposal {i}", date=days_ago(4)) for i in range(1, 40, 5)]
    inbox += [message("", sender="odd@client.example", to=ME, subject="no id", date=days_ago(3))]
    folders: dict[str, list[tuple[bytes, Any]]] = {
        "Sent": [(m, days_ago(9)) for m in sent], "INBOX": [(m, days_ago(3)) for m in inbox]}
    if corpus is not None:  # (their dates are old: their arrival is in the window)
        folders["INBOX"] += [(p.read_bytes(), days_ago(2)) for p in sorted(corpus.rglob("*.eml"))]
    return folders


def _seed(box: Box, folders: dict[str, list[tuple[bytes, Any]]]) -> None:
    for folder, messages in folders.items():
        box.dovecot.seed(box.user, folder, [(m, ("\\Seen",), when) for m, when in messages])


def _records(box: Box) -> list[tuple[Any, ...]]:
    """What the state file holds of the messages: their rows, links and calendar entries."""
    db = sqlite3.connect(box.config.parent / "state" / FILE_NAME)
    try:
        return [*db.execute("SELECT folder, uid, message_id, sender, date, topic, record"
                            " FROM messages ORDER BY folder, uid"),
                *db.execute("SELECT child, parent FROM links ORDER BY child, parent"),
                *db.execute("SELECT folder, uid, ical_uid FROM calendar ORDER BY folder, uid")]
    finally:
        db.close()


def _seen(box: Box, helper_from: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One first cycle: its decisions, drafts, stored records and warnings."""
    monkeypatch.setattr(sync, "HELPER_FROM", helper_from)
    decisions = box.run()
    assert box.last_code == 0, box.last_err
    drafts = sorted((str(d["Subject"]), str(d["To"]), str(d["In-Reply-To"]), d.get_content())
                    for d in box.drafts())
    return {"decisions": decisions, "drafts": drafts, "records": _records(box), "err": box.last_err}


def _alone_first(twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch) -> tuple[Box, dict[str, Any]]:
    """The twins seeded alike, and what the first one's cycle saw, parsed in-process."""
    here, helper = twins
    for box in twins:
        _seed(box, _mail(None))
    return helper, _seen(here, 10**9, monkeypatch)


def _same(here: dict[str, Any], there: dict[str, Any]) -> None:
    assert there["records"] == here["records"]
    assert there["decisions"] == here["decisions"]
    assert there["drafts"] == here["drafts"]


@pytest.mark.parametrize("with_corpus", [False, True], ids=["seeded", "corpus"])
def test_a_sync_through_the_helper_stores_decides_and_drafts_what_one_in_process_does(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
        with_corpus: bool) -> None:
    corpus = request.getfixturevalue("corpus") if with_corpus else None
    here, helper = twins
    for box in twins:
        _seed(box, _mail(corpus))
    spy = Spy(monkeypatch)
    alone = _seen(here, 10**9, monkeypatch)
    assert not spy.started  # (the in-process path: no process)
    shared = _seen(helper, 1, monkeypatch)
    assert len(spy.pids) == 1 and spy.answered[0] > 0  # (the helper did parse)
    assert alone["drafts"] and alone["records"]
    _same(alone, shared)
    assert WARNING not in shared["err"]


def _kill_after(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    real_send = parsing.HelperParser._send
    count = 0

    def send(parser: parsing.HelperParser, batch: Any) -> None:
        nonlocal count
        real_send(parser, batch)
        count += 1
        if count == batches and parser.pid is not None:
            os.kill(parser.pid, signal.SIGKILL)

    monkeypatch.setattr(parsing.HelperParser, "_send", send)


@pytest.mark.parametrize("fault", ["killed", "garbage", "absent"])
def test_a_helper_that_dies_answers_garbage_or_never_starts_costs_one_warning_and_nothing_else(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    helper, alone = _alone_first(twins, monkeypatch)
    spy = Spy(monkeypatch)
    if fault == "killed":
        _kill_after(monkeypatch, 3)  # (mid-sync: some batches answered, some not)
    elif fault == "garbage":
        monkeypatch.setattr(parsing, "COMMAND", (
            "-c", "import sys\nsys.stdout.buffer.write(bytes(8) + b'x' * 64); sys.stdout.flush()\n"
            "while sys.stdin.buffer.read(8):"
            " sys.stdout.buffer.write(bytes(8) + b'x' * 64); sys.stdout.flush()"))
    else:
        monkeypatch.setattr(parsing.sys, "executable", "/nonexistent/python")
    shared = _seen(helper, 1, monkeypatch)
    _same(alone, shared)
    assert shared["err"].count(WARNING) == 1, shared["err"]
    _no_helper_left(spy)


def test_a_helper_still_starting_holds_nothing_up(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch) -> None:
    # Its imports take a tenth of a second or more: meanwhile the headers are parsed
    # here, none sent to wait in its pipe (a helper that never gets going costs nothing).
    helper, alone = _alone_first(twins, monkeypatch)
    spy = Spy(monkeypatch, ready=False)
    monkeypatch.setattr(parsing, "STALL", 2.0)
    monkeypatch.setattr(parsing, "COMMAND", ("-c", "import time; time.sleep(30)"))
    shared = _seen(helper, 1, monkeypatch)
    _same(alone, shared)
    assert WARNING not in shared["err"], shared["err"]
    assert len(spy.pids) == 1 and spy.answered == [0]
    _no_helper_left(spy)


def test_a_folder_refused_mid_stream_keeps_the_same_records_through_the_helper(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch) -> None:
    # The server refuses INBOX after 20 of its 23 headers (CHUNK 16: one chunk whole, one
    # cut): the chunks read whole are kept, as in-process, and the folder is tried again.
    real_of = sync._Batches.of

    def refused(batches: Any, folder: str) -> Any:
        for n, item in enumerate(real_of(batches, folder)):
            if folder == "INBOX" and n == 20:
                raise FolderUnavailable("INBOX", "the server refused it", detail="NO refused")
            yield item

    monkeypatch.setattr(sync._Batches, "of", refused)
    helper, alone = _alone_first(twins, monkeypatch)
    shared = _seen(helper, 1, monkeypatch)
    assert "skipped 'INBOX' this cycle" in shared["err"]
    assert sum(1 for r in shared["records"] if r[0] == "INBOX") == 16
    _same(alone, shared)


def test_a_stray_module_in_the_working_directory_never_runs_in_the_helper(
        box_small: Box, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # python -m puts the current directory first on the path: a struct.py (or email.py)
    # left in it would run in the helper, as the user.
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    (cwd / "struct.py").write_text(f"open({str(cwd / 'ran')!r}, 'w').close()\nraise SystemExit(3)\n")
    monkeypatch.chdir(cwd)
    spy = Spy(monkeypatch)
    monkeypatch.setattr(sync, "HELPER_FROM", 10)
    box_small.seed("Sent", *[message(f"s{i}@example.com", sender=ME, date=days_ago(2)) for i in range(12)])
    box_small.run()
    assert box_small.last_code == 0 and WARNING not in box_small.last_err
    assert not (cwd / "ran").exists() and spy.answered == [12]


def _children() -> list[int]:
    """This process's children, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _no_helper_left(spy: Spy) -> None:
    for pid in spy.pids:
        assert not Path(f"/proc/{pid}").exists(), f"helper {pid} left behind"
    assert not set(spy.pids) & set(_children())


def test_no_helper_remains_after_a_run_even_one_interrupted(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch) -> None:
    here, helper = twins
    for box in twins:
        _seed(box, _mail(None))
    spy = Spy(monkeypatch)
    _seen(here, 1, monkeypatch)
    assert len(spy.pids) == 1
    _no_helper_left(spy)
    calls = 0
    real = sync._link_by_subject

    def interrupted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sync, "_link_by_subject", interrupted)
    helper.run()
    assert helper.last_code == 130 and len(spy.pids) == 2
    _no_helper_left(spy)


def test_a_small_read_starts_no_process(box_small: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    box_small.seed("Sent", *[message(f"s{i}@example.com", sender=ME, date=days_ago(2)) for i in range(12)])
    box_small.run()
    assert box_small.last_code == 0
    box_small.seed("INBOX", message("r@client.example", sender="bob@client.example", to=ME,
                                    subject="Re: Proposal", reply_to="s1@example.com"))
    box_small.run()
    assert not spy.started


def test_helpers_at_once_are_one_per_spare_core(box_small: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    # A service whose 200 accounts start their first cycle together must not start 200
    # processes: with the spare core's helper busy (another account's), this sync parses
    # in its own process, and the next one, the core free again, has a helper.
    spy = Spy(monkeypatch)
    monkeypatch.setattr(sync, "HELPER_FROM", 10)
    monkeypatch.setattr(parsing, "_SLOTS", parsing.threading.BoundedSemaphore(1))
    box_small.seed("Sent", *[message(f"s{i}@example.com", sender=ME, date=days_ago(2)) for i in range(12)])
    assert parsing._SLOTS.acquire(blocking=False)  # (another account's sync holds it)
    box_small.run()
    assert box_small.last_code == 0 and not spy.started
    parsing._SLOTS.release()
    box_small.seed("Sent", *[message(f"t{i}@example.com", sender=ME, date=days_ago(1)) for i in range(12)])
    box_small.run()
    assert box_small.last_code == 0 and len(spy.pids) == 1 and spy.answered == [12]
    assert parsing._SLOTS.acquire(blocking=False)  # (given back when its sync ended)


@pytest.fixture
def box_small(dovecot: Dovecot, imap_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> Box:
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, identities=[ME])


def test_the_spare_cores_are_counted_where_the_system_cannot_tell_its_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # macOS has no sched_getaffinity, and a unit's system call filter may refuse it: the
    # host's count then, never an error at import (it would stop every sync).
    monkeypatch.setattr(parsing.os, "cpu_count", lambda: 8)
    monkeypatch.delattr(parsing.os, "sched_getaffinity")
    assert parsing._cores() == 8

    def refused(pid: int) -> set[int]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(parsing.os, "sched_getaffinity", refused, raising=False)
    assert parsing._cores() == 8


def test_a_helper_of_other_code_than_its_parents_parses_nothing(
        twins: tuple[Box, Box], monkeypatch: pytest.MonkeyPatch) -> None:
    # An upgrade in place under a running service: the helper it starts next imports the
    # new code, whose records may have another shape. It declines; all is parsed here.
    helper, alone = _alone_first(twins, monkeypatch)
    spy = Spy(monkeypatch)
    monkeypatch.setattr(parsing, "stamp", lambda: "0.0.older.00000000")
    shared = _seen(helper, 1, monkeypatch)
    _same(alone, shared)
    assert shared["err"].count(WARNING) == 1 and "exit code 3" in shared["err"], shared["err"]
    assert len(spy.pids) == 1 and set(spy.answered) == {0}  # (it parsed none)
    _no_helper_left(spy)
