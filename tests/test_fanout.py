"""A first cycle's threads judged on two cores (cycle/fanout.py): the same answers, in the
same order, as judging them all in one process; a child that fails costs only time, and
none is left running."""

from __future__ import annotations

import os
import shutil
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


@pytest.mark.parametrize("raised", [KeyError, KeyboardInterrupt], ids=["error", "interrupt"])
def test_an_error_or_interrupt_here_leaves_no_child_running(forks: list[int],
                                                            raised: type[BaseException]) -> None:
    """An error in this process, or Ctrl-C (which reaches the whole process group): this
    process stops, and kills and reaps the child. (The interrupt is raised as Python's
    handler raises it: a real SIGINT is handled at a moment of the interpreter's choosing,
    which under load fell outside the call.)"""

    def work(n: int) -> int:
        if os.getpid() != PARENT:
            time.sleep(60)
        if n == 3:
            raise raised
        return n

    started = time.monotonic()
    with pytest.raises(raised):
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


def test_work_begun_ahead_is_taken_later_or_dropped(forks: list[int]) -> None:
    records = [Record(n) for n in range(10)]
    ahead = fanout.Ahead.start(lambda: (os.getpid(), records[3], Record(3)), records)
    assert ahead is not None
    pid, same, copy = ahead.take()  # type: ignore[misc]
    assert pid != PARENT and same is records[3] and copy is not records[3] and copy.n == 3
    assert ahead.take() is None  # (once)
    slow = fanout.Ahead.start(lambda: time.sleep(60))
    assert slow is not None
    started = time.monotonic()
    slow.drop()
    slow.drop()
    assert time.monotonic() - started < 10 and len(forks) == 2 and all(map(gone, forks))
    monkeypatch_free = fanout.Ahead.start(lambda: 1, weight=0)  # (too little to fork for)
    assert monkeypatch_free is None


def test_a_meeting_stops_the_child_where_this_process_takes_over() -> None:
    meeting = fanout.Meeting()
    assert not meeting.stopped(10**6)  # (until told: all of it)
    meeting.done(40)
    stop = meeting.split(100, share=0.5)
    assert stop == 70 and meeting.stopped(70) and not meeting.stopped(69)
    assert fanout.Meeting().split(10, share=0.5) == 5


def _judged_first_cycle(box: Any, tmp_path: Path) -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
    if ours := box.ours():  # (none: delete_drafts would take them all)
        box.delete_drafts(ours)
    decisions = box.run()
    assert box.last_code == 0, box.last_err
    drafts = sorted((str(d["Message-ID"]), str(d["Subject"]), str(d["To"]), str(d["In-Reply-To"]),
                     str(d["References"]), text(d)) for d in box.drafts())
    return decisions, drafts


@pytest.fixture
def mailbox(dovecot, imap_user, tmp_path, capsys, monkeypatch, corpus: Path) -> Any:  # type: ignore[no-untyped-def]
    """The corpus, each message answered by the user; a reply to one of theirs; and the
    user's own draft of an answer, which a first cycle reads into its records (Drafts)
    after its sync is read, and whose links are threads' links too."""
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    me = f"Mia Example <{box.user}>"
    bob = "bob@client.example"
    box.seed("Sent", message("p1@example.com", sender=me, subject="Proposal", date=days_ago(6)),
             message("p2@example.com", sender=me, subject="Quote", date=days_ago(6)),
             message("p3@example.com", sender=me, subject="Budget", date=days_ago(1)))
    box.seed("INBOX", message("r2@client.example", sender=bob, to=box.user, subject="Re: Quote",
                              date=days_ago(5), reply_to="p2@example.com"),
             message("q9@client.example", sender=bob, to=box.user, subject="Question",
                     date=days_ago(3)))
    keep = box.seed("Drafts", message("d1@example.com", sender=me, subject="Re: Question",
                                      date=days_ago(2), reply_to="q9@client.example"),
                    message("d2@example.com", sender=me, subject="Re: Proposal",
                            date=days_ago(2), reply_to="p1@example.com"))
    ours = []
    for n, path in enumerate(sorted(corpus.rglob("*.eml"))):
        raw = path.read_bytes()
        box.seed("INBOX", raw)
        mid = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["Message-ID"]
        if mid:
            ours.append(message(f"c{n}@example.com", sender=me, subject=f"Re: corpus {n}",
                                date=days_ago(4 + n % 5), reply_to=str(mid).strip("<> \t\r\n")))
    box.seed("Sent", *ours)
    box.ours = lambda: [uid for uid in box.raw("Drafts") if uid not in keep]  # (the drafts nudger wrote)
    return box


def _taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each answer of a child begun ahead was there to take."""
    got: list[bool] = []
    take = fanout.Ahead.take
    monkeypatch.setattr(fanout.Ahead, "take", lambda self: (a := take(self), got.append(a is not None))[0])
    return got


@pytest.mark.imap
@pytest.mark.parametrize("child", ["whole", "stops early", "dies"])
def test_a_first_cycle_judged_on_two_cores_decides_and_drafts_as_on_one(
        mailbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int], child: str) -> None:
    """The child judging ahead gives way to this process wherever it stops, or dies: the
    plan and the drafts are the same either way, and the same as one process makes."""
    from nudger.cycle import cycle

    taken, here = _taken(monkeypatch), [0]
    judge = cycle._judge_group
    monkeypatch.setattr(cycle, "_judge_group", lambda *a: (here.__setitem__(0, here[0] + 1), judge(*a))[1])
    if child == "stops early":  # (as a torn read of where to stop would)
        monkeypatch.setattr(fanout.Meeting, "stopped", lambda self, index: index >= 3)
    elif child == "dies":
        monkeypatch.setattr(fanout.Meeting, "done", lambda self, count: count < 5 or os._exit(9))
    two_cores = _judged_first_cycle(mailbox, tmp_path)
    assert len(forks) == 1 and taken == [child != "dies"]  # (the premise: judged ahead)
    judged_here = here[0]
    monkeypatch.setattr(fanout, "FORK_FROM", 10**9)
    one_core = _judged_first_cycle(mailbox, tmp_path)
    assert len(forks) == 1 and len(taken) == 1  # (no fork: all judged here)
    assert len(two_cores[0]) > 100 and two_cores[1]
    assert two_cores == one_core
    groups = here[0] - judged_here
    if child == "whole":  # (the child's part taken: most of what this process had to do)
        assert judged_here < groups * 0.8
    else:
        assert judged_here >= groups - 3


@pytest.mark.imap
def test_a_child_judging_other_groups_is_not_taken(
        mailbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    """Its answer stands only for the groups this process judges: here, the child is
    made to see one group fewer (as if the records had changed since), and this process
    judges the child's part itself."""
    from nudger.cycle import kept

    groups = kept.Kept.groups

    def fewer(self: Any, *args: Any) -> Any:
        found = list(groups(self, *args))
        return found[1:] if os.getpid() != PARENT else found

    monkeypatch.setattr(kept.Kept, "groups", fewer)
    taken = _taken(monkeypatch)
    two_cores = _judged_first_cycle(mailbox, tmp_path)
    assert len(forks) == 1 and taken == [True]  # (judged ahead: answered, not taken)
    monkeypatch.setattr(fanout, "FORK_FROM", 10**9)
    assert _judged_first_cycle(mailbox, tmp_path) == two_cores
