"""A first cycle's threads judged on two cores (cycle/fanout.py): the same answers, in the
same order, as judging them all in one process; a child that fails costs only time, and
none is left running."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from nudger.cycle import fanout
from support.harness import make_box, text
from support.mail import days_ago, message

PARENT = os.getpid()


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The PIDs of the children map_split forked (and reaped), as they are reaped; any
    work is enough. The threads that earlier tests left waiting in this process (an
    OAuth flow's reader of stdin...) count as none: only one started since does."""
    reaped: list[int] = []
    reap = fanout._reap

    def spy(pid: int, kill: bool) -> None:
        reaped.append(pid)
        reap(pid, kill)

    idle = threading.active_count()
    monkeypatch.setattr(fanout, "_reap", spy)
    monkeypatch.setattr(fanout, "FORK_FROM", 1)
    monkeypatch.setattr(fanout, "can_fork", lambda: threading.active_count() == idle)
    return reaped


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Record:
    def __init__(self, n: int):
        self.n = n


def where(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_the_later_part_is_done_in_a_child_and_the_answers_come_in_order(forks: list[int]) -> None:
    got = fanout.map_split(where, list(range(200)), lambda n: 1)
    assert [square for square, _ in got] == [n * n for n in range(200)]
    pids = [pid for _, pid in got]
    assert pids[0] == PARENT and pids[-1] != PARENT  # (the premise: a child did its part)
    first_child = pids.index(pids[-1])
    assert set(pids[:first_child]) == {PARENT} and set(pids[first_child:]) == {pids[-1]}
    assert forks == [pids[-1]] and gone(forks[0])


def test_shared_objects_come_back_as_this_process_own(forks: list[int]) -> None:
    """A group's records are the answers' (a decision holds its outbound message): they
    cross as their address and are the very objects again; others are copies."""
    groups = [[Record(n), Record(n + 1)] for n in range(0, 100, 2)]
    got = fanout.map_split(lambda g: (g[1], Record(g[0].n), os.getpid()), groups, len,
                           shared=lambda g: g)
    assert got[-1][2] != PARENT
    for group, (kept, made, _) in zip(groups, got, strict=True):
        assert kept is group[1]
        assert made is not group[0] and made.n == group[0].n


def test_a_child_that_dies_costs_only_time(forks: list[int]) -> None:
    def work(n: int) -> int:
        if os.getpid() != PARENT:
            os._exit(3)  # (as killed, or out of memory)
        return n + 1

    assert fanout.map_split(work, list(range(50)), lambda n: 1) == list(range(1, 51))
    assert len(forks) == 1 and gone(forks[0])


def test_answers_that_do_not_unpickle_are_judged_here(forks: list[int]) -> None:
    def work(n: int) -> Any:
        return (lambda: n) if os.getpid() != PARENT else n  # (a lambda does not pickle)

    assert fanout.map_split(work, list(range(50)), lambda n: 1) == list(range(50))
    assert len(forks) == 1


def test_an_error_here_leaves_no_child_running(forks: list[int]) -> None:
    def work(n: int) -> int:
        if os.getpid() != PARENT:
            time.sleep(60)
        if n == 3:
            raise KeyError(n)
        return n

    started = time.monotonic()
    with pytest.raises(KeyError):
        fanout.map_split(work, list(range(50)), lambda n: 1)
    assert time.monotonic() - started < 10  # (the child was killed, not waited out)
    assert len(forks) == 1 and gone(forks[0])


def test_no_fork_beside_another_thread_or_for_little_work(forks: list[int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        got = fanout.map_split(where, list(range(50)), lambda n: 1)
    finally:
        stop.set()
        other.join()
    assert {pid for _, pid in got} == {PARENT} and not forks
    monkeypatch.setattr(fanout, "FORK_FROM", 51)
    assert {pid for _, pid in fanout.map_split(where, list(range(50)), lambda n: 1)} == {PARENT}
    assert not forks
    assert fanout.map_split(where, [], lambda n: 1) == []


def test_an_interrupt_stops_the_child_too(forks: list[int]) -> None:
    """Ctrl-C reaches the whole process group; this process stops, and reaps the child."""

    def work(n: int) -> int:
        if os.getpid() != PARENT:
            time.sleep(60)
        elif n == 0:
            os.kill(PARENT, signal.SIGINT)
        return n

    with pytest.raises(KeyboardInterrupt):
        fanout.map_split(work, list(range(50)), lambda n: 1)
    assert len(forks) == 1 and gone(forks[0])


@pytest.mark.imap
def test_a_first_cycle_judged_on_two_cores_decides_and_drafts_as_on_one(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus: Path,
        forks: list[int]) -> None:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    me = f"Mia Example <{box.user}>"
    bob = "bob@client.example"
    box.seed("Sent", message("p1@example.com", sender=me, subject="Proposal", date=days_ago(6)),
             message("p2@example.com", sender=me, subject="Quote", date=days_ago(6)),
             message("p3@example.com", sender=me, subject="Budget", date=days_ago(1)))
    box.seed("INBOX", message("r2@client.example", sender=bob, to=box.user, subject="Re: Quote",
                              date=days_ago(5), reply_to="p2@example.com"))
    ours = []
    for n, path in enumerate(sorted(corpus.rglob("*.eml"))):
        raw = path.read_bytes()
        box.seed("INBOX", raw)
        mid = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["Message-ID"]
        if mid:
            ours.append(message(f"c{n}@example.com", sender=me, subject=f"Re: corpus {n}",
                                date=days_ago(4 + n % 5), reply_to=str(mid).strip("<> \t\r\n")))
    box.seed("Sent", *ours)

    def first_cycle() -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
        box.delete_drafts()
        decisions = box.run()
        assert box.last_code == 0, box.last_err
        drafts = sorted((str(d["Message-ID"]), str(d["Subject"]), str(d["To"]), str(d["In-Reply-To"]),
                         str(d["References"]), text(d)) for d in box.drafts())
        return decisions, drafts

    two_cores = first_cycle()
    assert len(forks) == 1  # (the premise: that cycle forked)
    monkeypatch.setattr(fanout, "FORK_FROM", 10**9)
    one_core = first_cycle()
    assert len(forks) == 1
    assert len(two_cores[0]) > 100 and two_cores[1]
    assert two_cores == one_core
