"""From a thread to a verdict with its reason: is it waiting on someone, and on whom?

Pure: a ``Thread`` in, a ``Verdict`` out. Only the user's messages (those in Sent) are
theirs; only a human's message after the user's latest answers it; everything that
stops a follow-up (a keyword, a list, no one left to ask) is said in the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from nudger.core.classify import is_noreply
from nudger.core.record import AUTO_REPLY, BOUNCE, HUMAN, MACHINE_KINDS, READ_RECEIPT, Addr, MessageRecord
from nudger.core.threads import NO_NUDGE_KEYWORD, Thread, is_no_nudge, is_nudge
from nudger.core.words import day

AWAITING = "awaiting"
REPLIED = "replied"
EXCLUDED = "excluded"
BOUNCED = "bounced"  # excluded because every recipient bounced
NOT_OURS = "not-ours"

_LIST_ADDRESS = re.compile(
    r"(?:^[^@]*-(?:l|list|users|devel|dev|announce|discuss|request)@|^(?:list|listserv|majordomo)@"
    r"|@(?:lists?|listserv|groups)\.|@googlegroups\.com$|@groups\.io$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """Whether a thread waits on someone, why, and on whom a follow-up would call."""

    status: str  # awaiting | replied | excluded | bounced | not-ours
    reason: str
    outbound: MessageRecord | None = None  # the latest outbound
    to: tuple[Addr, ...] = ()  # who a nudge would go to
    cc: tuple[Addr, ...] = ()
    nudges_sent: int = 0  # our follow-ups already sent since the last answer
    notes: tuple[str, ...] = ()  # machine answers seen, recipients dropped
    back_on: datetime | None = None  # an out-of-office answer names this return date
    repliers: tuple[str, ...] = ()  # who answered after the latest outbound
    answered_at: datetime | None = None  # replied: the Date of the latest answer


def looks_like_list(address: str) -> bool:
    """A mailing list's address, by the shapes list servers use (never nudged)."""
    return bool(_LIST_ADDRESS.search(address))


def judge(thread: Thread, is_identity: Callable[[str], bool],
          nudge_test: Callable[[MessageRecord], bool] = is_nudge,
          any_reply_answers: bool = True, tz: tzinfo | None = None) -> Verdict:
    """Is this thread waiting on someone? Each verdict says why.

    ``nudge_test`` tells which of the user's messages are follow-ups we drafted (the
    ledger knows more than the headers, which some clients rewrite). With
    ``any_reply_answers`` false, the thread waits on every recipient who has not
    answered yet (a rule's ``recipients = "non-repliers"``). Dates in the reasons are
    days in ``tz`` (the account's zone; UTC when not given).
    """
    tz = tz or UTC
    human, ours, claimed = _whose(thread, is_identity)
    if not ours:
        return Verdict(NOT_OURS, "no message of yours in this thread" + (
            f" (one claims to be from you, but is not in {thread.sent or 'Sent'})"
            if claimed else ""))
    latest = _latest(thread, ours)
    mine = {m.message_id for m in ours}
    theirs = [m for m in human if m.message_id not in mine and thread.after(latest, m)]
    repliers = tuple(dict.fromkeys(m.sender.email for m in theirs if m.message_id not in claimed)
                     ) if theirs else ()
    if theirs:
        replied = _replied(thread, latest, theirs, claimed, repliers, tz)
        if any_reply_answers:
            return replied
        waiting_on = [a for a in latest.recipients if not is_identity(a.email)
                      and a.email not in repliers and not is_noreply(a.email)]
        if not waiting_on:
            return replied
    others = [a for a in latest.recipients if not is_identity(a.email)]
    stopped = _excluded(thread, latest, ours, others)
    if stopped is not None:
        return stopped
    found = _people(thread, latest, others, repliers)
    if isinstance(found, Verdict):
        return found
    people, notes = found
    back_on = _machine_answers(thread, latest, notes, tz)
    since_answer = [m for m in ours if nudge_test(m)]
    if since_answer:  # (the answers only matter to a follow-up of ours)
        answers = [m for m in human if m.message_id not in claimed]
        since_answer = [m for m in since_answer if all(thread.after(a, m) for a in answers)]
    to = tuple([a for a in latest.to if a in people])
    cc = tuple([a for a in latest.cc if a in people and a not in to])
    if not to:
        to, cc = cc[:1], cc[1:]
    reason = "no reply yet" + (f"; {'; '.join(notes)}" if notes else "")
    return Verdict(AWAITING, reason, latest, to, cc, len(since_answer), tuple(notes), back_on,
                   repliers)


def _replied(thread: Thread, latest: MessageRecord, theirs: list[MessageRecord],
             claimed: set[str], repliers: tuple[str, ...], tz: tzinfo) -> Verdict:
    """The verdict "replied", naming the latest answer (and a claim to be the user)."""
    reply = max(theirs, key=lambda m: m.date)
    by = reply.sender.email
    if reply.message_id in claimed:
        by = f"someone claiming to be you ({by}, not in {thread.sent or 'Sent'})"
    return Verdict(
        REPLIED, f"replied by {by} on {day(reply.date.astimezone(tz))} "
        f"({thread.found_in(reply)})",
        outbound=latest, repliers=repliers, answered_at=reply.date,
    )


def _excluded(thread: Thread, latest: MessageRecord, ours: list[MessageRecord],
              others: list[Addr]) -> Verdict | None:
    """Why this thread is never nudged, if it is not: the user's keyword, no Message-ID
    to thread to, list traffic, no one but the user to ask."""
    marked = [m for m in ours if m.keywords and is_no_nudge(m.keywords)]
    if marked:
        return Verdict(EXCLUDED, f"marked {NO_NUDGE_KEYWORD} ({thread.found_in(marked[0])})", latest)
    if not latest.message_id or latest.message_id.startswith("<nudger-missing."):
        return Verdict(EXCLUDED, "your message has no Message-ID, so a follow-up could not "
                                 "be threaded to it", latest)
    # A bounce or auto-reply that came back through a list server carries its headers;
    # only a person's message makes this a list thread.
    listed = [m for m in thread.messages if m.list_traffic and m.kind not in MACHINE_KINDS]
    if listed:
        return Verdict(EXCLUDED, "mailing-list thread (List-Id/List-Post)", latest)
    if not latest.recipients:  # (none, or none with a readable address: both are dropped)
        return Verdict(EXCLUDED, "no recipient address nudger can read (To, Cc)", latest)
    if not others:
        return Verdict(EXCLUDED, "note to self: every recipient is you", latest)
    lists = [a.email for a in others if looks_like_list(a.email)]
    if lists:
        return Verdict(EXCLUDED, f"sent to a mailing list ({lists[0]})", latest)
    return None


def _people(thread: Thread, latest: MessageRecord, others: list[Addr],
            repliers: tuple[str, ...]) -> Verdict | tuple[list[Addr], list[str]]:
    """Who a follow-up asks (no no-reply address, no one who answered or bounced) and
    notes on who was left out; or the verdict that no one is left."""
    notes: list[str] = []
    people: list[Addr] = []
    dropped: list[str] = []
    for a in others:  # (each address tested once)
        if is_noreply(a.email):
            dropped.append(a.email)
        elif a.email not in repliers:
            people.append(a)
    if repliers:
        notes.append(f"answered by {', '.join(repliers)}; waiting on the others")
    if not people:
        return Verdict(EXCLUDED, f"only no-reply recipients ({', '.join(dropped)})", latest)
    if dropped:
        notes.append(f"left out no-reply address {', '.join(dropped)}")
    failed = _bounced(thread, latest, people)
    if failed:
        remaining = [a for a in people if a.email not in failed]
        if not remaining:
            return Verdict(BOUNCED, f"every recipient bounced ({', '.join(sorted(failed))})", latest)
        notes.append(f"left out bounced address {', '.join(sorted(failed))}")
        people = remaining
    return people, notes


def _machine_answers(thread: Thread, latest: MessageRecord, notes: list[str],
                     tz: tzinfo) -> datetime | None:
    """Notes on the out-of-office answers and read receipts after the user's latest (they
    are not replies), and the latest return date one announces."""
    back_on: datetime | None = None
    for m in thread.messages:
        if m.kind in (AUTO_REPLY, READ_RECEIPT) and thread.after(latest, m):
            what = "out-of-office/auto-reply" if m.kind == AUTO_REPLY else "read receipt"
            back = ""
            if m.back_on:
                when = datetime.fromisoformat(m.back_on)
                back_on = max(back_on, when) if back_on else when
                back = f", back on {when:%a %d %b %Y}"
            elif m.kind == AUTO_REPLY:
                back = ", no return date recognised in it"
            notes.append(f"{what} from {m.sender.email or 'unknown'} on "
                         f"{m.date.astimezone(tz):%Y-%m-%d}{back} "
                         f"(not a reply)")
    return back_on


def _whose(thread: Thread, is_identity: Callable[[str], bool]
           ) -> tuple[list[MessageRecord], list[MessageRecord], set[str]]:
    """The people's messages (no machine's), the user's (those in Sent), and the ids of
    all that claim to be the user's.

    A message that claims to be the user's but is not in Sent (forged, or a copy we
    cannot prove) is never "yours": never the outbound, never a follow-up of ours, never
    quoted. After the user's latest it counts as an answer from someone: anyone may
    answer a thread anyway, so that gives a forger nothing, and when it was the user
    (a client that keeps no Sent copy) the thread has moved on: no draft either way.
    It answers no recipient, so it is never among the repliers.
    """
    human: list[MessageRecord] = []
    claimed: set[str] = set()
    for m in thread.messages:  # (one walk: every thread of a first cycle is judged)
        if m.kind == HUMAN:
            human.append(m)
            if is_identity(m.sender.email):
                claimed.add(m.message_id)
    return human, [m for m in human if m.message_id in claimed and thread.in_sent(m)], claimed


def _latest(thread: Thread, ours: list[MessageRecord]) -> MessageRecord:
    """Our latest message: one no other of ours follows, the newest of those."""
    if len(ours) == 1:  # (most threads: what the walk below gives one message)
        return ours[0]
    heads = []
    for m in ours:
        for o in ours:
            if o is not m and thread.after(m, o):
                break  # (another of ours follows it)
        else:
            heads.append(m)
    return max(heads or ours, key=lambda m: m.date)


def _bounced(thread: Thread, latest: MessageRecord, people: list[Addr]) -> set[str]:
    failed: set[str] = set()
    for m in thread.messages:
        linked = thread.after(latest, m) or latest.message_id in m.original_ids
        if m.kind != BOUNCE or not linked:
            continue
        if m.failed_recipients:
            failed |= set(m.failed_recipients)
        elif len(people) == 1:
            failed.add(people[0].email)  # a bounce for a single recipient can only be theirs
    return failed & {a.email for a in people}
