"""What the follow-ups achieved, counted from the history the state keeps of them.

Pure: one ``NudgeOutcome`` per follow-up drafted in, numbers per rule and stage out.
A thread (the message followed up) counts once; it was "answered after stage N" when
N is the last of its follow-ups that went out before the answer, and the time to the
answer runs from that follow-up's Date to the answer's. Nothing here is tracking: it
is what the mailbox itself showed nudger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

KEPT = timedelta(days=365)  # how long the state keeps a follow-up's history


@dataclass(frozen=True)
class NudgeOutcome:
    """One follow-up drafted, and what became of it (the times are the mail's own)."""

    nudge_id: str
    account: str
    thread_id: str  # the user's message the thread began with: its follow-ups share it
    rule: str
    stage: int
    drafted_at: datetime
    sent_at: datetime | None = None
    dismissed_at: datetime | None = None
    withdrawn_at: datetime | None = None
    answered_at: datetime | None = None  # when the thread was answered (the reply's Date)


@dataclass(frozen=True)
class StageStats:
    stage: int  # 0: a thank-you after a meeting (core.meetings.THANKS_STAGE)
    sent: int  # threads in which this follow-up went out
    answered: int  # ... and were answered after it (before any later one)
    median_to_answer: timedelta | None

    @property
    def label(self) -> str:
        return f"follow-up {self.stage}" if self.stage else "thank-you"


@dataclass
class RuleStats:
    rule: str
    threads: int = 0  # threads that got a follow-up drafted
    nudged: int = 0  # ... of which at least one went out
    answered: int = 0  # answered after a follow-up went out
    answered_first: int = 0  # answered while our draft waited, before it went out
    dismissed: int = 0  # the user deleted the draft unsent
    waiting: int = 0  # a follow-up went out, no answer yet
    median_to_answer: timedelta | None = None
    stages: list[StageStats] = field(default_factory=list)

    @property
    def reply_rate(self) -> float | None:
        return self.answered / self.nudged if self.nudged else None


@dataclass(frozen=True)
class _Thread:
    rule: str
    sent: dict[int, datetime]  # stage -> when it went out
    drafted: frozenset[int]  # the stages drafted, sent or not
    answered_at: datetime | None
    dismissed: bool

    @property
    def answer(self) -> tuple[int, timedelta] | None:
        """(the stage it was answered after, how long after it), or None."""
        if self.answered_at is None:
            return None
        before = [(stage, at) for stage, at in self.sent.items() if at <= self.answered_at]
        if not before:
            return None
        stage, at = max(before)
        return stage, self.answered_at - at


def _threads(rows: Iterable[NudgeOutcome], since: datetime | None) -> list[_Thread]:
    """One per thread whose first follow-up was drafted at or after ``since``."""
    grouped: dict[tuple[str, str], list[NudgeOutcome]] = {}
    for row in rows:
        grouped.setdefault((row.account, row.thread_id), []).append(row)
    threads = []
    for group in grouped.values():
        first = min(group, key=lambda r: (r.stage, r.drafted_at))
        if since is not None and first.drafted_at < since:
            continue
        answers = [r.answered_at for r in group if r.answered_at is not None]
        threads.append(_Thread(first.rule, {r.stage: r.sent_at for r in group if r.sent_at},
                               frozenset(r.stage for r in group), min(answers) if answers else None,
                               any(r.dismissed_at for r in group)))
    return threads


def _median(values: list[timedelta]) -> timedelta | None:
    from statistics import median  # (here: a cycle imports this module for KEPT alone)

    return timedelta(seconds=median(v.total_seconds() for v in values)) if values else None


def summarise(rows: Iterable[NudgeOutcome], since: datetime | None = None) -> list[RuleStats]:
    """Per rule (in order of their first follow-up): threads, answers, and per stage how
    many went out and how many were answered after it."""
    by_rule: dict[str, list[_Thread]] = {}
    for thread in _threads(rows, since):
        by_rule.setdefault(thread.rule, []).append(thread)
    return [_rule_stats(rule, threads) for rule, threads in by_rule.items()]


def _rule_stats(rule: str, threads: list[_Thread]) -> RuleStats:
    stats = RuleStats(rule, threads=len(threads))
    waits: dict[int, list[timedelta]] = {}
    for t in threads:
        answer = t.answer
        if t.sent:
            stats.nudged += 1
        if answer is not None:
            stats.answered += 1
            waits.setdefault(answer[0], []).append(answer[1])
        elif t.answered_at is not None:
            stats.answered_first += 1
        elif t.sent:
            stats.waiting += 1
        elif t.dismissed:
            stats.dismissed += 1
    stats.median_to_answer = _median([w for ws in waits.values() for w in ws])
    present = sorted({s for t in threads for s in t.drafted})  # a thank-you is stage 0
    stats.stages = [StageStats(n, sum(1 for t in threads if n in t.sent), len(waits.get(n, [])),
                               _median(waits.get(n, []))) for n in present]
    return stats


def reply_counts(rows: Iterable[NudgeOutcome], since: datetime | None = None) -> tuple[int, int]:
    """(threads answered after a follow-up went out, threads in which one went out), of
    those first drafted since ``since``: the reply rate of the digest and of ``stats``."""
    threads = [t for t in _threads(rows, since) if t.sent]
    return sum(1 for t in threads if t.answer is not None), len(threads)

