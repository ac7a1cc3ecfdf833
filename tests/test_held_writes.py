"""A first sync's writes held back and written once, as it ends (State.deferring): the file
ends as writing them one chunk at a time leaves it, a failed chunk is undone alone, and
what the sync asks of the stored messages meanwhile is answered as the file would."""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from datetime import UTC, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nudger.core.parse import parse_record
from nudger.core.record import MessageRecord
from nudger.cycle.state import Checkpoint, State
from support.mail import ME, NOW, days_ago, message

OTHER = "other@me.example"  # a second identity of the user's
BOB = "bob@client.example"
SUBJECTS = ("Plan", "Re: Plan", "Quote", "Fwd: Quote", "")


def rec(n: int, folder: str, uid: int, sender: str, subject: str, hours: int,
        parent: int | None = None) -> MessageRecord:
    return parse_record(message(f"m{n}@x", sender=sender, subject=subject, to=BOB,
                                date=days_ago(2) + timedelta(hours=hours),
                                reply_to=f"m{parent}@x" if parent is not None else None),
                        folder=folder, uid=uid)


def dump(state: State) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a sync writes, in the file's order (its rowid; the links,
    kept without one, by their key)."""
    conn = state.conn
    return {table: conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            for table, order in (("messages", "rowid"), ("links", "account, child, parent"),
                                 ("folders", "rowid"), ("calendar", "rowid"))}


def asked(state: State) -> tuple[object, ...]:
    """What a sync asks of the user's stored messages (subject threading)."""
    ids = (ME, OTHER)
    topics = state.topics_of("a", ids, "Sent")
    answers = [[(r.folder, r.uid, r.message_id) for r in state.ours_by_topic(
        "a", topic, ids, before=NOW, since=days_ago(30), sent="Sent", limit=limit)]
        for topic in ("plan", "quote", "") for limit in (1, 20)]
    late = [(r.folder, r.uid) for r in state.ours_by_topic(
        "a", "plan", ids, before=days_ago(2) + timedelta(hours=3), since=days_ago(2) + timedelta(hours=1),
        sent="Sent", limit=20)]
    return topics, answers, late


class Fail(Exception):
    pass


# (message n, folder, uid, sender, subject, hour: a few, so that dates are often the same, parent)
_put = st.tuples(st.just("put"), st.integers(0, 15), st.sampled_from(["INBOX", "Sent", "Sent", "Work"]),
                 st.integers(1, 6), st.sampled_from([ME, OTHER, BOB]), st.sampled_from(SUBJECTS),
                 st.integers(0, 2), st.one_of(st.none(), st.integers(0, 15)))
# A chunk: records, then a checkpoint?, then does it fail? (rarely: it ends the holding)
_chunk = st.tuples(st.just("chunk"), st.lists(_put, min_size=1, max_size=4), st.booleans(),
                   st.sampled_from([False] * 7 + [True]))
_ask = st.tuples(st.just("ask"))
_drop = st.tuples(st.just("drop"), st.sampled_from(["INBOX", "Sent"]), st.integers(1, 6))


def apply(state: State, op: tuple[Any, ...], n: int) -> None:
    if op[0] == "ask":
        return
    if op[0] == "drop":  # (a write of another kind: what was held is written before it)
        with state.transaction():
            state.drop_records("a", op[1], [op[2]])
        return
    _, puts, checkpoint, fails = op
    with suppress(Fail), state.transaction():
        for _, m, folder, uid, sender, subject, hours, parent in puts:
            state.put_records("a", [rec(m, folder, uid, sender, subject, hours, parent)])
        if checkpoint:
            state.save_checkpoint("a", puts[0][2], Checkpoint(1, 100 + n, n, 7, n), NOW)
        if fails:
            raise Fail


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_chunk, _chunk, _chunk, _ask, _drop), min_size=1, max_size=12))
# Two of the user's messages on a topic at one time: the later stored comes first, as in the file.
@example([("chunk", [("put", 1, "Sent", 1, ME, "Plan", 0, None),
                     ("put", 2, "Sent", 2, OTHER, "Re: Plan", 0, 1)], True, False)])
def test_held_writes_leave_the_file_and_the_answers_as_writing_them_at_once(ops: list[Any]) -> None:
    held, direct = State.memory(), State.memory()
    with held.keeping_records("a"), held.deferring("a"):
        assert held.held is not None  # (the premise: a first cycle's writes are held)
        for n, op in enumerate(ops):
            apply(held, op, n)
            apply(direct, op, n)
            if held.held is not None:  # (once written, the file answers as ever)
                assert asked(held) == asked(direct)
                assert held.kept is not None  # (what judging ahead seeds from, in memory)
                assert set(held.kept.ours_since({ME, OTHER}, days_ago(30).astimezone(UTC).isoformat())) \
                    == set(direct.ours_since("a", (ME, OTHER), days_ago(30)))
        during = dump(held)  # (asking the file writes what is held, first)
        assert held.held is None
    assert during == dump(held) == dump(direct)


def test_the_writes_are_held_until_the_sync_ends_and_written_in_one_transaction() -> None:
    state = State.memory()
    statements: list[str] = []
    with state.keeping_records("a"):
        state._conn.set_trace_callback(statements.append)
        with state.deferring("a"):
            for n in range(3):
                with state.transaction():
                    state.put_records("a", [rec(n, "Sent", n + 1, ME, "Plan", n)])
                    state.save_checkpoint("a", "Sent", Checkpoint(1, n + 2, n + 1, None, n + 1), NOW)
                assert state.topics_of("a", [ME], "Sent") == {"plan"}
            assert not statements  # (nothing written, nothing asked of the file)
        words = [s.split()[0] for s in statements]  # (executemany: a line per row)
        assert words[0] == "BEGIN" and words[-1] == "COMMIT" and set(words[1:-1]) == {"INSERT"}
        assert state.kept is not None  # (still kept: the evaluation reads them there)
    assert state.checkpoint("a", "Sent") == Checkpoint(1, 4, 3, None, 3)
    assert [u for (u,) in state.conn.execute("SELECT uid FROM messages ORDER BY uid")] == [1, 2, 3]


def test_a_failed_sync_keeps_what_it_held_but_the_failed_chunk() -> None:
    state = State.memory()
    with suppress(Fail), state.keeping_records("a"), state.deferring("a"):
        with state.transaction():
            state.put_records("a", [rec(1, "Sent", 1, ME, "Plan", 0)])
            state.save_checkpoint("a", "Sent", Checkpoint(1, 2, 1, None, 1), NOW)
        with state.transaction():
            state.put_records("a", [rec(2, "Work", 1, BOB, "Re: Plan", 1)])
            raise Fail  # (the connection lost mid-chunk)
    assert state.uids("a", "Sent") == {1} and state.uids("a", "Work") == set()
    assert state.checkpoint("a", "Sent") == Checkpoint(1, 2, 1, None, 1)
    assert state.kept is None


def test_writes_over_the_keeping_cap_are_written_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nudger.cycle.kept.KEPT_CAP", 2)
    state = State.memory()
    with state.keeping_records("a"), state.deferring("a"):
        with state.transaction():
            state.put_records("a", [rec(n, "Sent", n + 1, ME, "Plan", n) for n in range(3)])
        assert state.held is None and state.kept is None
        with state.transaction():
            state.put_records("a", [rec(9, "Sent", 9, ME, "Plan", 9)])
        assert state.uids("a", "Sent") == {1, 2, 3, 9}


def test_a_write_in_the_file_amid_a_chunk_keeps_the_chunk_whole() -> None:
    """Something that must read the file amid a held chunk has what was held written, in a
    transaction that the chunk's end commits, or its failure undoes with the rest."""
    for fails in (False, True):
        state = State.memory()
        with suppress(Fail), state.keeping_records("a"), state.deferring("a"):
            with state.transaction():
                state.put_records("a", [rec(1, "Sent", 1, ME, "Plan", 0)])
            with state.transaction():
                state.put_records("a", [rec(2, "Sent", 2, ME, "Quote", 1)])
                assert state.uids("a", "Sent") == {1, 2}  # (read from the file: written first)
                state.save_checkpoint("a", "Sent", Checkpoint(1, 3, 2, None, 2), NOW)
                if fails:
                    raise Fail
        if fails:  # (all undone together: rows and checkpoints stay in step)
            assert state.uids("a", "Sent") == set() and state.checkpoint("a", "Sent") is None
        else:
            assert state.uids("a", "Sent") == {1, 2}
            assert state.checkpoint("a", "Sent") == Checkpoint(1, 3, 2, None, 2)
        with pytest.raises(sqlite3.OperationalError):  # (no transaction left open)
            state.conn.execute("COMMIT")


def test_only_a_first_cycle_holds_its_writes() -> None:
    state = State.memory()
    with state.transaction():
        state.put_records("a", [rec(1, "Sent", 1, ME, "Plan", 0)])
    with state.keeping_records("a"), state.deferring("a"):
        assert state.kept is None and state.held is None
    fresh = State.memory()
    with fresh.deferring("a"):  # (not kept: nothing held)
        assert fresh.held is None
