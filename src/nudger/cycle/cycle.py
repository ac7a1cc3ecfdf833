"""One cycle for one account: sync -> decide -> act.

Sync (``sync.py``) brings the header records of new messages into the state (only what
changed since the last cycle); decide is the pure ``plan``; act writes the drafts that
are due, each guarded so that a crash or a second instance never makes a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from nudger.config.model import Account, Config
from nudger.core.bodytext import text_of
from nudger.core.ledger import (
    APPENDING,
    CLOCK_SLACK,
    DISMISSED,
    DRAFTED,
    EDITED,
    PENDING,
    SENT,
    WITHDRAWN,
    Fate,
    Ledger,
    LedgerEntry,
)
from nudger.core.plan import AppendDraft, Decision, WithdrawDraft, decide
from nudger.core.record import Addr, MessageRecord
from nudger.core.threads import NO_NUDGE_KEYWORD, Thread, build_threads
from nudger.cycle.adopt import TRASH_CHECKED, adopt_found, search_trash
from nudger.cycle.state import Checkpoint, State
from nudger.cycle.statefile import NOT_THE_FILE, translate
from nudger.cycle.sync import Progress, SyncCounts, read_records, sync_watched
from nudger.errors import FolderUnavailable, StateCorrupt
from nudger.mail.layout import Layout, discover
from nudger.mail.mailbox import Mailbox

log = logging.getLogger(__name__)

QUOTE_LIMIT = 2 * 1024 * 1024  # the outbound we quote; larger ones are cut
AWAITING_STATUSES = ("due", "drafted", "waiting")  # what "awaiting a reply" adds up


@dataclass
class CycleResult:
    account: str
    decisions: list[Decision] = field(default_factory=list)  # the threads looked at this cycle
    written: list[str] = field(default_factory=list)  # nudge Message-IDs appended
    withdrawn: list[str] = field(default_factory=list)  # our drafts removed after a reply
    fetched: int = 0  # header records read from the server
    skipped: int = 0  # malformed messages passed over
    full: bool = False  # every thread of the window was looked at, not only the changed ones
    layout: Layout | None = None
    # The account's threads of the window by status once the cycle is done, changed or not.
    totals: dict[str, int] = field(default_factory=dict)
    timezone: tzinfo = UTC  # the account's: every time shown to a person is in it


def fingerprint(config: Config, account: Account) -> str:
    """What decisions depend on besides the mail: when it changes, everything is re-planned."""
    from nudger import __version__

    # The account's repr covers identities, time zone, working days, holidays, quiet hours...
    # (never a secret: the inline password is left out of it). Hashed, never stored as is.
    # "decided-1": states from before the per-thread status table are re-planned once to fill it.
    parts = [__version__, "decided-1", repr(config.rules), repr(sorted(config.templates.items())),
             repr(account)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def run_cycle(
    config: Config,
    account: Account,
    mailbox: Mailbox,
    state: State,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    full: bool = False,
) -> CycleResult:
    """Sync, decide, act. Only threads touched by new mail, whose time has come, or whose
    draft changed are evaluated, unless ``full`` (or the rules changed).

    A state file found damaged halfway is set aside and the cycle done again from an
    empty state (the server rebuilds it); any other trouble with the file is a StateError.
    """
    args = (config, account, mailbox, state, now, dry_run, progress, full)
    try:
        return _cycle(*args)
    except NOT_THE_FILE:
        raise
    except sqlite3.Error as exc:
        problem = translate(exc, state.path)
        if not isinstance(problem, StateCorrupt) or state.path is None or dry_run:
            raise problem from exc
    state.rebuild(problem)
    try:
        return _cycle(*args)
    except NOT_THE_FILE:
        raise
    except sqlite3.Error as exc:
        raise translate(exc, state.path) from exc


def _cycle(config: Config, account: Account, mailbox: Mailbox, state: State, now: datetime,
           dry_run: bool, progress: Progress | None, full: bool) -> CycleResult:
    result = CycleResult(account.name, timezone=account.timezone)
    layout = discover(mailbox.list_folders(), account.sent_folder, account.drafts_folder,
                      account.watch_folders)
    result.layout = layout
    since = (now - account.lookback).date()
    counts = SyncCounts()
    touched = sync_watched(account, mailbox, state, layout.watched, since, now, counts, progress,
                           sent=layout.sent)
    try:
        drafts_changed = _sync_drafts(account, mailbox, state, layout.drafts, now, counts)
    except FolderUnavailable as exc:  # unlike a watched folder, it cannot be done without
        raise FolderUnavailable(exc.folder, f"{exc}; nudger cannot know or write its drafts "
                                f"without its Drafts folder, so this cycle stops here") from exc
    result.fetched, result.skipped = counts.fetched, counts.skipped
    before: dict[str, LedgerEntry] = {}
    reconciled = bool(touched or drafts_changed or state.has_fate(account.name, APPENDING))
    if reconciled:
        before = state.ledger(account.name)
        _reconcile(account, mailbox, state, layout, now)
    if state.meta(account.name, TRASH_CHECKED) is None:
        # Before any draft this state does not know is written: what the user deleted.
        full = search_trash(account, mailbox, state, layout, now) or full

    print_ = fingerprint(config, account)
    full = full or state.meta(account.name, "plan_fingerprint") != print_
    if full:
        seeds = state.ours_since(account.name, account.identities, now - account.lookback)
    else:
        seeds = sorted(touched) + state.due_agenda(account.name, now)
    ledger = Ledger()
    if full or seeds or reconciled:  # a quiet cycle decides nothing, so reads no ledger
        ledger = Ledger(state.ledger(account.name).values())
        if not full and reconciled:
            # Only the threads whose draft changed fate (or appeared): Drafts also moves
            # when we append, and one deleted draft must not re-report every other one.
            seeds += [e.outbound_id for e in ledger.entries.values() if before.get(e.nudge_id) != e]
    result.full = full
    result.decisions = _evaluate(config, account, state, layout, ledger, seeds, now, full)
    facts = {"plan_fingerprint": print_, "sent_folder": layout.sent, "drafts_folder": layout.drafts}
    with state.transaction():
        state.set_meta(account.name, "last_cycle", now.isoformat())
        for key, value in facts.items():
            if state.meta(account.name, key) != value:
                state.set_meta(account.name, key, value)
    if dry_run:
        result.totals = state.decided_counts(account.name, now - account.lookback)
        return result
    _prune(account, state, now)
    appends = [d for d in result.decisions if isinstance(d.action, AppendDraft)]
    # Oldest first, a bounded number per cycle: a first run on a busy mailbox must not
    # bury the user's Drafts under hundreds of follow-ups; the rest come in later cycles.
    appends.sort(key=lambda d: d.due_at or now)
    if len(appends) > account.max_new_drafts:
        log.info("%s: %d follow-ups are due; writing the %d oldest now, the rest in later cycles",
                 account.name, len(appends), account.max_new_drafts)
        appends = appends[: account.max_new_drafts]
    if appends:
        guard = _AppendGuard(mailbox, layout.drafts)
        flags = _fresh_flags(mailbox, [d.action.outbound for d in appends
                                       if isinstance(d.action, AppendDraft)])
        for decision in appends:
            assert isinstance(decision.action, AppendDraft)
            if _write_draft(config, account, mailbox, state, layout, decision, decision.action, now,
                            flags, guard):
                result.written.append(decision.action.nudge_id)
    for decision in result.decisions:
        if isinstance(decision.action, WithdrawDraft):
            if _withdraw(account, mailbox, state, layout, decision.action.entry, now):
                result.withdrawn.append(decision.action.entry.nudge_id)
    written = [d.action.outbound for d in appends
               if isinstance(d.action, AppendDraft) and d.action.nudge_id in result.written]
    if written:  # the totals count the account after this cycle; a drafted one is not due
        with state.transaction():
            state.set_decided(account.name, {o.message_id: (DRAFTED, o.date) for o in written})
            state.set_agenda(account.name, {o.message_id: None for o in written})
    result.totals = state.decided_counts(account.name, now - account.lookback)
    return result


def threads_of(state: State, account: str, seeds: Iterable[str], folders: Iterable[str],
               sent: str, whole_window: bool = False) -> Iterator[Thread]:
    """The threads the seed messages belong to, each once, read from the state's links.

    ``whole_window``: the seeds are all the user's messages of the window; grouping
    all links at once is then much cheaper than a walk per seed.
    """
    folders = tuple(folders)
    if whole_window:
        for group in state.linked_groups(account, seeds, folders):
            yield from build_threads(group, sent=sent)
        return
    done: set[str] = set()
    for seed in seeds:
        if seed in done:
            continue
        ids = state.thread_ids(account, [seed])
        done |= ids
        yield from build_threads(state.records_for(account, ids, folders), sent=sent)


def _prune(account: Account, state: State, now: datetime) -> None:
    """Once a day, forget mail older than twice the look-back window: nothing that old can
    decide a nudge any more, and the state must not grow with the mailbox for months."""
    last = state.meta(account.name, "last_prune")
    if last is not None and now - datetime.fromisoformat(last) < timedelta(days=1):
        return
    with state.transaction():
        gone = state.prune(account.name, now - 2 * account.lookback)
        state.set_meta(account.name, "last_prune", now.isoformat())
    if gone:
        log.info("%s: forgot %d message(s) older than %d days", account.name, gone,
                 2 * account.lookback.days)


def _evaluate(config: Config, account: Account, state: State, layout: Layout,
              ledger: Ledger, seeds: list[str], now: datetime,
              full: bool) -> list[Decision]:
    """Decide for the threads of ``seeds``, one thread at a time; keep the agenda and
    each thread's status (what the totals count)."""
    if not seeds and not full:
        return []  # a quiet cycle: nothing to decide, nothing to write
    decisions: dict[str, Decision] = {}
    agenda: dict[str, datetime | None] = {}
    decided: dict[str, tuple[str, datetime] | None] = {}
    with state.transaction():
        if full:
            state.clear_agenda(account.name)
        for thread in threads_of(state, account.name, seeds, layout.watched, layout.sent,
                                 whole_window=full):
            if not full:  # (a full evaluation starts from an empty agenda)
                agenda.update((m.message_id, None) for m in thread.messages)
                decided.update((m.message_id, None) for m in thread.messages)
            decision = decide(thread, account, config.rules, ledger, now)
            if decision is None or decision.outbound is None:
                continue
            decisions[thread.key] = decision
            decided[decision.outbound.message_id] = (decision.status, decision.outbound.date)
            # Look again when it falls due; a due one stays on the agenda until written.
            if decision.status in ("waiting", "due"):
                agenda[decision.outbound.message_id] = decision.due_at
        state.set_agenda(account.name, agenda)
        state.set_decided(account.name, decided)
    return list(decisions.values())


# -- sync ------------------------------------------------------------------------------------


def _sync_drafts(account: Account, mailbox: Mailbox, state: State, drafts: str,
                 now: datetime, counts: SyncCounts) -> bool:
    """Drafts is small and changes under the user's hands: track deletions too.

    Unchanged UIDNEXT and message count mean nothing was added or removed (an add plus
    a delete would move UIDNEXT), so a quiet Drafts costs one STATUS.
    """
    status = mailbox.status(drafts)
    cp = state.checkpoint(account.name, drafts)
    if cp is not None and cp.uidvalidity != status.uidvalidity:
        with state.transaction():
            state.forget_folder(account.name, drafts)
        cp = None
    if cp is not None and (cp.uidnext, cp.messages) == (status.uidnext, status.messages):
        return False
    present = mailbox.all_uids(drafts)
    known = state.uids(account.name, drafts)
    new = sorted(present - known)
    records = read_records(account, mailbox, drafts, list(mailbox.fetch_headers(drafts, new)), counts)
    with state.transaction():
        state.drop_records(account.name, drafts, known - present)
        state.put_records(account.name, records)
        state.save_checkpoint(account.name, drafts,
                              Checkpoint(status.uidvalidity, status.uidnext, max(present, default=0),
                                         status.highestmodseq, status.messages), now)
    return True


def _reconcile(account: Account, mailbox: Mailbox, state: State, layout: Layout,
               now: datetime) -> None:
    """Follow the fate of each draft we wrote: still there, edited, sent, or deleted unsent.

    A follow-up of ours that the ledger does not know (state lost, or a crash between
    APPEND and the ledger write) is adopted first, so it is never written twice.
    """
    known = state.ledger(account.name)
    drafts = state.records(account.name, layout.drafts)
    adopt_found(account, mailbox, state, layout, known, drafts, now)
    for entry in [e for e in known.values() if e.fate in PENDING]:
        # Only what answers the followed-up message can be the sent follow-up, and only a
        # copy in Sent is the user's: a forged one in INBOX must not turn "deleted" into "sent".
        others = [r for r in state.answers_to(account.name, entry.outbound_id) if r.folder == layout.sent]
        others += state.records_for(account.name, [entry.nudge_id], [layout.sent])
        fate = _fate(account, entry, drafts, others)
        if fate == entry.fate:
            continue
        with state.transaction():
            state.set_fate(entry.nudge_id, fate, now)
        log.info("%s: follow-up %s for %s was %s", account.name, entry.stage, entry.outbound_id,
                 {EDITED: "edited by you: it is yours now", SENT: "sent",
                  DISMISSED: "deleted unsent: thread dismissed"}[fate])


def _fate(account: Account, entry: LedgerEntry, drafts: list[MessageRecord],
          others: list[MessageRecord]) -> Fate:
    copies = [r for r in drafts if r.message_id == entry.nudge_id]
    if copies:
        same = len(copies) == 1 and copies[0].uid == entry.uid
        return entry.fate if same else EDITED  # replaced by a client's save: edited
    # Some clients give an edited draft a new Message-ID; it still answers the same message.
    if any(entry.outbound_id in r.in_reply_to and account.is_identity(r.sender.email) for r in drafts):
        return EDITED
    sent = any(
        r.message_id == entry.nudge_id
        or (account.is_identity(r.sender.email) and entry.outbound_id in r.in_reply_to
            and r.date >= entry.appended_at - CLOCK_SLACK)
        for r in others
    )
    return SENT if sent else DISMISSED


# -- act ---------------------------------------------------------------------------------------


class _AppendGuard:
    """Finds a draft of ours already in Drafts: a crash after APPEND, or another instance
    (another machine, or a second installation with its own state). Searched right
    before every APPEND: another instance may have written it a second ago."""

    def __init__(self, mailbox: Mailbox, drafts: str):
        self.mailbox, self.drafts = mailbox, drafts

    def existing(self, nudge_id: str) -> list[int]:
        return self.mailbox.find_message_id(self.drafts, nudge_id)


def _after_append(account: Account, mailbox: Mailbox, drafts: str, entry: LedgerEntry,
                  uid: int | None, data: bytes) -> tuple[int | None, str]:
    """Look again after the APPEND: another instance may have appended the same follow-up
    between our search and ours. Keep the lowest UID, remove the other copies, and return
    the UID kept and its digest for the ledger.

    Every copy found here appeared after our search found none a moment ago, so none is an
    edit of the user's; we still remove a copy only if it carries our Message-ID and our
    X-Nudger-For (a client's save drops that header or changes the Message-ID), and by UID
    (delete_own_draft checks the UID still holds that Message-ID). Whoever appended a
    higher UID sees the lowest one when it looks, so the copies converge to one.
    """
    found = mailbox.find_message_id(drafts, entry.nudge_id)
    if not found or found == [uid]:
        return uid, hashlib.sha256(data).hexdigest()
    keep, *others = sorted(found)
    ours = _nudger_copies(mailbox, drafts, entry, [keep, *others])
    for copy in others:
        if copy not in ours:
            log.warning("%s: follow-up %s for %s is in %s more than once; UID %s is not as nudger "
                        "wrote it, so it stays", account.name, entry.stage, entry.outbound_id,
                        drafts, copy)
        elif mailbox.delete_own_draft(drafts, copy, entry.nudge_id):
            log.info("%s: another nudger wrote follow-up %s for %s at the same time; removed the "
                     "copy (UID %s), kept UID %s", account.name, entry.stage, entry.outbound_id,
                     copy, keep)
        else:
            log.warning("%s: follow-up %s for %s is in %s twice (UIDs %s and %s); could not remove "
                        "one (the server lacks UIDPLUS): delete UID %s yourself", account.name,
                        entry.stage, entry.outbound_id, drafts, keep, copy, copy)
    if keep == uid:
        return keep, hashlib.sha256(data).hexdigest()
    # Another instance's copy survives: remember its bytes, so a reply can withdraw it.
    kept = mailbox.fetch_message(drafts, keep, QUOTE_LIMIT) if keep in ours else None
    return keep, hashlib.sha256(kept).hexdigest() if kept is not None else ""


def _nudger_copies(mailbox: Mailbox, drafts: str, entry: LedgerEntry, uids: list[int]) -> set[int]:
    """Those of ``uids`` that are nudger's follow-up as written: our Message-ID, our marker."""
    from nudger.core.headers import normalise_message_id
    from nudger.core.parse import parse_record

    ours = normalise_message_id(entry.nudge_id), normalise_message_id(entry.outbound_id)
    return {item.uid for item in mailbox.fetch_headers(drafts, uids)
            if ((r := parse_record(item.header, folder=drafts, uid=item.uid)).message_id,
                r.nudge_for) == ours}


def _fresh_flags(mailbox: Mailbox, outbounds: list[MessageRecord]) -> dict[tuple[str, int], tuple[str, ...]]:
    """The user may have marked a message since we read it: ask again, one FETCH per folder."""
    by_folder: dict[str, list[int]] = {}
    for out in outbounds:
        by_folder.setdefault(out.folder, []).append(out.uid)
    return {(folder, uid): flags for folder, uids in by_folder.items()
            for uid, flags in mailbox.fetch_flags(folder, uids).items()}


def _write_draft(config: Config, account: Account, mailbox: Mailbox, state: State,
                 layout: Layout, decision: Decision, action: AppendDraft, now: datetime,
                 fresh: dict[tuple[str, int], tuple[str, ...]], guard: _AppendGuard) -> bool:
    out = action.outbound
    flags = fresh.get((out.folder, out.uid))
    if flags is None:
        # Deleted or moved since we read it: forget this copy so the thread is judged anew.
        with state.transaction():
            state.drop_records(account.name, out.folder, [out.uid])
        log.info("%s: %s is gone from %s; no follow-up", account.name, out.message_id, out.folder)
        return False
    if any(f.lower() == NO_NUDGE_KEYWORD.lower() for f in flags):
        # Remember the keyword (servers without CONDSTORE do not tell us): excluded from now on.
        with state.transaction():
            state.set_keywords(account.name, out.folder, {out.uid: flags})
        log.info("%s: %s was just marked %s; no follow-up", account.name, out.message_id,
                 NO_NUDGE_KEYWORD)
        return False
    entry = LedgerEntry(action.nudge_id, account.name, out.message_id, decision.thread_key,
                        action.stage, DRAFTED, now, folder=layout.drafts)
    # A crash between APPEND and the ledger write leaves the draft on the server: find it.
    existing = guard.existing(action.nudge_id)
    if existing:
        with state.transaction():
            state.record_nudge(replace(entry, uid=existing[0]))
        log.info("%s: follow-up %s for %r already in %s (UID %s); recorded it", account.name,
                 action.stage, out.subject, layout.drafts, existing[0])
        return False
    from nudger.core.compose import ComposeError, DraftInput, draft_bytes

    raw = mailbox.fetch_message(out.folder, out.uid, QUOTE_LIMIT) or b""
    sender_name = account.display_name or out.sender.name
    where, notes = f"{account.name}: {out.folder} UID {out.uid}", list[str]()
    try:  # pure work on the message's own data: what fails here fails for this thread only
        data = draft_bytes(DraftInput(
            account=account.name, outbound=out, outbound_text=text_of(raw), stage=action.stage,
            template=config.templates[action.template].body, sender=Addr(sender_name, out.sender.email),
            to=action.to, cc=action.cc, tz=account.timezone, now=now), mailbox.append_limit, notes)
    except Exception as exc:  # noqa: BLE001 - one hostile message must not stop every draft
        why = str(exc) if isinstance(exc, ComposeError) else f"internal error ({type(exc).__name__})"
        log.warning("%s: no follow-up for this message: %s", where, why,
                    exc_info=not isinstance(exc, ComposeError))
        return False
    for note in notes:
        log.warning("%s: follow-up %s: %s", where, action.stage, note)
    # The ledger row first: a disk too full to record the draft stops us before the APPEND,
    # and a stop between the two leaves "appending", which the next cycle resolves.
    with state.transaction():
        state.record_nudge(replace(entry, fate=APPENDING))
    uid = mailbox.append(layout.drafts, data, ("\\Draft", "\\Seen"), now)
    uid, digest = _after_append(account, mailbox, layout.drafts, entry, uid, data)
    with state.transaction():
        state.record_nudge(replace(entry, uid=uid, digest=digest))
    log.info("%s: drafted follow-up %s to %s for %r (rule %s)", account.name, action.stage,
             ", ".join(a.email for a in action.to), out.subject, action.rule)
    return True


def _withdraw(account: Account, mailbox: Mailbox, state: State, layout: Layout,
              entry: LedgerEntry, now: datetime) -> bool:
    """Remove our draft after a reply, only if it is byte for byte what we wrote."""
    if entry.uid is None or not entry.digest:
        return False
    current = mailbox.fetch_message(layout.drafts, entry.uid, QUOTE_LIMIT)
    if current is None:
        return False  # already gone; the next reconcile records its fate
    if hashlib.sha256(current).hexdigest() != entry.digest:
        with state.transaction():
            state.set_fate(entry.nudge_id, EDITED, now)
        log.info("%s: a reply came, but you changed follow-up %s: leaving it", account.name,
                 entry.stage)
        return False
    if not mailbox.delete_own_draft(layout.drafts, entry.uid, entry.nudge_id):
        log.warning("%s: a reply came; could not remove our follow-up %s from %s (server lacks "
                    "UIDPLUS); delete it yourself", account.name, entry.stage, layout.drafts)
        return False
    with state.transaction():
        state.set_fate(entry.nudge_id, WITHDRAWN, now)
        state.drop_records(account.name, layout.drafts, [entry.uid])
    log.info("%s: a reply came; removed our unsent follow-up %s for %s", account.name,
             entry.stage, entry.outbound_id)
    return True
