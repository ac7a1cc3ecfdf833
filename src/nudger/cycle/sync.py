"""Sync: bring the header records of new messages into the state, folder by folder.

Only what changed since the last cycle is read: one STATUS skips a quiet folder, new
UIDs are fetched once, a renumbered folder (UIDVALIDITY) is read again, and a first
sync reads only the look-back window, a chunk at a time.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from nudger.config.model import Account
from nudger.core.record import HUMAN, MessageRecord, record_key, replaced
from nudger.cycle.context import Cycle
from nudger.cycle.parsing import HelperParser, start_helper
from nudger.cycle.records import BODIES_AT_ONCE, Later, SyncCounts, read_bodies, read_records
from nudger.cycle.rows import Made
from nudger.cycle.state import Checkpoint, State
from nudger.errors import FolderUnavailable
from nudger.mail.mailbox import Fetched, FolderStatus

log = logging.getLogger(__name__)

CHUNK = 2000  # header records parsed and stored per transaction
HELPER_FROM = 2 * CHUNK  # messages to read in a sync from which a helper process parses them
_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)

Progress = Callable[[str, int, int], None]
_T = TypeVar("_T")


class _OurTopics:
    """The topics of the user's stored messages, read once per sync: most messages without
    In-Reply-To start a conversation, and this tells without a query that none of ours
    has their subject. The user's messages on a topic, read once per topic: a project's
    folder holds many answers to one subject."""

    KEPT = 64  # the user's messages kept per topic; a topic with more is asked each time

    def __init__(self, account: Account, state: State, sent: str):
        self.account, self.state, self.sent = account, state, sent
        self.known: set[str] | None = None
        self.mine: dict[str, list[MessageRecord]] = {}  # newest first

    def __contains__(self, topic: str) -> bool:
        if self.known is None:
            self.known = self.state.topics_of(self.account.name, self.account.identities, self.sent)
        return topic in self.known

    def candidates(self, topic: str, before: datetime, since: datetime) -> list[MessageRecord]:
        """What state.ours_by_topic() answers, from one query per topic."""
        account = self.account
        mine = self.mine.get(topic)
        if mine is None:
            mine = self.mine[topic] = self.state.ours_by_topic(
                account.name, topic, account.identities, before=_LATEST, since=_EARLIEST,
                sent=self.sent, limit=self.KEPT + 1)
        if len(mine) > self.KEPT:
            return self.state.ours_by_topic(account.name, topic, account.identities,
                                            before=before, since=since, sent=self.sent)
        return [m for m in mine if since <= m.date < before][:20]

    def add(self, records: list[MessageRecord]) -> None:
        topics = {r.topic for r in records  # (a topic is worked out at each ask: once here)
                  if r.folder == self.sent and self.account.is_identity(r.sender.email)}
        for topic in topics:
            self.mine.pop(topic, None)  # (read again when next asked)
        if self.known is not None:
            self.known |= topics


def _link_by_subject(account: Account, state: State, record: MessageRecord,
                     ours: _OurTopics) -> MessageRecord:
    """A reply without In-Reply-To/References (some webmails, phones): link it to the
    user's latest message with the same topic that it could answer -- sent to its
    author, before it, within the look-back. Only a message in Sent is the user's: a
    forged "From: you" in INBOX must not become what a reply answers."""
    if not account.subject_threading or record.parents or record.kind != HUMAN:
        return record
    topic = record.topic  # (worked out from the subject at each ask: asked once)
    if not topic or account.is_identity(record.sender.email) or topic not in ours:
        return record
    candidates = ours.candidates(topic, before=record.date, since=record.date - account.lookback)
    for mine in candidates:
        if any(a.email == record.sender.email for a in mine.recipients):
            log.debug("%s: %s UID %s has no In-Reply-To; threaded by subject with %s",
                      account.name, record.folder, record.uid, mine.message_id)
            return replaced(record, inferred_parent=mine.message_id)
    return record


def sync_watched(ctx: Cycle, counts: SyncCounts, progress: Progress | None = None) -> set[str]:
    """Bring each watched folder's new messages (and, with CONDSTORE, changed flags) into
    the state. Returns the keys of the messages that are new or changed. Only Sent's
    messages are the user's.

    Three steps, each one round trip for all folders over a distant server: the statuses
    (asked before, with Drafts'), the EXAMINE and SEARCH of the folders that changed,
    then their header FETCHes, read in order a batch at a time. A folder whose headers
    came with its search (imap_saved.py) is stored as soon as its answers are read,
    while the server still answers for the next ones."""
    sweep = _Sweep(ctx, counts, progress, _OurTopics(ctx.account, ctx.state, ctx.layout.sent))
    plans = [p for folder in ctx.layout.watched if (p := _guarded(ctx, _plan, ctx, folder))]
    asks = [(p.folder, p.last) for p in plans if p.search]
    searched = ctx.mailbox.search_many(asks, ctx.since) if asks else {}
    try:
        with ctx.state.deferring(ctx.name):  # (a first cycle's writes: in one go, at the end)
            _sweep_folders(sweep, plans, searched)
    finally:
        if sweep.parser is not None:
            sweep.parser.close()
    return sweep.touched


def _sweep_folders(sweep: _Sweep, plans: list[_Plan],
                   searched: Mapping[str, tuple[FolderStatus, list[int]]]) -> None:
    ctx = sweep.ctx
    later = []
    for plan in plans:
        # (Only a folder searched is asked: the answers are read up to its own.)
        found = searched.get(plan.folder) if plan.search else None
        if _guarded(ctx, _searched, ctx, plan, found) is None:
            continue
        _helper_if_big(sweep, len(plan.uids))
        if ctx.mailbox.fetched_with_search(plan.folder, plan.uids):
            _read_alone(sweep, plan)
        else:
            later.append(plan)
    plans = later
    while plans:
        stream = _Batches(ctx.mailbox.fetch_headers_many([(p.folder, p.uids) for p in plans if p.uids]))
        done = 0
        try:
            for plan in plans:
                # (A folder's last chunk is stored, and the folder finished, once the next
                # folder's first chunk is read: the helper parses on meanwhile.)
                _read_new(sweep, plan, stream.of(plan.folder))
                done += 1
            _store_waiting(sweep, 0)
        except FolderUnavailable as exc:
            _skipped(ctx, exc)
            done += 1  # (the folder at fault; the stream ends with it, so the others start anew)
        finally:
            stream.close()
        plans = plans[done:]


def _helper_if_big(sweep: _Sweep, uids: int) -> None:
    """A helper parser, once the folders searched so far name HELPER_FROM messages to read.
    Counted as each folder's search is read, not all first: the searches are read while
    the server still answers the next folders' (and a small folder is stored meanwhile)."""
    sweep.to_read += uids
    if sweep.to_read >= HELPER_FROM and not sweep.helper_asked:
        sweep.helper_asked = True  # (once: with no spare core free, this sync parses here)
        sweep.parser = start_helper(sweep.ctx.name)  # (started now: parsed here until it is ready)


def _read_alone(sweep: _Sweep, plan: _Plan) -> None:
    stream = _Batches(sweep.ctx.mailbox.fetch_headers_many([(plan.folder, plan.uids)] if plan.uids else []))
    try:
        _read_new(sweep, plan, stream.of(plan.folder))
        _store_waiting(sweep, 0)
    except FolderUnavailable as exc:
        _skipped(sweep.ctx, exc)
    finally:
        stream.close()


def _skipped(ctx: Cycle, exc: FolderUnavailable) -> None:
    # One folder's trouble (a NO: no permission, deleted, broken on the server): its
    # checkpoint stays, so the next cycle reads what this one did not.
    log.warning("%s: skipped %r this cycle: the server refused it (%s); the other folders "
                "are served, and it is tried again next cycle", ctx.name, exc.folder, exc.detail)


def _guarded(ctx: Cycle, fn: Callable[..., _T], *args: object) -> _T | None:
    try:
        return fn(*args)
    except FolderUnavailable as exc:
        _skipped(ctx, exc)
        return None


@dataclass
class _Plan:
    """What one folder's sync does this cycle."""

    folder: str
    cp: Checkpoint | None
    status: FolderStatus | None  # None: a folder read afresh (its EXAMINE tells)
    modseq_moved: bool = False
    uids: list[int] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.cp.last_uid if self.cp else 0

    @property
    def search(self) -> bool:
        return self.cp is None or self.status is None or self.cp.uidnext != self.status.uidnext


def _plan(ctx: Cycle, folder: str) -> _Plan | None:
    """Known folder: its status (asked with the others), no SELECT when nothing changed.
    New folder: it will be read anyway, and opening it answers the same questions."""
    cp = ctx.state.checkpoint(ctx.name, folder)
    if cp is None:
        return _Plan(folder, None, None)
    status = ctx.status(folder)
    if cp.uidvalidity != status.uidvalidity:
        log.warning("%s: %s was renumbered by the server (UIDVALIDITY changed); reading it again",
                    ctx.name, folder)
        with ctx.state.transaction():
            ctx.state.forget_folder(ctx.name, folder)
        return _Plan(folder, None, None)
    modseq_moved = (status.highestmodseq is not None and cp.highestmodseq is not None
                    and status.highestmodseq != cp.highestmodseq)
    if cp.uidnext == status.uidnext and not modseq_moved:
        return None  # nothing arrived, nothing changed: not even a SELECT
    return _Plan(folder, cp, status, modseq_moved)


def _searched(ctx: Cycle, plan: _Plan, found: tuple[FolderStatus, list[int]] | None) -> _Plan:
    """The plan with its new UIDs: from the shared search, else (the server refused it
    there, or renumbered the folder since its status) searched alone as before."""
    if not plan.search:
        return plan
    if found is not None and (plan.status is None or found[0].uidvalidity == plan.status.uidvalidity):
        # (A folder read afresh takes its EXAMINE's status: taken before its search, so
        # what arrives later has a higher UID and the next cycle asks for it.)
        plan.status = plan.status or found[0]
        plan.uids = found[1]
        return plan
    if plan.status is None:
        plan.status = ctx.mailbox.examine(plan.folder)
    plan.uids = ctx.mailbox.search_new(plan.folder, plan.last, ctx.since)
    return plan


def _finish(sweep: _Sweep, plan: _Plan, read_up_to: int) -> None:
    ctx, cp, status = sweep.ctx, plan.cp, plan.status
    assert status is not None
    with ctx.state.transaction():
        if plan.modseq_moved and cp is not None and cp.highestmodseq is not None:
            # Someone set a keyword ($NoNudge) or a flag: update the copies we know.
            sweep.touched |= set(ctx.state.set_keywords(
                ctx.name, plan.folder, ctx.mailbox.changed_flags(plan.folder, cp.highestmodseq)))
        ctx.state.save_checkpoint(ctx.name, plan.folder,
                                  Checkpoint(status.uidvalidity, status.uidnext, read_up_to,
                                             status.highestmodseq, status.messages), ctx.now)


class _Batches:
    """One stream of (folder, headers) batches, taken folder by folder in order."""

    def __init__(self, stream: Iterator[tuple[str, list[Fetched]]]):
        self.stream = stream
        self.head: tuple[str, list[Fetched]] | None = None
        self.refused: FolderUnavailable | None = None  # a later folder's, met reading ahead

    def of(self, folder: str) -> Iterator[Fetched]:
        while True:
            if self.refused is not None:
                if self.refused.folder == folder:
                    raise self.refused
                return
            if self.head is None:
                try:
                    self.head = next(self.stream, None)
                except FolderUnavailable as exc:
                    if exc.folder == folder:
                        raise
                    # The next folder's trouble, met looking past this one's last batch:
                    # this folder is read whole (its progress is saved); that one fails in turn.
                    self.refused = exc
                    return
            if self.head is None or self.head[0] != folder:
                return
            yield from self.head[1]
            self.head = None

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


@dataclass
class _Sweep:
    """One sync of the watched folders: what each folder's sync adds to."""

    ctx: Cycle
    counts: SyncCounts
    progress: Progress | None
    ours: _OurTopics
    touched: set[str] = field(default_factory=set)  # keys of the messages new or changed
    parser: HelperParser | None = None  # a big sync's headers are parsed on the second core
    to_read: int = 0  # messages the folders searched so far name
    helper_asked: bool = False
    # Before anything of this sync was asked: every answer it reads is at least this fresh.
    started: float = field(default_factory=time.monotonic)
    # Chunks read, not stored yet, in order: (folder, headers, and for a folder's last
    # chunk, the folder and the highest UID read: once stored, its checkpoint is saved).
    waiting: deque[tuple[str, list[Fetched], tuple[_Plan, int] | None]] = field(default_factory=deque)
    # The bodies a folder's stored chunks still need (bounces, out-of-offices): read once
    # its last chunk is, not one FETCH per chunk in the middle of the header stream.
    bodies: dict[str, list[Later]] = field(default_factory=dict)


def _read_new(sweep: _Sweep, plan: _Plan, fetched: Iterator[Fetched]) -> None:
    """Fetch, parse and store the headers of the plan's UIDs, then save its checkpoint:
    up to the highest UID the server answered for (not what a SEARCH named: that is
    where the next sync starts). With a helper, a chunk is stored while the next one is
    read and parsed over there, the next folder's included: what is left when this
    returns is stored by the next call, or by ``_store_waiting``."""
    parser, folder = sweep.parser, plan.folder
    depth = 0 if parser is None else 1
    chunk: list[Fetched] = []
    read_up_to = plan.last
    try:
        for item in fetched:
            sweep.counts.fetched += 1
            read_up_to = max(read_up_to, item.uid)
            chunk.append(item)
            if parser is not None:
                parser.feed(folder, item)
            if len(chunk) >= CHUNK:
                sweep.waiting.append((folder, chunk, None))
                chunk = []
                _store_waiting(sweep, depth)
            if sweep.progress:
                sweep.progress(folder, sweep.counts.fetched, len(plan.uids))
    except FolderUnavailable:  # (the stream's: the full chunks read are kept, as without a helper)
        _cut_short(sweep, folder, keep_own=True)
        raise
    except BaseException:
        _cut_short(sweep, folder, keep_own=False)
        raise
    sweep.waiting.append((folder, chunk, (plan, read_up_to)))
    # (Not past a folder whose checkpoint asks the server first, its flags having changed:
    # a NO there is that folder's, and must not cut the next one short.)
    _store_waiting(sweep, 0 if plan.modseq_moved else depth)


def _cut_short(sweep: _Sweep, folder: str, keep_own: bool) -> None:
    """A folder's read cut short: the folders read whole before it are stored and
    finished (with ``keep_own``, its own full chunks too); what else was fed is dropped."""
    try:
        while sweep.waiting and (keep_own or sweep.waiting[0][0] != folder):
            _store_one(sweep)
    finally:
        # (The folder cut short keeps its checkpoint: the next cycle reads it again, bodies too.)
        sweep.bodies.pop(folder, None)
        sweep.waiting.clear()
        if sweep.parser is not None:
            sweep.parser.drop()  # (what was fed of this folder and not stored: the next starts clean)


def _store_waiting(sweep: _Sweep, keep: int) -> None:
    """Store the chunks waiting, in order, but the last ``keep``."""
    while len(sweep.waiting) > keep:
        _store_one(sweep)


def _store_one(sweep: _Sweep) -> None:
    # One transaction per chunk, and at most two body FETCHes per folder, at its end: a
    # first sync over a distant server must not pay a round trip per bounce or
    # out-of-office. A chunk at a time: memory stays flat whatever the size of the account.
    ctx, parser = sweep.ctx, sweep.parser
    folder, items, last = sweep.waiting.popleft()
    outcomes, made = (None, None) if parser is None else parser.take(len(items))
    pending = sweep.bodies.setdefault(folder, [])
    records = read_records(ctx.account, ctx.mailbox, folder, items, sweep.counts,
                           calendars=ctx.config.meetings.thank_you, outcomes=outcomes, later=pending)
    if parser is not None:
        parser.pump()
    _put(sweep, records, made)
    if parser is not None:
        parser.pump()
    if last is not None or len(pending) >= BODIES_AT_ONCE:  # (held: their headers, a bounded few)
        # (Before the checkpoint: a cycle cut short reads them again with their headers.)
        if needs := sweep.bodies.pop(folder):
            _put(sweep, read_bodies(ctx.account, ctx.mailbox, folder, needs))
    if last is not None:
        _finish(sweep, *last)


def _put(sweep: _Sweep, records: list[MessageRecord], made: Made | None = None) -> None:
    ctx = sweep.ctx
    records = [_link_by_subject(ctx.account, ctx.state, r, sweep.ours) for r in records]
    with ctx.state.transaction():
        ctx.state.put_records(ctx.name, records, made)
    ctx.read.update(dict.fromkeys(((r.folder, r.uid) for r in records), sweep.started))
    sweep.ours.add(records)
    for r in records:
        sweep.touched.add(record_key(r))
        if r.inferred_parent:
            sweep.touched.add(r.inferred_parent)
