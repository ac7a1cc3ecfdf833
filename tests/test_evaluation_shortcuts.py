"""The shortcuts a first cycle's evaluation takes (a message of one copy, a record's
parents worked out once, a reason's date written without strftime) give exactly what
the long way gives."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from nudger.config.model import DEFAULT_TEMPLATE, Account, Rule, Stage
from nudger.core.durations import Delay
from nudger.core.ledger import DRAFTED, SENT, Fate, Ledger, LedgerEntry, nudge_message_id
from nudger.core.parse import parse_record
from nudger.core.plan import Status, decide
from nudger.core.record import MessageRecord
from nudger.core.threads import Thread, build_threads
from nudger.core.words import day, day_and_time, weekday_and_day
from support.mail import ME, NOW, days_ago, message

BOB = "bob@client.example"


def shape(threads: list[Thread]) -> list[tuple[object, ...]]:
    """Everything of the threads, in their order (``Thread`` compares only key and messages)."""
    return [(t.key, t.messages, t.folders, t.ancestors, t.sent) for t in threads]


def rec(mid: str, folder: str, uid: int, sender: str = ME, days: float = 5, **kw: object) -> MessageRecord:
    return parse_record(message(mid, sender=sender, date=days_ago(days), **kw),  # type: ignore[arg-type]
                        folder=folder, uid=uid)


# (n, parent, folder, sender, Message-ID: own / none / shared with message 0)
_msg = st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from(["INBOX", "Sent", "Archive"]),
                 st.sampled_from([ME, BOB]), st.sampled_from(["own", "none", "shared"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(_msg, min_size=1, max_size=12))
@example([(0, 0, "Sent", ME, "own"), (1, 0, "INBOX", BOB, "shared")])  # a clash
@example([(0, 0, "INBOX", BOB, "none"), (1, 0, "Sent", ME, "own")])  # no Message-ID
def test_a_message_of_one_copy_is_threaded_as_the_long_way_threads_it(msgs) -> None:  # type: ignore[no-untyped-def]
    """Every record given twice takes the long way (copies of one id, compared, their
    keywords merged) and must give the very threads the one-copy shortcut gives."""
    records = []
    for uid, (n, parent, folder, sender, mid) in enumerate(msgs, start=1):
        own = {"own": f"m{n}@x", "none": "", "shared": "m0@x"}[mid]
        records.append(rec(own, folder, uid, sender, days=n + uid / 10,
                           reply_to=f"m{parent}@x" if parent != n else None))
    assert shape(build_threads(records, sent="Sent")) == shape(build_threads(records * 2, sent="Sent"))


def test_a_message_whose_id_is_a_clash_id_already_given_is_threaded_the_long_way() -> None:
    """A clash gives Bob's message an id of its own; a later message that carries that id
    as its Message-ID is then no message of one copy: it is merged as a copy would be."""
    mine, bobs = rec("x@x", "Sent", 1), rec("x@x", "INBOX", 2, BOB, subject="Other")
    [clash] = [m.message_id for t in build_threads([mine, bobs], sent="Sent") for m in t.messages
               if m.message_id != "<x@x>"]
    carols = parse_record(message(clash, sender="carol@else.example", date=days_ago(4),
                                  reply_to="x@x"), folder="INBOX", uid=3, keywords=("$Seen",))
    once = build_threads([mine, bobs, carols], sent="Sent")
    assert shape(once) == shape(build_threads([mine, bobs, carols, carols], sent="Sent"))
    assert [(m.sender.email, m.keywords) for t in once for m in t.messages
            if m.message_id == clash] == [(BOB, ("$Seen",))]


def test_a_records_parents_worked_out_once_are_no_part_of_what_it_is() -> None:
    raw = message("b@x", reply_to="a@x", references=["r@x", "a@x"])
    record, fresh = parse_record(raw, folder="INBOX", uid=1), parse_record(raw, folder="INBOX", uid=1)
    assert record.parents == ("<r@x>", "<a@x>") and record.parents is record.parents
    assert record == fresh and hash(record) == hash(fresh) and repr(record) == repr(fresh)
    assert record.to_row() == fresh.to_row() and MessageRecord.from_row(record.to_row()) == record
    assert pickle.loads(pickle.dumps(record)).parents == ("<r@x>", "<a@x>")
    # A record made from another works its own out: what it answers may differ.
    assert replace(record, inferred_parent="<o@x>").parents == ("<r@x>", "<a@x>", "<o@x>")
    assert replace(record, references=(), in_reply_to=()).parents == ()


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))])))
def test_the_days_and_times_of_reasons_read_as_strftime_writes_them(when: datetime) -> None:
    assert day(when) == f"{when:%Y-%m-%d}"
    assert weekday_and_day(when) == f"{when:%a %Y-%m-%d}"
    assert day_and_time(when) == f"{when:%a %Y-%m-%d %H:%M}"


# -- a decision asks the ledger only where it can know something ------------------------------

ACCOUNT = Account("a", "imap.example.com", 993, "implicit", ME, None, (ME,), ZoneInfo("UTC"))
ONE_STAGE = Rule("r", (Stage(Delay(calendar=timedelta(days=3)), DEFAULT_TEMPLATE),))


def entry(out: MessageRecord, fate: Fate, appended: datetime, nudge_id: str = "") -> LedgerEntry:
    nudge_id = nudge_id or nudge_message_id("a", out.message_id, 1, "example.com")
    return LedgerEntry(nudge_id, "a", out.message_id, out.message_id, 1, fate, appended)


def test_a_follow_up_in_drafts_before_it_falls_due_is_drafted_not_waiting() -> None:
    """(The rule's delay made longer after the draft was written.) Its Message-ID is
    looked up although nothing falls due."""
    out = rec("o@x", "Sent", 1, days=1)
    [thread] = build_threads([out], sent="Sent")
    d = decide(thread, ACCOUNT, (ONE_STAGE,), Ledger([entry(out, DRAFTED, days_ago(0.5))]), NOW)
    assert d is not None and (d.status, d.stage) == (Status.DRAFTED, 1)


def test_our_follow_up_sent_under_another_id_counts_by_the_ledger() -> None:
    """A client that gives our follow-up a Message-ID of its own: the ledger's entry says it
    was ours (it answers the message followed up, after we drafted it)."""
    out = rec("o@x", "Sent", 1, days=9)
    sent = rec("rewritten@x", "Sent", 2, days=4, reply_to="o@x")
    [thread] = build_threads([out, sent], sent="Sent")
    ledger = Ledger([entry(out, SENT, days_ago(4.5))])
    d = decide(thread, ACCOUNT, (ONE_STAGE,), ledger, NOW)
    assert d is not None and (d.status, d.sent_nudges) == (Status.LIMIT, 1)
    without = decide(thread, ACCOUNT, (ONE_STAGE,), Ledger(), NOW)  # (by its headers: a message of yours)
    assert without is not None and (without.status, without.sent_nudges) == (Status.DUE, 0)
