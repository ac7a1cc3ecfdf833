"""Sync: bring the header records of new messages into the state, folder by folder.

Only what changed since the last cycle is read: one STATUS skips a quiet folder, new
UIDs are fetched once, a renumbered folder (UIDVALIDITY) is read again, and a first
sync reads only the look-back window, a chunk at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from nudger.config.model import Account
from nudger.core.bodytext import text_of
from nudger.core.classify import is_noreply
from nudger.core.ooo import return_date
from nudger.core.parse import parse_record
from nudger.core.record import AUTO_REPLY, HUMAN, MessageRecord, record_key
from nudger.cycle.context import Cycle
from nudger.cycle.invitations import read_calendars
from nudger.cycle.state import Checkpoint, State
from nudger.errors import FolderUnavailable
from nudger.mail.mailbox import Fetched, FolderStatus, Mailbox

log = logging.getLogger(__name__)

REPORT_LIMIT = 256 * 1024  # enough of a bounce to find what it reports on
AUTO_REPLY_LIMIT = 32 * 1024  # the return date is in the first lines of an out-of-office
CHUNK = 2000  # header records parsed and stored per transaction
_EARLIEST, _LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)

Progress = Callable[[str, int, int], None]
_T = TypeVar("_T")


@dataclass
class SyncCounts:
    fetched: int = 0  # header records read from the server
    skipped: int = 0  # malformed messages passed over


# -- records from fetched headers ----------------------------------------------------------------


def _record(account: Account, folder: str, item: Fetched, counts: SyncCounts) -> MessageRecord | None:
    try:
        record = parse_record(item.header, folder=folder, uid=item.uid,
                              internaldate=item.internaldate, keywords=item.flags,
                              gm_thrid=item.gm_thrid, size=item.size)
    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the cycle
        counts.skipped += 1
        log.warning("%s: skipped %s UID %s: cannot parse it (%s)", account.name, folder,
                    item.uid, type(exc).__name__)
        return None
    for warning in record.warnings:
        log.warning("%s: %s UID %s: %s", account.name, folder, item.uid, warning)
    return record


def _body_needs(parsed: list[tuple[Fetched, MessageRecord]]) -> dict[int, list[int]]:
    """Which messages' bodies to read, by byte limit: bounces and receipts name the original
    message in their body; an out-of-office answering a message may say when its sender
    is back (robots don't)."""
    reports = [i.uid for i, r in parsed if r.needs_report_body and i.size < 10 * REPORT_LIMIT]
    absences = [i.uid for i, r in parsed if r.kind == AUTO_REPLY and r.parents
                and i.size < 10 * REPORT_LIMIT and not is_noreply(r.sender.email)]
    return {limit: uids for limit, uids in ((REPORT_LIMIT, reports), (AUTO_REPLY_LIMIT, absences)) if uids}


def _enrich(account: Account, folder: str, item: Fetched, record: MessageRecord, body: bytes,
            limit: int) -> MessageRecord:
    """The record with what its body adds: a report's original and failed recipients, or
    an out-of-office's return date."""
    try:
        if limit == REPORT_LIMIT:
            return parse_record(item.header, folder=folder, uid=item.uid,
                                internaldate=item.internaldate, keywords=item.flags,
                                gm_thrid=item.gm_thrid, size=item.size, report_bytes=body)
        back = return_date(text_of(body), record.date)
        if back is not None:
            return replace(record, back_on=back.isoformat())
    except Exception as exc:  # noqa: BLE001 - a strange body only loses its extra facts
        log.warning("%s: %s UID %s: cannot read its body (%s)", account.name, folder, item.uid,
                    type(exc).__name__)
    return record


def read_records(account: Account, mailbox: Mailbox, folder: str, items: list[Fetched],
                 counts: SyncCounts, calendars: bool = False) -> list[MessageRecord]:
    """Records of fetched headers, reading the few bodies they need right away (and,
    with ``calendars``, the invitations' calendar parts)."""
    parsed = [(item, r) for item in items if (r := _record(account, folder, item, counts)) is not None]
    records = {item.uid: r for item, r in parsed}
    by_uid = {item.uid: item for item, _ in parsed}
    for limit, uids in _body_needs(parsed).items():
        for uid, body in mailbox.fetch_messages(folder, uids, limit).items():
            records[uid] = _enrich(account, folder, by_uid[uid], records[uid], body, limit)
    if calendars:
        records.update(read_calendars(account, mailbox, folder, parsed))
    return list(records.values())


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
        ours = [r for r in records if r.folder == self.sent and self.account.is_identity(r.sender.email)]
        for r in ours:
            self.mine.pop(r.topic, None)  # (read again when next asked)
        if self.known is not None:
            self.known.update(r.topic for r in ours)


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
            return replace(record, inferred_parent=mine.message_id)
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
    later = []
    for plan in plans:
        # (Only a folder searched is asked: the answers are read up to its own.)
        found = searched.get(plan.folder) if plan.search else None
        if _guarded(ctx, _searched, ctx, plan, found) is None:
            continue
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
                _finish(sweep, plan, _read_new(sweep, plan.folder, stream.of(plan.folder),
                                               plan.uids, plan.last))
                done += 1
        except FolderUnavailable as exc:
            _skipped(ctx, exc)
            done += 1  # (the folder at fault; the stream ends with it, so the others start anew)
        finally:
            stream.close()
        plans = plans[done:]
    return sweep.touched


def _read_alone(sweep: _Sweep, plan: _Plan) -> None:
    stream = _Batches(sweep.ctx.mailbox.fetch_headers_many([(plan.folder, plan.uids)] if plan.uids else []))
    try:
        _finish(sweep, plan, _read_new(sweep, plan.folder, stream.of(plan.folder), plan.uids, plan.last))
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
    # Before anything of this sync was asked: every answer it reads is at least this fresh.
    started: float = field(default_factory=time.monotonic)


def _read_new(sweep: _Sweep, folder: str, fetched: Iterator[Fetched], uids: list[int],
              last: int) -> int:
    """Fetch, parse and store the headers of ``uids``; returns the highest UID the server
    answered for (not what a SEARCH named: that is where the next sync starts)."""
    ctx, counts = sweep.ctx, sweep.counts
    chunk: list[Fetched] = []

    def store() -> None:
        # One transaction and at most two body FETCHes per chunk: a first sync over a
        # distant server must not pay a round trip per bounce or out-of-office. A chunk
        # at a time: memory stays flat whatever the size of the account.
        records = [_link_by_subject(ctx.account, ctx.state, r, sweep.ours)
                   for r in read_records(ctx.account, ctx.mailbox, folder, chunk, counts,
                                         calendars=ctx.config.meetings.thank_you)]
        with ctx.state.transaction():
            ctx.state.put_records(ctx.name, records)
        ctx.read.update(dict.fromkeys(((r.folder, r.uid) for r in records), sweep.started))
        sweep.ours.add(records)
        for r in records:
            sweep.touched.add(record_key(r))
            if r.inferred_parent:
                sweep.touched.add(r.inferred_parent)
        chunk.clear()

    read_up_to = last
    for item in fetched:
        counts.fetched += 1
        read_up_to = max(read_up_to, item.uid)
        chunk.append(item)
        if len(chunk) >= CHUNK:
            store()
        if sweep.progress:
            sweep.progress(folder, counts.fetched, len(uids))
    store()
    return read_up_to
