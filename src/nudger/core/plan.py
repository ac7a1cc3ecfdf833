"""Decide, for every thread of an account, what to do now and why.

Pure: ``plan(threads, account, rules, ledger, now)`` returns one
``Decision`` per thread that involves the user; the ones carrying an ``AppendDraft``
are the drafts to write. ``--dry-run`` prints these and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from enum import StrEnum

from nudger.config.model import Account, Rule, Stage
from nudger.core.calendar import CalendarFacts
from nudger.core.durations import Delay
from nudger.core.ledger import (
    CLOCK_SLACK,
    DISMISSED,
    DRAFTED,
    EDITED,
    PENDING,
    Ledger,
    LedgerEntry,
    nudge_message_id,
)
from nudger.core.record import Addr, MessageRecord
from nudger.core.rules import NEVER, due_at, match_rule, override
from nudger.core.sending import NO_SENT_COPY, NOT_WRITTEN_HERE, SendDraft, Step, hold_reason, send_time
from nudger.core.subjects import strip_reply_prefixes
from nudger.core.threads import Thread, is_nudge
from nudger.core.verdict import AWAITING, NOT_OURS, REPLIED, Verdict, judge
from nudger.core.words import day_and_time, weekday_and_day


class Status(StrEnum):
    """Where a thread stands, in the one word ``run`` and ``--json`` show."""

    DUE = "due"  # a follow-up is due: the plan appends it
    WAITING = "waiting"  # not due yet
    DRAFTED = "drafted"  # our follow-up is in Drafts, waiting for the user
    REPLIED = "replied"
    EXCLUDED = "excluded"  # never nudged, and the reason says why
    BOUNCED = "bounced"  # excluded because every recipient bounced
    DISMISSED = "dismissed"  # the user deleted our draft
    LIMIT = "limit"  # every follow-up of the rule sent
    NO_RULE = "no-rule"
    SENT = "sent"  # this stage's follow-up went out
    WITHDRAWN = "withdrawn"  # this stage's follow-up was removed after a reply
    APPENDING = "appending"  # this stage's follow-up was being appended when a cycle stopped


@dataclass(frozen=True)
class AppendDraft:
    """Write follow-up ``stage`` for ``outbound`` into Drafts, addressed to ``to``/``cc``."""

    nudge_id: str
    outbound: MessageRecord
    stage: int
    rule: str
    template: str
    to: tuple[Addr, ...]
    cc: tuple[Addr, ...]
    # A thank-you after a meeting (core.meetings) says who it is from and what it is
    # about, and quotes no invitation; a nudge is from the outbound's sender and quotes it.
    sender: Addr | None = None
    subject: str = ""
    quote: bool = True


@dataclass(frozen=True)
class WithdrawDraft:
    """Remove our own draft: a reply came first. Done only if it is still exactly ours."""

    entry: LedgerEntry


@dataclass(frozen=True)
class Decision:
    """One thread's status, the reason in words, and the action it needs, if any."""

    account: str
    thread_key: str
    subject: str
    status: Status
    reason: str
    rule: str = ""
    stage: int = 0
    due_at: datetime | None = None
    outbound: MessageRecord | None = None
    to: tuple[Addr, ...] = ()
    action: AppendDraft | WithdrawDraft | SendDraft | None = None
    sent_nudges: int = 0  # our follow-ups already sent in this thread since the last answer
    nudged: bool = False  # the ledger knows a follow-up of ours in this thread
    pending: str = ""  # Message-ID of our follow-up waiting in Drafts (status DRAFTED)
    answered_at: datetime | None = None  # replied: when the latest answer came
    send_at: datetime | None = None  # when nudger sends that follow-up (a send_after rule)

    @property
    def state(self) -> str:
        """The one word ``status`` shows: waiting, due, drafted, sent, dismissed, replied..."""
        if self.status == Status.LIMIT or (self.status == Status.WAITING and self.sent_nudges):
            return Status.SENT
        return self.status

    @property
    def draft_id(self) -> str | None:
        if isinstance(self.action, AppendDraft):
            return self.action.nudge_id
        if isinstance(self.action, (WithdrawDraft, SendDraft)):
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
                       "withdraw-draft" if isinstance(self.action, WithdrawDraft) else
                       "send-draft" if isinstance(self.action, SendDraft) else None),
            "draft": self.draft_id,
            "send_at": self.send_at.astimezone(tz).isoformat() if self.send_at else None,
        }


def plan(
    threads: Iterable[Thread],
    account: Account,
    rules: tuple[Rule, ...],
    ledger: Ledger,
    now: datetime,
) -> list[Decision]:
    """The decisions for every thread that involves the user (see ``decide``)."""
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
    """What to do about one thread now, and why; None when it is not the user's, or is
    settled and older than the look-back window."""
    # (Stage 0 is a meeting's thank-you: core.meetings decides it, never the thread.)
    mine = [e for e in ledger.for_messages(m.message_id for m in thread.messages) if e.stage > 0]
    verdict = _verdict(thread, account, rules, mine)
    if verdict.status == NOT_OURS or verdict.outbound is None:
        return None
    if any(m.calendar and CalendarFacts.is_request(m.calendar) for m in thread.messages):
        return Decision(account.name, thread.key, strip_reply_prefixes(verdict.outbound.subject)
                        or "(no subject)", Status.EXCLUDED, "a meeting invitation's thread: no "
                        "follow-up ([meetings] may write a thank-you instead)",
                        outbound=verdict.outbound, to=verdict.to)
    out = verdict.outbound
    # (An awaiting thread's status is one of those decided in _awaiting.)
    status = Status.WAITING if verdict.status == AWAITING else Status(verdict.status)
    base = _with(_BLANK, account=account.name, thread_key=thread.key,
                 subject=strip_reply_prefixes(out.subject) or "(no subject)", status=status,
                 reason=verdict.reason, outbound=out, to=verdict.to, sent_nudges=verdict.nudges_sent,
                 nudged=bool(mine), answered_at=verdict.answered_at)
    if verdict.status == REPLIED:
        untouched = [e for e in mine if e.fate == DRAFTED]
        if untouched:
            return _with(base, stage=untouched[0].stage, action=WithdrawDraft(untouched[0]),
                         reason=f"{verdict.reason}; removing our unsent follow-up from Drafts")
        edited = [e for e in mine if e.fate == EDITED]
        if edited:  # the user's now: never removed, but they must hear that it is not needed
            return _with(base, stage=edited[0].stage, pending=edited[0].nudge_id,
                         reason=f"{verdict.reason}; your edited follow-up {edited[0].stage} is "
                                f"still in {edited[0].folder or 'Drafts'}")
        return base
    if verdict.status != AWAITING:
        return base if now - out.date <= account.lookback else None
    return _awaiting(base, out, verdict, account, rules, ledger, mine, now)


def _verdict(thread: Thread, account: Account, rules: tuple[Rule, ...],
             mine: list[LedgerEntry]) -> Verdict:
    """The thread's verdict; judged again waiting on the others when the first rule of a
    replied thread waits on every recipient (``recipients = "non-repliers"``)."""
    test = _nudge_test(mine)
    verdict = judge(thread, account.is_identity, test, tz=account.timezone)
    if verdict.status == REPLIED and verdict.outbound is not None:
        first = match_rule(rules, account.name, verdict.outbound, verdict.outbound.recipients)
        if first is not None and first.recipients == "non-repliers":
            verdict = judge(thread, account.is_identity, test, any_reply_answers=False,
                            tz=account.timezone)
    return verdict


def _awaiting(base: Decision, out: MessageRecord, verdict: Verdict, account: Account,
              rules: tuple[Rule, ...], ledger: Ledger, mine: list[LedgerEntry],
              now: datetime) -> Decision:
    """A thread waiting on someone: not to be nudged, waiting, due, or a stage's
    follow-up already drafted or sent."""
    found = _rule_for(base, out, verdict, account, rules, mine, now)
    if isinstance(found, Decision):
        return found
    rule, chosen = found
    stage = verdict.nudges_sent + 1
    spec: Stage = rule.stages[stage - 1]
    due, why = _due(out, verdict, account, rule, spec, chosen)
    tz = account.timezone
    common = {"rule": rule.name, "stage": stage, "due_at": due}
    # (A hash each: made only when the ledger may know it, or the draft is due.)
    nudge_id = _nudge_id(account, out, stage) if ledger.entries or now >= due else ""
    entry = ledger.get(nudge_id) if nudge_id else None
    if entry is not None and entry.fate in PENDING:
        edited = "you edited it; " if entry.fate == EDITED else ""
        drafted = _with(base, status=Status.DRAFTED, **common, pending=entry.nudge_id,
                        reason=f"follow-up {stage} is in {entry.folder or 'Drafts'} since "
                               f"{entry.appended_at.astimezone(tz):%a %Y-%m-%d %H:%M}; {edited}"
                               "waiting for you to send it")
        return _sending(drafted, entry, rule, account, now)
    if entry is not None:
        return _with(base, status=Status(entry.fate), **common,
                     reason=f"follow-up {stage} was {entry.fate}")
    local_due = due.astimezone(tz)
    if now < due:
        return _with(base, status=Status.WAITING, **common,
                     reason=f"{verdict.reason}; due {day_and_time(local_due)} "
                            f"({why}, after {weekday_and_day(out.date.astimezone(tz))})")
    action = AppendDraft(nudge_id, out, stage, rule.name, spec.template, verdict.to, verdict.cc)
    return _with(base, status=Status.DUE, **common, action=action,
                 reason=f"{verdict.reason}; due since {day_and_time(local_due)} ({why})")


def _nudge_id(account: Account, out: MessageRecord, stage: int) -> str:
    return nudge_message_id(account.name, out.message_id, stage, out.sender.email.rpartition("@")[2])


SENDS_NOW = "; nudger sends it now"


def _sending(drafted: Decision, entry: LedgerEntry, rule: Rule, account: Account,
             now: datetime) -> Decision:
    """A drafted follow-up under a ``send_after`` rule: when nudger sends it, or why not.
    Only our own draft, as written (an edited one is the user's), and only with [smtp]."""
    if rule.send_after is None:
        return drafted
    if entry.fate == EDITED:
        return _with(drafted, reason=f"{drafted.reason}; it is yours now, so nudger will not "
                                     "send it")
    if account.smtp is None:
        return _with(drafted, reason=f"{drafted.reason}; rule {rule.name!r} would send it, but "
                                     f"accounts.{account.name} has no [smtp] table")
    if account.smtp.save_sent is False:  # ("auto" on a self-filing host: it files it)
        return _with(drafted, reason=f"{drafted.reason}; accounts.{account.name}.{NO_SENT_COPY}")
    if not entry.own:  # adopted: a lost state, or another instance's draft (core/sending.py)
        return _with(drafted, reason=f"{drafted.reason}; {NOT_WRITTEN_HERE}")
    if not entry.digest or entry.uid is None:  # (another instance's copy, unread)
        return _with(drafted, reason=f"{drafted.reason}; nudger cannot prove this copy untouched, "
                                     "so it will not send it")
    when = send_time(entry.appended_at, rule.send_after, account)
    local = f"{when.astimezone(account.timezone):%a %Y-%m-%d %H:%M}"
    by = f"rule {rule.name!r}: send_after {rule.send_after}"
    if now < when:
        return _with(drafted, send_at=when,
                     reason=f"{drafted.reason}; nudger sends it {local} unless you edit or delete "
                            f"it ({by})")
    return _with(drafted, send_at=when, action=SendDraft(entry, when),
                 reason=f"{drafted.reason}{SENDS_NOW} (due since {local}; {by})")


def hold_sends(decisions: list[Decision], steps: dict[str, Step]) -> list[Decision]:
    """The plan with the sends the journal holds back (``steps``: by the follow-up's
    Message-ID) taken out, and why: it went out, may have, or was refused."""
    held = []
    for d in decisions:
        why = hold_reason(steps.get(d.action.entry.nudge_id)) if isinstance(d.action, SendDraft) else None
        if why is not None:
            d = replace(d, action=None, reason=f"{d.reason.partition(SENDS_NOW)[0]}; not sent: {why}")
        held.append(d)
    return held


def _rule_for(base: Decision, out: MessageRecord, verdict: Verdict, account: Account,
              rules: tuple[Rule, ...], mine: list[LedgerEntry],
              now: datetime) -> Decision | tuple[Rule, tuple[Delay | str, str] | None]:
    """The rule that times the next follow-up and the user's override of it, or the
    decision that there is none: too old, no rule, dismissed, opted out, all sent."""
    waiting = bool(mine) and any(e.fate in PENDING and e.outbound_id == out.message_id for e in mine)
    if now - out.date > account.lookback and not waiting:  # (a draft in Drafts still waits)
        return _with(base, status=Status.EXCLUDED,
                     reason=f"sent {out.date.astimezone(account.timezone):%Y-%m-%d}, outside the "
                            f"{account.lookback.days}-day look-back window")
    rule = match_rule(rules, account.name, out, verdict.to + verdict.cc)
    if rule is None:
        return _with(base, status=Status.NO_RULE, reason="no rule matches this message")
    # By the messages it answered, not the thread key: a thread grows as older mail links in.
    dismissed = [e for e in mine if e.fate == DISMISSED]
    if dismissed:
        return _with(base, status=Status.DISMISSED, rule=rule.name,
                     reason=f"you deleted the follow-up draft (stage {dismissed[0].stage}); "
                            "this thread will not be nudged again")
    chosen = override(out, account.is_identity)
    if chosen is not None and chosen[0] == NEVER:
        return _with(base, status=Status.EXCLUDED, rule=rule.name,
                     reason=f"you asked for no follow-up ({chosen[1]})")
    if verdict.nudges_sent >= len(rule.stages):
        n = len(rule.stages)
        return _with(base, status=Status.LIMIT, rule=rule.name, stage=verdict.nudges_sent,
                     reason=f"{verdict.reason}; all {n} follow-up{'s' if n > 1 else ''} of rule "
                            f"{rule.name!r} sent")
    return rule, chosen


def _due(out: MessageRecord, verdict: Verdict, account: Account, rule: Rule, spec: Stage,
         chosen: tuple[Delay | str, str] | None) -> tuple[datetime, str]:
    """When the next follow-up falls due, and why then: the stage's delay or the user's,
    in the account's calendar, no earlier than an out-of-office's return plus grace."""
    delay, why = spec.after, f"rule {rule.name!r}: {spec.after}"
    if chosen is not None and isinstance(chosen[0], Delay):
        delay, why = chosen[0], f"{chosen[0]}, set by {chosen[1]}"
    due = due_at(out.date, delay, account)
    if verdict.back_on is not None:
        # The return is a day: on it, at the time of day the user wrote (in the account's
        # zone), not at midnight; then the grace and the quiet hours as usual.
        sent_at = out.date.astimezone(account.timezone)
        returns = datetime.combine(verdict.back_on.date(), sent_at.time(), tzinfo=account.timezone)
        back = due_at(returns, account.return_grace, account)
        if back > due:
            due, why = back, (f"{why}; moved: out of office until {verdict.back_on:%a %d %b}, "
                              f"+{account.return_grace}")
    return due, why


def _nudge_test(mine: list[LedgerEntry]) -> Callable[[MessageRecord], bool]:
    """Which of the user's messages are our follow-ups, sent.

    By our Message-ID or header where the client kept them, else by what every client
    keeps: it answers the message we followed up, and went out after we drafted it.
    """
    if not mine:  # (most threads: no draft of ours, so only our headers tell)
        return is_nudge
    ids = {e.nudge_id for e in mine}
    drafted = {e.outbound_id: e.appended_at for e in mine if e.fate != DISMISSED}

    def test(m: MessageRecord) -> bool:
        if is_nudge(m) or m.message_id in ids:
            return True
        return any(o in drafted and m.date >= drafted[o] - CLOCK_SLACK for o in m.in_reply_to)

    return test


def _with(base: Decision, **changes: object) -> Decision:
    """``replace(base, **changes)``, without its walk over the fields and the frozen
    ``__init__`` (one per thread of a first cycle); an unknown field is still an error."""
    if not changes.keys() <= _DECISION_FIELDS:
        return replace(base, **changes)  # type: ignore[arg-type]  # (raises TypeError)
    decision = object.__new__(Decision)
    decision.__dict__.update(base.__dict__, **changes)
    return decision


_DECISION_FIELDS = frozenset(Decision.__dataclass_fields__)
_BLANK = Decision("", "", "", Status.WAITING, "")  # (every other field as it defaults)


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
