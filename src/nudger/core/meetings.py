"""Thank-you notes after meetings: a meeting's messages -> one decision, with its reason.

Pure. A meeting is the calendar messages sharing an iCalendar UID: its invitations
(METHOD:REQUEST, the latest SEQUENCE giving the time), cancellations, and answers. It
gets a thank-you when the user organised it (the invitation is in Sent) or accepted it
(their METHOD:REPLY in Sent says ACCEPTED), someone besides the user attends, and it
ended ``[meetings] after`` ago; never more than 24 hours after, and never when someone
(the user included) already wrote in its thread after it ended. The draft goes through
the nudges' machinery: a ledger entry at stage 0 (``THANKS_STAGE``) of the invitation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from nudger.config.model import MAX_THANKS_DELAY, Account, Meetings
from nudger.core.calendar import INDIVIDUAL, Attendee, CalendarFacts, occurrences
from nudger.core.durations import Delay
from nudger.core.ledger import (
    DISMISSED,
    EDITED,
    PENDING,
    SENT,
    WITHDRAWN,
    Ledger,
    LedgerEntry,
    nudge_message_id,
)
from nudger.core.plan import AppendDraft, Decision, Status, WithdrawDraft
from nudger.core.record import HUMAN, Addr, MessageRecord
from nudger.core.rules import after_quiet_hours, due_at
from nudger.core.series import SeriesError
from nudger.core.threads import NO_NUDGE_KEYWORD, is_no_nudge

THANKS_STAGE = 0  # a thank-you's stage in the ledger and its Message-ID: no nudge has it
MORNING = time(9)  # when the thank-you for an all-day event appears
NEXT_WORKING_DAY = Delay(business_days=1)
SHOWN_FOR = timedelta(days=2)  # a settled meeting stays in ``status`` this long after its end
SERIES_AHEAD = timedelta(days=60)  # how far ahead a series' next occurrence is looked for
NOT_PEOPLE = ("ROOM", "RESOURCE")


@dataclass(frozen=True)
class Meeting:
    """One iCalendar UID's messages in the watched folders, each with its facts."""

    uid: str
    messages: tuple[tuple[MessageRecord, CalendarFacts], ...]

    def with_method(self, *methods: str) -> list[tuple[MessageRecord, CalendarFacts]]:
        found = [(r, f) for r, f in self.messages if f.method in methods]
        return sorted(found, key=lambda rf: (rf[1].sequence, rf[1].dtstamp, rf[0].date))

    @property
    def anchor(self) -> MessageRecord | None:
        """The invitation the thank-you answers: the first one (its thread's root), so
        an update after the draft never makes a second one."""
        requests = [r for r, _ in self.with_method("REQUEST") if r.message_id]
        return min(requests, key=lambda r: (r.date, r.message_id)) if requests else None


def meetings_of(records: Iterable[MessageRecord]) -> list[Meeting]:
    """The meetings of the calendar records, grouped by UID."""
    groups: dict[str, list[tuple[MessageRecord, CalendarFacts]]] = {}
    for r in records:
        if r.calendar:
            facts = CalendarFacts.from_json(r.calendar)
            if facts.uid:
                groups.setdefault(facts.uid, []).append((r, facts))
    return [Meeting(uid, tuple(msgs)) for uid, msgs in groups.items()]


def decide_meeting(meeting: Meeting, answers: Iterable[MessageRecord], account: Account,
                   config: Meetings, ledger: Ledger, sent: str, now: datetime) -> Decision | None:
    """What to do about one meeting now, and why; None when it is nobody's thank-you to
    show (no invitation, or long over). ``answers``: the messages of the invitation's
    thread in the watched folders."""
    anchor = meeting.anchor
    chosen = _version(meeting, config, account, now)
    if anchor is None or chosen is None:
        return None
    facts, why_not = chosen
    start, end, due, deadline = _times(facts, account, config)
    if now - max(end, due) > SHOWN_FOR and not ledger.for_messages([anchor.message_id]):
        return None
    tz = account.timezone
    when = f"{start.astimezone(tz):%a %Y-%m-%d %H:%M}-{end.astimezone(tz):%H:%M}"
    if facts.all_day:
        when = f"{date.fromisoformat(facts.start):%a %Y-%m-%d}, all day"
    when += ", one of a series" if facts.series else ""
    base = Decision(account.name, f"meeting {meeting.uid}", facts.summary or anchor.subject or "(no subject)",
                    Status.EXCLUDED, f"meeting {when}: no thank-you: ", outbound=anchor, due_at=due)
    me = _me(meeting, account, sent)
    why_not = why_not or (me if isinstance(me, str) else "")
    if not why_not and is_no_nudge(anchor.keywords):
        why_not = f"you marked the invitation {NO_NUDGE_KEYWORD}"
    to, cc = _recipients(meeting, facts, account)
    if not why_not and not to and not cc:
        why_not = "no one but you attends"
    if why_not or isinstance(me, str):
        return replace(base, reason=base.reason + why_not)
    base = replace(base, to=to + cc)
    nudge_id = nudge_message_id(account.name, anchor.message_id, THANKS_STAGE, me.email.rpartition("@")[2])
    first = _wrote_first(answers, end, anchor, nudge_id, account, sent)
    found = _ledger_says(base, ledger.get(nudge_id), first, when)
    if found is not None and found.status == Status.SENT:  # for ``stats``: was it answered?
        return replace(found, answered_at=_answered(answers, nudge_id, anchor, account, due))
    if found is not None:
        return found
    if first is not None or due > deadline or now > deadline:
        why_not = (f"{first} wrote first after it" if first is not None else
                   "the 24 hours after it fall in your quiet hours" if due > deadline else
                   "it ended more than 24 hours ago")
        return replace(base, reason=base.reason + why_not)
    if now < due:
        return replace(base, status=Status.WAITING,
                       reason=f"meeting {when}: thank-you due at {due.astimezone(tz):%a %Y-%m-%d %H:%M}")
    action = AppendDraft(nudge_id, anchor, THANKS_STAGE, "meetings", config.template, to, cc,
                         sender=me, subject=facts.summary, quote=False)
    return replace(base, status=Status.DUE, action=action,
                   reason=f"meeting {when}: thank-you due since {due.astimezone(tz):%a %Y-%m-%d %H:%M}")


def _ledger_says(base: Decision, entry: LedgerEntry | None, first: str | None,
                 when: str) -> Decision | None:
    """The decision when a thank-you was written already: waiting in Drafts (withdrawn if
    someone wrote first), sent, deleted or removed. None when none was written."""
    if entry is None:
        return None
    if entry.fate in PENDING:
        if first is not None and entry.fate != EDITED:
            return replace(base, status=Status.REPLIED, action=WithdrawDraft(entry),
                           reason=f"meeting {when}: {first} wrote first; removing our unsent thank-you")
        return replace(base, status=Status.DRAFTED, pending=entry.nudge_id,
                       reason=f"meeting {when}: the thank-you is in {entry.folder or 'Drafts'}"
                              f"{'; you edited it' if entry.fate == EDITED else ''}")
    words = {SENT: "sent", DISMISSED: "deleted unsent: not written again",
             WITHDRAWN: "removed: someone wrote first"}
    status = {SENT: Status.SENT, DISMISSED: Status.DISMISSED}.get(entry.fate, Status.WITHDRAWN)
    return replace(base, status=status,
                   reason=f"meeting {when}: the thank-you was {words.get(entry.fate, str(entry.fate))}")


def _answered(answers: Iterable[MessageRecord], nudge_id: str, anchor: MessageRecord,
              account: Account, due: datetime) -> datetime | None:
    """When someone other than the user first wrote in the thread after the thank-you
    (its Date, else its due time); None when no one did."""
    mine = next((m for m in answers if m.message_id == nudge_id), None)
    since = mine.date if mine is not None else due
    found = [m.date for m in answers if m.kind == HUMAN and m.date >= since and not
             account.is_identity(m.sender.email) and m.message_id not in (nudge_id, anchor.message_id)]
    return min(found, default=None)


def _version(meeting: Meeting, config: Meetings, account: Account,
             now: datetime) -> tuple[CalendarFacts, str] | None:
    """The facts to decide on, and why there is no thank-you ("" when there may be one):
    the latest invitation (a series' master first), and for a series the occurrence that
    ended last or comes next. None without any invitation."""
    requests = meeting.with_method("REQUEST")
    if not requests:
        return None
    masters = [f for _, f in requests if not f.recurrence_id]
    facts = masters[-1] if masters else requests[-1][1]  # the latest version: when and who
    versions = [f for _, f in meeting.with_method("REQUEST", "CANCEL")
                if f.recurrence_id == facts.recurrence_id]
    if versions[-1].method == "CANCEL" or versions[-1].status == "CANCELLED":
        return facts, "it was cancelled"
    if facts.series and not config.recurring:
        return facts, "a recurring meeting ([meetings] recurring = true thanks for one of each series)"
    if not facts.recurring:
        return facts, ""
    cancelled = {f.recurrence_id for _, f in meeting.with_method("CANCEL") if f.recurrence_id}
    try:
        found = [(s, e) for s, e in occurrences(facts, now - SHOWN_FOR - MAX_THANKS_DELAY,
                                                now + SERIES_AHEAD) if s not in cancelled]
    except SeriesError as exc:  # one hostile invitation never stops the cycle
        return facts, f"nudger does not work out this series: {exc}"
    ended = [(s, e) for s, e in found if _aware(_parse(e), account) <= now]
    pick = ended[-1] if ended else (found[0] if found else None)
    if pick is None:
        return facts, "no occurrence of the series in the last days or the next weeks"
    return replace(facts, start=pick[0], end=pick[1]), ""


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text) if "T" in text else datetime.combine(date.fromisoformat(text), time())


def _times(facts: CalendarFacts, account: Account,
           config: Meetings) -> tuple[datetime, datetime, datetime, datetime]:
    """Start, end, when the thank-you is due and the latest it may be written. Floating
    times are the account's; an all-day event's thank-you comes the next working
    morning (its end is midnight, when no one writes one)."""
    tz = account.timezone
    if facts.all_day:
        start = datetime.combine(date.fromisoformat(facts.start), time(), tzinfo=tz)
        end = datetime.combine(date.fromisoformat(facts.end), time(), tzinfo=tz)
        # The end is exclusive (the day after the last one): one working day after the
        # last day is the end day itself when it is a working day, else the next one.
        last_day = datetime.combine(date.fromisoformat(facts.end) - timedelta(days=1), MORNING, tzinfo=tz)
        morning = due_at(last_day, NEXT_WORKING_DAY, account)
        return start, end, morning, morning + MAX_THANKS_DELAY
    start, end = (_aware(datetime.fromisoformat(t), account) for t in (facts.start, facts.end))
    return start, end, after_quiet_hours(end + config.after, account), end + MAX_THANKS_DELAY


def _aware(value: datetime, account: Account) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=account.timezone)


def _me(meeting: Meeting, account: Account, sent: str) -> Addr | str:
    """The identity the thank-you is from: the organiser's when the invitation is in
    Sent, else the attendee's whose latest answer in Sent accepted; else why none."""
    for r, _ in meeting.with_method("REQUEST"):
        if r.folder == sent and account.is_identity(r.sender.email):
            return Addr(account.display_name or r.sender.name, r.sender.email)
    answers = [(r, f) for r, f in meeting.with_method("REPLY")
               if r.folder == sent and account.is_identity(r.sender.email)]
    if not answers:
        return "you did not accept it (no answer of yours in Sent)"
    r, f = max(answers, key=lambda rf: (rf[0].date, rf[1].dtstamp))
    mine = [a for a in f.attendees if account.is_identity(a.email)]
    stat = mine[0].partstat if mine else ""
    if stat == "ACCEPTED":
        return Addr(account.display_name or mine[0].name or r.sender.name, mine[0].email)
    return {"DECLINED": "you declined it", "TENTATIVE": "you answered tentatively"}.get(
        stat, "your answer did not accept it")


def _recipients(meeting: Meeting, facts: CalendarFacts,
                account: Account) -> tuple[tuple[Addr, ...], tuple[Addr, ...]]:
    """To: the organiser and the required attendees; Cc: the optional ones. Never the
    user, a room or resource, a non-participant, or someone who declined."""
    declined = {f.attendees[0].email for r, f in meeting.with_method("REPLY")
                if f.attendees and f.attendees[0].partstat == "DECLINED"
                and not account.is_identity(r.sender.email)}
    people: list[Attendee] = ([facts.organizer] if facts.organizer else []) + list(facts.attendees)
    to: dict[str, Addr] = {}
    cc: dict[str, Addr] = {}
    for p in people:
        if (account.is_identity(p.email) or p.cutype in NOT_PEOPLE or p.role == "NON-PARTICIPANT"
                or p.partstat == "DECLINED" or p.email in declined or p.email in to):
            continue
        if p.cutype != INDIVIDUAL and p.cutype not in ("GROUP", "UNKNOWN"):
            continue
        (cc if p.role == "OPT-PARTICIPANT" else to)[p.email] = Addr(p.name, p.email)
    return tuple(to.values()), tuple(a for e, a in cc.items() if e not in to)


def _wrote_first(answers: Iterable[MessageRecord], end: datetime, anchor: MessageRecord,
                 nudge_id: str, account: Account, sent: str) -> str | None:
    """Who wrote a person's message in the invitation's thread after the meeting ended
    (a thank-you of theirs, the user's own notes): then ours is not needed."""
    for m in sorted(answers, key=lambda m: m.date):
        if m.date < end or m.kind != HUMAN or m.message_id in (nudge_id, anchor.message_id):
            continue
        if account.is_identity(m.sender.email):
            if m.folder == sent:
                return "you"
            continue  # a "you" outside Sent is not provably the user (README: Who replied)
        return m.sender.email or "someone"
    return None
