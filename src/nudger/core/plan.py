"""Decide, for every thread of an account, what to do now and why.

Pure: ``plan(threads, account, rules, ledger, now)`` returns one
``Decision`` per thread that involves the user; the ones carrying an ``AppendDraft``
are the drafts to write. ``--dry-run`` prints these and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from nudger.config.model import Account, Rule, Stage
from nudger.core.durations import Delay
from nudger.core.mailfacts import Addr, MessageRecord, nudge_message_id, strip_reply_prefixes
from nudger.core.rules import NEVER, due_at, match_rule, override
from nudger.core.threads import AWAITING, NOT_OURS, REPLIED, Thread, is_nudge, judge

# Fates of a draft we wrote (kept in the state ledger).
DRAFTED = "drafted"  # in Drafts as we wrote it
EDITED = "edited"  # the user changed it: never touched again by us
DISMISSED = "dismissed"  # deleted unsent: the thread is not nudged again
SENT = "sent"  # it went out; the next stage is timed from it
WITHDRAWN = "withdrawn"  # a reply came before the user touched it; we removed it
APPENDING = "appending"  # recorded before the APPEND; the next cycle finds how it ended
PENDING = (DRAFTED, EDITED)
CLOCK_SLACK = timedelta(minutes=5)  # a sent copy's Date may be a little before our APPEND


@dataclass(frozen=True)
class LedgerEntry:
    nudge_id: str
    account: str
    outbound_id: str
    thread_key: str
    stage: int
    fate: str
    appended_at: datetime
    fate_at: datetime | None = None
    folder: str = ""
    uid: int | None = None
    digest: str = ""  # sha256 of what we appended: "untouched" means still exactly this


class Ledger:
    """One account's ledger, indexed both ways a decision asks it: by the draft's
    Message-ID, and by the message it follows up (so a thread finds its drafts without
    a scan of every draft ever written)."""

    def __init__(self, entries: Iterable[LedgerEntry] = ()):
        self.entries = {e.nudge_id: e for e in entries}
        self.by_outbound: dict[str, list[LedgerEntry]] = {}
        for e in self.entries.values():
            self.by_outbound.setdefault(e.outbound_id, []).append(e)

    def get(self, nudge_id: str) -> LedgerEntry | None:
        return self.entries.get(nudge_id)

    def for_messages(self, ids: Iterable[str]) -> list[LedgerEntry]:
        return [e for mid in ids for e in self.by_outbound.get(mid, ())]


@dataclass(frozen=True)
class AppendDraft:
    nudge_id: str
    outbound: MessageRecord
    stage: int
    rule: str
    template: str
    to: tuple[Addr, ...]
    cc: tuple[Addr, ...]


@dataclass(frozen=True)
class WithdrawDraft:
    """Remove our own draft: a reply came first. Done only if it is still exactly ours."""

    entry: LedgerEntry


@dataclass(frozen=True)
class Decision:
    account: str
    thread_key: str
    subject: str
    status: str  # replied | excluded | waiting | due | drafted | dismissed | limit | no-rule
    reason: str
    rule: str = ""
    stage: int = 0
    due_at: datetime | None = None
    outbound: MessageRecord | None = None
    to: tuple[Addr, ...] = ()
    action: AppendDraft | WithdrawDraft | None = None
    sent_nudges: int = 0  # our follow-ups already sent in this thread since the last answer
    nudged: bool = False  # the ledger knows a follow-up of ours in this thread
    pending: str = ""  # Message-ID of our follow-up waiting in Drafts (status "drafted")

    @property
    def state(self) -> str:
        """The one word ``status`` shows: waiting, due, drafted, sent, dismissed, replied..."""
        if self.status == "limit" or (self.status == "waiting" and self.sent_nudges):
            return "sent"
        return self.status

    @property
    def draft_id(self) -> str | None:
        if isinstance(self.action, AppendDraft):
            return self.action.nudge_id
        if isinstance(self.action, WithdrawDraft):
            return self.action.entry.nudge_id
        return self.pending or None

    def to_json(self, tz: tzinfo) -> dict[str, object]:
        """One thread for a program; times in ISO 8601 with the offset of ``tz`` (the
        account's zone), as the person reading the same run sees them."""
        return {
            "account": self.account,
            "thread": self.thread_key,
            "subject": self.subject,
            "status": self.status,
            "reason": self.reason,
            "rule": self.rule or None,
            "stage": self.stage or None,
            "follow_ups_sent": self.sent_nudges,
            "due_at": self.due_at.astimezone(tz).isoformat() if self.due_at else None,
            "outbound": self.outbound.message_id if self.outbound else None,
            "sent_at": self.outbound.date.astimezone(tz).isoformat() if self.outbound else None,
            "to": [a.email for a in self.to],
            "action": ("append-draft" if isinstance(self.action, AppendDraft) else
                       "withdraw-draft" if isinstance(self.action, WithdrawDraft) else None),
            "draft": self.draft_id,
        }


def plan(
    threads: Iterable[Thread],
    account: Account,
    rules: tuple[Rule, ...],
    ledger: Ledger,
    now: datetime,
) -> list[Decision]:
    decisions = []
    for thread in threads:
        decision = decide(thread, account, rules, ledger, now)
        if decision is not None:
            decisions.append(decision)
    return decisions


def decide(
    thread: Thread,
    account: Account,
    rules: tuple[Rule, ...],
    ledger: Ledger,
    now: datetime,
) -> Decision | None:
    mine = ledger.for_messages(m.message_id for m in thread.messages)
    test = _nudge_test(mine)
    tz = account.timezone
    verdict = judge(thread, account.is_identity, test, tz=tz)
    if verdict.status == REPLIED and verdict.outbound is not None:
        first = match_rule(rules, account.name, verdict.outbound, verdict.outbound.recipients)
        if first is not None and first.recipients == "non-repliers":
            verdict = judge(thread, account.is_identity, test, any_reply_answers=False, tz=tz)
    if verdict.status == NOT_OURS or verdict.outbound is None:
        return None
    out = verdict.outbound
    base = Decision(account.name, thread.key, strip_reply_prefixes(out.subject) or "(no subject)",
                    verdict.status, verdict.reason, outbound=out, to=verdict.to,
                    sent_nudges=verdict.nudges_sent, nudged=bool(mine))
    if verdict.status == REPLIED:
        untouched = [e for e in mine if e.fate == DRAFTED]
        if untouched:
            return _with(base, stage=untouched[0].stage, action=WithdrawDraft(untouched[0]),
                         reason=f"{verdict.reason}; removing our unsent follow-up from Drafts")
        return base
    if verdict.status != AWAITING:
        return base if now - out.date <= account.lookback else None
    if now - out.date > account.lookback:
        return _with(base, status="excluded",
                     reason=f"sent {out.date.astimezone(tz):%Y-%m-%d}, outside the "
                            f"{account.lookback.days}-day look-back window")
    rule = match_rule(rules, account.name, out, verdict.to + verdict.cc)
    if rule is None:
        return _with(base, status="no-rule", reason="no rule matches this message")
    # By the messages it answered, not the thread key: a thread grows as older mail links in.
    dismissed = [e for e in mine if e.fate == DISMISSED]
    if dismissed:
        return _with(base, status="dismissed", rule=rule.name,
                     reason=f"you deleted the follow-up draft (stage {dismissed[0].stage}); "
                            "this thread will not be nudged again")
    chosen = override(out, account.is_identity)
    if chosen is not None and chosen[0] == NEVER:
        return _with(base, status="excluded", rule=rule.name,
                     reason=f"you asked for no follow-up ({chosen[1]})")
    stage = verdict.nudges_sent + 1
    if stage > len(rule.stages):
        n = len(rule.stages)
        return _with(base, status="limit", rule=rule.name, stage=verdict.nudges_sent,
                     reason=f"{verdict.reason}; all {n} follow-up{'s' if n > 1 else ''} of rule "
                            f"{rule.name!r} sent")
    spec: Stage = rule.stages[stage - 1]
    delay, why = spec.after, f"rule {rule.name!r}: {spec.after}"
    if chosen is not None and isinstance(chosen[0], Delay):
        delay, why = chosen[0], f"{chosen[0]}, set by {chosen[1]}"
    due = due_at(out.date, delay, account)
    if verdict.back_on is not None:
        back = due_at(verdict.back_on, account.return_grace, account)
        if back > due:
            due, why = back, (f"{why}; moved: out of office until {verdict.back_on:%a %d %b}, "
                              f"+{account.return_grace}")
    domain = out.sender.email.rpartition("@")[2]
    nudge_id = nudge_message_id(account.name, out.message_id, stage, domain)
    entry = ledger.get(nudge_id)
    common = {"rule": rule.name, "stage": stage, "due_at": due}
    if entry is not None and entry.fate in PENDING:
        edited = "you edited it; " if entry.fate == EDITED else ""
        return _with(base, status="drafted", **common, pending=entry.nudge_id,
                     reason=f"follow-up {stage} is in {entry.folder or 'Drafts'} since "
                            f"{entry.appended_at.astimezone(tz):%a %Y-%m-%d %H:%M}; {edited}"
                            "waiting for you to send it")
    if entry is not None:
        return _with(base, status=entry.fate, **common,
                     reason=f"follow-up {stage} was {entry.fate}")
    local_due = due.astimezone(tz)
    if now < due:
        return _with(base, status="waiting", **common,
                     reason=f"{verdict.reason}; due {local_due:%a %Y-%m-%d %H:%M} "
                            f"({why}, after {out.date.astimezone(tz):%a %Y-%m-%d})")
    action = AppendDraft(nudge_id, out, stage, rule.name, spec.template, verdict.to, verdict.cc)
    return _with(base, status="due", **common, action=action,
                 reason=f"{verdict.reason}; due since {local_due:%a %Y-%m-%d %H:%M} ({why})")


def _nudge_test(mine: list[LedgerEntry]) -> Callable[[MessageRecord], bool]:
    """Which of the user's messages are our follow-ups, sent.

    By our Message-ID or header where the client kept them, else by what every client
    keeps: it answers the message we followed up, and went out after we drafted it.
    """
    ids = {e.nudge_id for e in mine}
    drafted = {e.outbound_id: e.appended_at for e in mine if e.fate != DISMISSED}

    def test(m: MessageRecord) -> bool:
        if is_nudge(m) or m.message_id in ids:
            return True
        return any(o in drafted and m.date >= drafted[o] - CLOCK_SLACK for o in m.in_reply_to)

    return test


def _with(base: Decision, **changes: object) -> Decision:
    return replace(base, **changes)  # type: ignore[arg-type]


def cap_new_drafts(decisions: list[Decision], limit: int, now: datetime) -> list[Decision]:
    """At most ``limit`` new drafts, the oldest due first: a first run on a busy mailbox
    must not bury the user's Drafts under hundreds of follow-ups. The others stay due,
    without an action: a later cycle writes them. Part of the plan, so a dry run shows it."""
    appends = sorted((d for d in decisions if isinstance(d.action, AppendDraft)),
                     key=lambda d: d.due_at or now)
    later = {id(d) for d in appends[limit:]}
    if not later:
        return decisions
    noun = "follow-up" if limit == 1 else "follow-ups"
    why = f"waiting for a later cycle: at most {limit} new {noun} per cycle"
    return [replace(d, action=None, reason=f"{d.reason}; {why}") if id(d) in later else d
            for d in decisions]
