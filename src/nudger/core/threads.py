"""From message records to threads (the verdict on a thread is ``verdict``'s).

Pure: records in, ``Thread`` out. Threading is JWZ-style union of
Message-ID / In-Reply-To / References (plus the ids a bounce reports on, and Gmail's
X-GM-THRID), tolerant of missing links; order inside a thread comes from the links
first and the Date header second, because clocks are skewed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from nudger.core.ledger import NUDGE_ID_PREFIX
from nudger.core.record import MACHINE_KINDS, REPORT_KINDS, MessageRecord, record_key

NO_NUDGE_KEYWORD = "$NoNudge"  # set from any client on a message of the user's: never nudge it


@dataclass(frozen=True)
class Thread:
    """The messages of one conversation, once each, with where each copy lives."""

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


def is_no_nudge(keywords: Iterable[str]) -> bool:
    """Whether these keywords (IMAP flags) include ``$NoNudge``, in any case."""
    for k in keywords:  # (a loop, not any(): asked of every message of the user's)
        if k.lower() == _NO_NUDGE:
            return True
    return False


_NO_NUDGE = NO_NUDGE_KEYWORD.lower()


def build_threads(records: Iterable[MessageRecord], sent: str = "") -> list[Thread]:
    """Group records into threads; the same Message-ID in several folders counts once.

    ``sent`` is the account's Sent folder: only what is there is the user's (without it,
    nothing is).
    """
    if isinstance(records, list) and len(records) == 1 and records[0].message_id:
        only = records[0]  # (the most common thread: what the walk below makes of it)
        return [_thread(only.message_id, (only,), {only.message_id: (only.folder,)},
                        _ancestors(records), sent)]
    unique, folders = _unique(records, sent)
    threads = []
    for members in _linked(unique):
        # At one timestamp a person's message comes before a machine's answer to it (a
        # bounce is often stamped the same second), and the Sent copy before the others.
        if len(members) > 1:
            members.sort(key=lambda r: (r.date, r.kind in MACHINE_KINDS,
                                        sent not in folders[r.message_id], r.message_id))
        threads.append(_thread(_key_of(members), tuple(members),
                               {m.message_id: tuple(folders[m.message_id]) for m in members},
                               _ancestors(members), sent))
    threads.sort(key=lambda t: t.messages[-1].date)
    return threads


def _thread(key: str, messages: tuple[MessageRecord, ...], folders: dict[str, tuple[str, ...]],
            ancestors: dict[str, frozenset[str]], sent: str) -> Thread:
    """Thread(...), without the frozen __init__ and its setattr per field (a thread is
    built for every message of the user's in a first cycle); every field is given."""
    thread = object.__new__(Thread)
    thread.__dict__.update(key=key, messages=messages, folders=folders, ancestors=ancestors,
                           sent=sent)
    return thread


def _key_of(members: list[MessageRecord]) -> str:
    """A thread's id: its earliest person's message (the user's, in a thread they
    started), never a bounce or auto-reply that happens to sort first."""
    people = [m for m in members if m.kind not in MACHINE_KINDS]
    return (people or members)[0].message_id


def _unique(records: Iterable[MessageRecord],
            sent: str) -> tuple[dict[str, MessageRecord], dict[str, list[str]]]:
    """One record per message (the copy in Sent if there is one, with the keywords of
    every copy), and the folders each is in.

    Copies of one Message-ID are one message only when they agree (see ``_same``): a
    bounce that reuses the original's id as its own, or any message whose id collides
    with the user's, is another message, under an id of its own.
    """
    by_id: dict[str, list[MessageRecord]] = {}
    for record in records:
        by_id.setdefault(record_key(record), []).append(record)
    unique: dict[str, MessageRecord] = {}
    folders: dict[str, list[str]] = {}
    for key, copies in by_id.items():
        if len(copies) == 1 and copies[0].message_id == key and key not in unique:
            unique[key], folders[key] = copies[0], [copies[0].folder]  # (what the loop gives it)
            continue
        copies.sort(key=lambda r: r.folder != sent)  # (stable: the Sent copy first)
        first = copies[0]
        for record in copies:
            own = key if _same(first, record) else _clash_id(key, record)
            if own != key and record.kind in REPORT_KINDS and key not in record.original_ids:
                # A report stamped with the id of the message it returns reports on it.
                record = replace(record, original_ids=(*record.original_ids, key))
            if record.message_id != own:
                record = replace(record, message_id=own)
            seen = unique.get(own)
            if record.folder not in folders.setdefault(own, []):
                folders[own].append(record.folder)
            if seen is None:
                unique[own] = record
            else:  # (the first copy is the preferred one; every copy's keywords count)
                keywords = tuple(dict.fromkeys(seen.keywords + record.keywords))
                if keywords != seen.keywords:  # (else the record as stored, the same object)
                    unique[own] = replace(seen, keywords=keywords)
    return unique, folders


COPY_SKEW = timedelta(days=1)  # a copy without a Date header has its folder's arrival time


def _clash_id(key: str, record: MessageRecord) -> str:
    """The id of a message that shares ``key`` with another: from what it says (not its
    UID or folder, which a renumbered folder or a copy elsewhere changes), so that it is
    one message, with one follow-up at most, wherever and whenever it is read."""
    what = f"{key}\0{record.sender.email}\0{record.subject}\0{record.date.date().isoformat()}"
    return f"<nudger-clash.{hashlib.sha256(what.encode()).hexdigest()[:24]}@nudger.invalid>"


def _same(one: MessageRecord, other: MessageRecord) -> bool:
    """Whether two records of one Message-ID are copies of one message: same sender,
    same subject, the same date (give or take an arrival time)."""
    return (one is other or one.sender.email == other.sender.email and one.subject == other.subject
            and abs(one.date - other.date) <= COPY_SKEW)


def thread_links(record: MessageRecord) -> list[str]:
    """Every id that threads this message with others: what it answers or reports on,
    Gmail's thread id ("gm:"), Outlook's conversation ("ti:"). The one vocabulary of links,
    for the threads built here and the links the state keeps to find them."""
    key = record_key(record)
    links = [p for p in record.parents + record.original_ids if p != key]
    if record.gm_thrid:
        links.append(f"gm:{record.gm_thrid}")
    if record.thread_index:
        links.append(f"ti:{record.thread_index}")
    return links


class Groups:
    """Union-find over ids: which ids any chain of links joins."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            parent[root] = parent[parent[root]]
            root = parent[root]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _linked(unique: dict[str, MessageRecord]) -> list[list[MessageRecord]]:
    """The records in groups that any link joins."""
    if len(unique) == 1:  # (a thread of one message, the most common: nothing to join)
        return [list(unique.values())]
    joined = Groups()
    find, union = joined.find, joined.union
    for key, record in unique.items():  # (an id without links is put in by find() below)
        for other in thread_links(record):
            union(key, other)

    groups: dict[str, list[MessageRecord]] = {}
    for key, record in unique.items():
        groups.setdefault(find(key), []).append(record)
    return list(groups.values())


def _ancestors(members: list[MessageRecord]) -> dict[str, frozenset[str]]:
    """Every id each message descends from, through the chain of known messages.

    Depth first with a stack of its own: a chain of a thousand replies (a bot, a list)
    must not hit Python's recursion limit. A cycle in the links (forged or broken
    headers) ends where it closes.
    """
    if len(members) == 1:  # (what the walk below gives a message alone)
        only = members[0]
        return {only.message_id: frozenset(_links(only)) - {only.message_id}}
    by_id = {m.message_id: m for m in members}
    memo: dict[str, frozenset[str]] = {}
    for root in by_id:
        if root in memo:
            continue
        # The recursion, unrolled: (id, its direct links, those not yet walked).
        path = {root}
        direct = _links(by_id[root])
        stack = [(root, direct, iter(direct))]
        while stack:
            mid, direct, rest = stack[-1]
            step = None
            for p in rest:  # (the next link not walked yet, if any)
                if p in by_id and p not in memo and p not in path:
                    step = p
                    break
            if step is not None:
                path.add(step)
                direct = _links(by_id[step])
                stack.append((step, direct, iter(direct)))
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
