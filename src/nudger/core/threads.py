"""From message records to threads, and from a thread to a verdict with its reason.

Pure: records in, ``Thread`` and ``Verdict`` out. Threading is JWZ-style union of
Message-ID / In-Reply-To / References (plus the ids a bounce reports on, and Gmail's
X-GM-THRID), tolerant of missing links; order inside a thread comes from the links
first and the Date header second, because clocks are skewed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from nudger.core.mailfacts import (
    AUTO_REPLY,
    BOUNCE,
    HUMAN,
    NUDGE_ID_PREFIX,
    READ_RECEIPT,
    Addr,
    MessageRecord,
    is_noreply,
    record_key,
)

NO_NUDGE_KEYWORD = "$NoNudge"

_LIST_ADDRESS = re.compile(
    r"(?:^[^@]*-(?:l|list|users|devel|dev|announce|discuss|request)@|^(?:list|listserv|majordomo)@"
    r"|@(?:lists?|listserv|groups)\.|@googlegroups\.com$|@groups\.io$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Thread:
    key: str  # Message-ID of its earliest message: stable across cycles
    messages: tuple[MessageRecord, ...]  # one per Message-ID, oldest first
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict, compare=False)
    sent: str = field(default="", compare=False)  # the account's Sent folder

    def in_sent(self, record: MessageRecord) -> bool:
        """Whether a copy of this message is in Sent: the server's own record that the user
        sent it (a Bcc to self in INBOX has its Message-ID there too). A From header is
        only a claim: anyone can write the user's address into one."""
        return bool(self.sent) and self.sent in self.folders.get(record.message_id, (record.folder,))

    def after(self, earlier: MessageRecord, later: MessageRecord) -> bool:
        """Whether ``later`` came after ``earlier``: by the links first, the dates second."""
        if earlier.message_id and earlier.message_id in self.ancestors.get(later.message_id, ()):
            return True
        if later.message_id and later.message_id in self.ancestors.get(earlier.message_id, ()):
            return False
        return later.date > earlier.date

    def found_in(self, record: MessageRecord) -> str:
        return ", ".join(self.folders.get(record.message_id, (record.folder,)))


def is_nudge(record: MessageRecord) -> bool:
    """Our Message-ID or X-Nudger-For header: believed only of the user's messages (in
    Sent, see ``judge``) and of drafts in Drafts; anywhere else anyone can forge them."""
    return record.message_id.startswith(NUDGE_ID_PREFIX) or bool(record.nudge_for)


def build_threads(records: Iterable[MessageRecord], sent: str = "") -> list[Thread]:
    """Group records into threads; the same Message-ID in several folders counts once.

    ``sent`` is the account's Sent folder: only what is there is the user's (without it,
    nothing is).
    """
    unique: dict[str, MessageRecord] = {}
    folders: dict[str, list[str]] = {}
    for record in records:
        key = record_key(record)
        if record.message_id == "":
            record = replace(record, message_id=key)
        seen = unique.get(key)
        folders.setdefault(key, [])
        if record.folder not in folders[key]:
            folders[key].append(record.folder)
        if seen is None:
            unique[key] = record
        else:
            # Keep the copy from the preferred folder (Sent) but every keyword of every copy.
            keep = record if record.folder == sent else seen
            merged = tuple(dict.fromkeys(seen.keywords + record.keywords))
            unique[key] = replace(keep, keywords=merged)

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    for key, record in unique.items():
        find(key)
        for other in record.parents + record.original_ids:
            union(key, other)
        if record.gm_thrid:
            union(key, f"gm:{record.gm_thrid}")
        if record.thread_index:
            union(key, f"ti:{record.thread_index}")

    groups: dict[str, list[MessageRecord]] = {}
    for key, record in unique.items():
        groups.setdefault(find(key), []).append(record)

    threads = []
    for members in groups.values():
        members.sort(key=lambda r: (r.date, r.message_id))
        ancestors = _ancestors(members)
        threads.append(
            Thread(
                key=members[0].message_id,
                messages=tuple(members),
                folders={m.message_id: tuple(folders[m.message_id]) for m in members},
                ancestors=ancestors,
                sent=sent,
            )
        )
    threads.sort(key=lambda t: t.messages[-1].date)
    return threads


def _ancestors(members: list[MessageRecord]) -> dict[str, frozenset[str]]:
    """Every id each message descends from, through the chain of known messages.

    Depth first with a stack of its own: a chain of a thousand replies (a bot, a list)
    must not hit Python's recursion limit. A cycle in the links (forged or broken
    headers) ends where it closes.
    """
    by_id = {m.message_id: m for m in members}
    memo: dict[str, frozenset[str]] = {}
    for root in by_id:
        if root in memo:
            continue
        # The recursion, unrolled: (id, its direct links, those not yet walked).
        path = {root}
        stack = [(root, _links(by_id[root]), iter(_links(by_id[root])))]
        while stack:
            mid, direct, rest = stack[-1]
            step = next((p for p in rest if p in by_id and p not in memo and p not in path), None)
            if step is not None:
                path.add(step)
                stack.append((step, _links(by_id[step]), iter(_links(by_id[step]))))
                continue
            result = set(direct)
            for p in direct:
                result |= memo.get(p, frozenset())
            result.discard(mid)
            memo[mid] = frozenset(result)
            stack.pop()
            path.discard(mid)
    return memo


def _links(record: MessageRecord) -> tuple[str, ...]:
    return record.parents + record.original_ids


# -- verdicts ------------------------------------------------------------------------------

AWAITING = "awaiting"
REPLIED = "replied"
EXCLUDED = "excluded"
BOUNCED = "bounced"  # excluded because every recipient bounced
NOT_OURS = "not-ours"


@dataclass(frozen=True)
class Verdict:
    status: str  # awaiting | replied | excluded | bounced | not-ours
    reason: str
    outbound: MessageRecord | None = None  # the latest outbound
    to: tuple[Addr, ...] = ()  # who a nudge would go to
    cc: tuple[Addr, ...] = ()
    nudges_sent: int = 0  # our follow-ups already sent since the last answer
    notes: tuple[str, ...] = ()  # machine answers seen, recipients dropped
    back_on: datetime | None = None  # an out-of-office answer names this return date
    repliers: tuple[str, ...] = ()  # who answered after the latest outbound


def looks_like_list(address: str) -> bool:
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
    human = [m for m in thread.messages if m.kind == HUMAN]
    ours, claimed = _whose(thread, human, is_identity)
    if not ours:
        return Verdict(NOT_OURS, "no message of yours in this thread" + (
            f" (one claims to be from you, but is not in {thread.sent or 'Sent'})"
            if claimed else ""))
    latest = _latest(thread, ours)
    mine = {m.message_id for m in ours}

    theirs = [m for m in human if m.message_id not in mine and thread.after(latest, m)]
    repliers = tuple(dict.fromkeys(m.sender.email for m in theirs if m.message_id not in claimed))
    if theirs:
        reply = max(theirs, key=lambda m: m.date)
        by = reply.sender.email
        if reply.message_id in claimed:
            by = f"someone claiming to be you ({by}, not in {thread.sent or 'Sent'})"
        replied = Verdict(
            REPLIED, f"replied by {by} on {reply.date.astimezone(tz or UTC):%Y-%m-%d} "
            f"({thread.found_in(reply)})",
            outbound=latest, repliers=repliers,
        )
        waiting_on = [a for a in latest.recipients if not is_identity(a.email)
                      and a.email not in repliers and not is_noreply(a.email)]
        if any_reply_answers or not waiting_on:
            return replied

    marked = [m for m in ours if m.has_keyword(NO_NUDGE_KEYWORD)]
    if marked:
        return Verdict(EXCLUDED, f"marked {NO_NUDGE_KEYWORD} ({thread.found_in(marked[0])})", latest)
    if not latest.message_id or latest.message_id.startswith("<nudger-missing."):
        return Verdict(EXCLUDED, "your message has no Message-ID, so a follow-up could not "
                                 "be threaded to it", latest)
    listed = [m for m in thread.messages if m.list_traffic]
    if listed:
        return Verdict(EXCLUDED, "mailing-list thread (List-Id/List-Post)", latest)
    others = [a for a in latest.recipients if not is_identity(a.email)]
    if not latest.recipients:  # (none, or none with a readable address: both are dropped)
        return Verdict(EXCLUDED, "no recipient address nudger can read (To, Cc)", latest)
    if not others:
        return Verdict(EXCLUDED, "note to self: every recipient is you", latest)
    lists = [a.email for a in others if looks_like_list(a.email)]
    if lists:
        return Verdict(EXCLUDED, f"sent to a mailing list ({lists[0]})", latest)

    notes: list[str] = []
    people = [a for a in others if not is_noreply(a.email) and a.email not in repliers]
    if repliers:
        notes.append(f"answered by {', '.join(repliers)}; waiting on the others")
    dropped = [a.email for a in others if is_noreply(a.email)]
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

    back_on: datetime | None = None
    for m in thread.messages:
        if m.kind in (AUTO_REPLY, READ_RECEIPT) and thread.after(latest, m):
            what = "out-of-office/auto-reply" if m.kind == AUTO_REPLY else "read receipt"
            back = ""
            if m.back_on:
                when = datetime.fromisoformat(m.back_on)
                back_on = max(back_on, when) if back_on else when
                back = f", back on {when:%a %d %b %Y}"
            notes.append(f"{what} from {m.sender.email or 'unknown'} on "
                         f"{m.date.astimezone(tz or UTC):%Y-%m-%d}{back} "
                         f"(not a reply)")

    answers = [m for m in human if m.message_id not in claimed]
    since_answer = [
        m for m in ours if nudge_test(m) and all(thread.after(a, m) for a in answers)
    ]
    to = tuple(a for a in latest.to if a in people)
    cc = tuple(a for a in latest.cc if a in people and a not in to)
    if not to:
        to, cc = cc[:1], cc[1:]
    reason = "no reply yet" + (f"; {'; '.join(notes)}" if notes else "")
    return Verdict(AWAITING, reason, latest, to, cc, len(since_answer), tuple(notes), back_on,
                   repliers)


def _whose(thread: Thread, human: list[MessageRecord],
           is_identity: Callable[[str], bool]) -> tuple[list[MessageRecord], set[str]]:
    """The user's messages (those in Sent), and the ids of all that claim to be theirs.

    A message that claims to be the user's but is not in Sent (forged, or a copy we
    cannot prove) is never "yours": never the outbound, never a follow-up of ours, never
    quoted. After the user's latest it counts as an answer from someone: anyone may
    answer a thread anyway, so that gives a forger nothing, and when it was the user
    (a client that keeps no Sent copy) the thread has moved on: no draft either way.
    It answers no recipient, so it is never among the repliers.
    """
    claimed = {m.message_id for m in human if is_identity(m.sender.email)}
    return [m for m in human if m.message_id in claimed and thread.in_sent(m)], claimed


def _latest(thread: Thread, ours: list[MessageRecord]) -> MessageRecord:
    """Our latest message: one no other of ours follows, the newest of those."""
    heads = [m for m in ours if not any(o is not m and thread.after(m, o) for o in ours)]
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
