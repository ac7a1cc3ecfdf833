"""One cycle for one account: sync -> decide -> act.

Sync (``sync.py``, and Drafts in ``drafts.py``) brings the header records of new
messages into the state (only what changed since the last cycle); decide is the pure
``plan``, made final here: the flags of the due messages are read again and the cap on
new drafts applied, so ``--dry-run`` prints exactly what the run then does; act
(``drafts.py``) writes the drafts of the plan, each guarded so that a crash or a second
instance never makes a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from nudger.config.model import Account, Config
from nudger.core.ledger import APPENDING, DRAFTED, EDITED, SENT, Ledger, LedgerEntry
from nudger.core.plan import (
    AppendDraft,
    Decision,
    Status,
    WithdrawDraft,
    cap_new_drafts,
    decide,
    hold_sends,
)
from nudger.core.record import MessageRecord
from nudger.core.sending import SendDraft, send_time
from nudger.core.stats import KEPT
from nudger.core.threads import NO_NUDGE_KEYWORD, Thread, build_threads, is_no_nudge
from nudger.cycle.adopt import TRASH_CHECKED, search_trash
from nudger.cycle.context import Cycle
from nudger.cycle.digest import due_day, gather, is_empty, resume_digests, send_digest
from nudger.cycle.drafts import (
    AppendGuard,
    drafts_to_read,
    reconcile,
    sync_drafts,
    withdraw,
    write_draft,
)
from nudger.cycle.fanout import Ahead, Meeting, map_split
from nudger.cycle.outbox import Outbox
from nudger.cycle.records import SyncCounts
from nudger.cycle.state import State
from nudger.cycle.statefile import NOT_THE_FILE, translate
from nudger.cycle.sync import Progress, sync_watched
from nudger.cycle.thanks import decide_meetings, meetings_due
from nudger.errors import FolderUnavailable, NudgerError, StateCorrupt
from nudger.mail.layout import HeadStart, Layout, layout_of
from nudger.mail.mailbox import Mailbox

log = logging.getLogger(__name__)

# Seconds: the flags a sync read this long ago stand for the plan (a first cycle's,
# read a moment before); older, a due message's flags are asked again.
READ_FRESH = 60.0
AWAITING_STATUSES = ("due", "drafted", "waiting")  # what "awaiting a reply" adds up
_Judged = tuple[str, Decision | None, list[tuple[str, datetime]]]  # a thread's key, decision, answers


@dataclass
class CycleResult:
    account: str
    decisions: list[Decision] = field(default_factory=list)  # the threads looked at this cycle
    written: list[str] = field(default_factory=list)  # nudge Message-IDs appended
    withdrawn: list[str] = field(default_factory=list)  # our drafts removed after a reply
    sent: list[str] = field(default_factory=list)  # our follow-ups sent for the user (send_after)
    digest: str = ""  # the day's digest: "sent", "due" (a dry run), or ""
    send_error: NudgerError | None = None  # sending failed (login, line): said after the report
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
    sender: object = None,
    head: HeadStart | None = None,
) -> CycleResult:
    """Sync, decide, act. Only threads touched by new mail, whose time has come, or whose
    draft changed are evaluated, unless ``full`` (or the rules changed). ``head``: the
    folders' layout and statuses, found already on this connection (app/connect.py).

    A state file found damaged halfway is set aside and the cycle done again from an
    empty state (the server rebuilds it); any other trouble with the file is a StateError.
    """
    layout, statuses = head if head is not None else (layout_of(mailbox, account), {})
    ctx = Cycle(config, account, mailbox, state, layout, now, dry_run, sender, statuses=dict(statuses))
    try:
        return _cycle(ctx, progress, full)
    except NOT_THE_FILE:
        raise
    except sqlite3.Error as exc:
        problem = translate(exc, state.path)
        if not isinstance(problem, StateCorrupt) or state.path is None or dry_run:
            raise problem from exc
    state.rebuild(problem)  # (the same State, on a new file: ``ctx`` still holds)
    try:
        return _cycle(ctx, progress, full)
    except NOT_THE_FILE:
        raise
    except sqlite3.Error as exc:
        raise translate(exc, state.path) from exc


def _cycle(ctx: Cycle, progress: Progress | None, full: bool) -> CycleResult:
    account, state, now = ctx.account, ctx.state, ctx.now
    result = CycleResult(account.name, layout=ctx.layout, timezone=account.timezone)
    # A first cycle decides on the records it stored without reading them back (cycle/kept.py).
    with state.keeping_records(account.name):
        result.decisions, print_ = _sync_and_decide(ctx, result, progress, full)
    facts = {"plan_fingerprint": print_, "sent_folder": ctx.layout.sent,
             "drafts_folder": ctx.layout.drafts}
    with state.transaction():
        state.set_meta(account.name, "last_cycle", now.isoformat())
        for key, value in facts.items():
            if state.meta(account.name, key) != value:
                state.set_meta(account.name, key, value)
    if not ctx.dry_run:
        _prune(ctx)
        _act(ctx, result)
    _digest(ctx, result)
    result.totals = state.decided_counts(account.name, now - account.lookback)
    return result


def _sync_and_decide(ctx: Cycle, result: CycleResult, progress: Progress | None,
                     full: bool) -> tuple[list[Decision], str]:
    """Sync, then decide for the threads that need it (all of them when ``full`` or the
    rules changed). Returns the plan made final, and the fingerprint it was made under."""
    touched, before, ahead = _sync(ctx, result, progress)
    try:
        return _decide(ctx, result, touched, before, ahead, full)
    finally:
        if ahead is not None:
            ahead.drop()  # (not taken: stopped; taken: nothing left to do)


def _decide(ctx: Cycle, result: CycleResult, touched: set[str], before: dict[str, LedgerEntry] | None,
            ahead: _Ahead | None, full: bool) -> tuple[list[Decision], str]:
    account, state, now = ctx.account, ctx.state, ctx.now
    reconciled = before is not None
    if state.meta(account.name, TRASH_CHECKED) is None:
        # Before any draft this state does not know is written: what the user deleted.
        full = search_trash(ctx) or full
    print_ = fingerprint(ctx.config, account)
    result.full = full = full or state.meta(account.name, "plan_fingerprint") != print_
    if full:
        seeds = state.ours_since(account.name, account.identities, now - account.lookback)
        seeds += state.pending_outbounds(account.name)
    else:
        seeds = sorted(touched) + state.due_agenda(account.name, now)
    meetings = ctx.config.meetings.thank_you and (
        full or bool(touched) or reconciled or meetings_due(state, account.name, now))
    ledger = Ledger()
    if full or seeds or reconciled or meetings:  # a quiet cycle decides nothing, so reads no ledger
        ledger = Ledger(state.ledger(account.name).values())
        if not full and before is not None:
            # Only the threads whose draft changed fate (or appeared): Drafts also moves
            # when we append, and one deleted draft must not re-report every other one.
            seeds += [e.outbound_id for e in ledger.entries.values() if before.get(e.nudge_id) != e]
    decisions = _evaluate(ctx, ledger, seeds, full, ahead)
    state.stop_keeping()  # (its records are decided on: the rest of the cycle reads the file)
    if meetings:
        decisions += decide_meetings(ctx, ledger)
    return _final(ctx, ledger, decisions), print_


def _sync(ctx: Cycle, result: CycleResult, progress: Progress | None
          ) -> tuple[set[str], dict[str, LedgerEntry] | None, _Ahead | None]:
    """Sync the watched folders and Drafts, and follow our drafts' fates if anything
    moved. Returns the keys of the messages new or changed, the ledger from before
    the drafts were reconciled (None: nothing to reconcile), and a first cycle's
    evaluation begun on the second core (``_judge_ahead``)."""
    counts = SyncCounts()
    # (A first cycle's: what its evaluation begun early takes the ledger to be.)
    early = (ctx.state.ledger(ctx.name), ctx.state.pending_outbounds(ctx.name)) if ctx.state.kept else None
    # Drafts always (its status is how it is read), and every watched folder: one read
    # before is skipped when nothing changed; a new one is opened anyway, but its size
    # tells whether its headers can be fetched with its search (imap_saved.py). (All in
    # the one round trip asked for Drafts; with LIST-STATUS, in the listing's.)
    ctx.check_all(ctx.layout.checked)
    # What Drafts and Trash will be asked next goes out with the watched folders' searches.
    if drafts_to_read(ctx):
        ctx.mailbox.search_ahead(ctx.layout.drafts, "all")
    if ctx.layout.trash and ctx.state.meta(ctx.name, TRASH_CHECKED) is None:
        ctx.mailbox.search_ahead(ctx.layout.trash, "marked")
    ahead = None
    try:
        with ctx.state.deferring(ctx.name):  # (a first sync's writes, written as the judging starts)
            touched = sync_watched(ctx, counts, progress)
            ahead = _judge_ahead(ctx, *early) if early else None
        try:
            drafts_changed = sync_drafts(ctx, counts)
        except FolderUnavailable as exc:  # unlike a watched folder, it cannot be done without
            raise FolderUnavailable(exc.folder, f"{exc}; nudger cannot know or write its drafts "
                                    f"without its Drafts folder, so this cycle stops here") from exc
        result.fetched, result.skipped = counts.fetched, counts.skipped
        if not (touched or drafts_changed or ctx.state.has_fate(ctx.name, APPENDING)):
            return touched, None, ahead
        before = ctx.state.ledger(ctx.name)
        reconcile(ctx)
    except BaseException:
        if ahead is not None:
            ahead.drop()
        raise
    return touched, before, ahead


@dataclass
class _Ahead:
    """A first cycle's judging of its threads, begun in a forked child as soon as its sync
    has read the watched folders (``fanout.Ahead``), group by group from the first: this
    process meanwhile writes what the sync held back and reads Drafts and Trash, then
    judges the last groups while the child finishes (``fanout.Meeting``). A group's
    answer depends only on its records (the account, rules, clock and ledger being the
    same): the child's stands for each group this process has of the very same records,
    with the same ledger; any other (a draft the user keeps may join a thread) is judged
    here."""

    child: Ahead[list[tuple[tuple[int, ...], list[_Judged]]]]
    meeting: Meeting
    entries: list[tuple[str, LedgerEntry]]  # the ledger it judges with

    def take(self, ctx: Cycle, groups: list[list[MessageRecord]], ledger: Ledger) -> list[_Judged] | None:
        if list(ledger.entries.items()) != self.entries:  # (Drafts or Trash told of drafts)
            return None
        stop = self.meeting.split(len(groups))
        mine = [_judge_group(ctx, ledger, group) for group in groups[stop:]]
        theirs = dict(self.child.take() or ())
        done = [found if (found := theirs.get(_identity(group))) is not None
                else _judge_group(ctx, ledger, group) for group in groups[:stop]]
        return [j for judged in done + mine for j in judged]

    def drop(self) -> None:
        self.child.drop()


def _identity(group: list[MessageRecord]) -> tuple[int, ...]:
    """A group as the very records it holds (a child forked shares their addresses)."""
    return tuple(map(id, group))


def _judge_ahead(ctx: Cycle, entries: dict[str, LedgerEntry], pending: list[str]) -> _Ahead | None:
    """A big first cycle's judging, begun now on the second core, from the records kept
    (the child reads nothing of the file, which this process writes meanwhile)."""
    kept = ctx.state.kept
    if kept is None or ctx.state.held is None:
        return None
    account, layout = ctx.account, ctx.layout
    since = (ctx.now - account.lookback).astimezone(UTC).isoformat()
    ledger, meeting = Ledger(entries.values()), Meeting()

    def work() -> list[tuple[tuple[int, ...], list[_Judged]]]:
        seeds = kept.ours_since(set(account.identities), since) + pending
        judged: list[tuple[tuple[int, ...], list[_Judged]]] = []
        for group in kept.groups(seeds, layout.watched):
            if meeting.stopped(len(judged)):
                break
            judged.append((_identity(group), _judge_group(ctx, ledger, group)))
            meeting.done(len(judged))
        return judged

    child = Ahead.start(work, kept.records.values(), len(kept.records))
    return _Ahead(child, meeting, list(entries.items())) if child is not None else None


def _evaluate(ctx: Cycle, ledger: Ledger, seeds: list[str], full: bool,
              ahead: _Ahead | None = None) -> list[Decision]:
    """Decide for the threads of ``seeds``, one thread at a time; keep the agenda and
    each thread's status (what the totals count)."""
    account, state, layout, now = ctx.account, ctx.state, ctx.layout, ctx.now
    if not seeds and not full:
        return []  # a quiet cycle: nothing to decide, nothing to write
    decisions: dict[str, Decision] = {}
    agenda: dict[str, datetime | None] = {}
    decided: dict[str, tuple[str, datetime] | None] = {}
    answered: dict[str, datetime] = {}  # our follow-ups whose thread was answered, and when

    def note(key: str, decision: Decision | None, answers: list[tuple[str, datetime]]) -> None:
        if decision is None or decision.outbound is None:
            return
        answered.update(answers)
        decisions[key] = decision
        decided[decision.outbound.message_id] = (decision.status, decision.outbound.date)
        # Look again when it falls due; a due one stays on the agenda until written.
        if decision.status in ("waiting", "due"):
            agenda[decision.outbound.message_id] = decision.due_at
        elif decision.send_at is not None and (decision.action or decision.send_at > now):
            agenda[decision.outbound.message_id] = decision.send_at  # nudger sends it then

    with state.transaction():
        if full:  # (a full evaluation starts from an empty agenda)
            state.clear_agenda(account.name)
            for judged in _judge_window(ctx, ledger, seeds, ahead):
                note(*judged)
        for thread in () if full else threads_of(state, account.name, seeds, layout.watched,
                                                  layout.sent, subject_links=account.subject_threading):
            agenda.update((m.message_id, None) for m in thread.messages)
            decided.update((m.message_id, None) for m in thread.messages)
            note(*_judge(ctx, ledger, thread))
        state.set_agenda(account.name, agenda)
        state.set_decided(account.name, decided)
        news = state.note_answered(answered)
    _tell_edited_answered(ctx, ledger, news, decisions.values())
    return list(decisions.values())


def _judge(ctx: Cycle, ledger: Ledger, thread: Thread) -> _Judged:
    decision = decide(thread, ctx.account, ctx.config.rules, ledger, ctx.now)
    answers = []
    if decision is not None and decision.status == Status.REPLIED and decision.nudged \
            and decision.answered_at:
        answers = [(e.nudge_id, decision.answered_at) for e in
                   ledger.for_messages(m.message_id for m in thread.messages)]
    return thread.key, decision, answers


def _judge_group(ctx: Cycle, ledger: Ledger, group: list[MessageRecord]) -> list[_Judged]:
    return [_judge(ctx, ledger, thread) for thread in
            build_threads(_linked(group, ctx.account.subject_threading), sent=ctx.layout.sent)]


def _judge_window(ctx: Cycle, ledger: Ledger, seeds: list[str], ahead: _Ahead | None) -> list[_Judged]:
    """Every thread of the window judged, in the order ``threads_of`` gives them: by the
    child begun ahead, if it judged these very groups; else a big window's later groups
    in a forked copy of this process, on the second core (fanout)."""
    groups = list(ctx.state.linked_groups(ctx.account.name, seeds, ctx.layout.watched))
    judged = ahead.take(ctx, groups, ledger) if ahead is not None else None
    if judged is not None:
        return judged
    if ahead is not None:
        ahead.drop()
    return [j for done in map_split(lambda group: _judge_group(ctx, ledger, group), groups, len,
                                    shared=lambda group: group) for j in done]


def _tell_edited_answered(ctx: Cycle, ledger: Ledger, news: list[str],
                          decisions: Iterable[Decision]) -> None:
    """Once, when a thread is answered: the follow-up the user edited stays in Drafts
    (it is theirs, never removed by us), so they must hear that it is no longer needed."""
    subjects = {d.pending: d.subject for d in decisions if d.pending}
    for nudge_id in news:
        entry = ledger.get(nudge_id)
        if entry is not None and entry.fate == EDITED:
            log.warning("%s: %r was answered; your edited follow-up %s is still in %s: send or "
                        "delete it yourself", ctx.name, subjects.get(nudge_id, entry.outbound_id),
                        entry.stage, entry.folder or ctx.layout.drafts)


def threads_of(state: State, account: str, seeds: Iterable[str], folders: Iterable[str],
               sent: str, whole_window: bool = False,
               subject_links: bool = True) -> Iterator[Thread]:
    """The threads the seed messages belong to, each once, read from the state's links.

    ``whole_window``: the seeds are all the user's messages of the window; grouping
    all links at once is then much cheaper than a walk per seed. Without
    ``subject_links`` (``subject_threading = false``), the links a sync inferred from
    subjects while it was on are left out: the threads are those a fresh state builds.
    """
    folders = tuple(folders)
    if whole_window:
        for group in state.linked_groups(account, seeds, folders):
            yield from build_threads(_linked(group, subject_links), sent=sent)
        return
    done: set[str] = set()
    for seed in seeds:
        if seed in done:
            continue
        ids = state.thread_ids(account, [seed])
        done |= ids
        yield from build_threads(_linked(state.records_for(account, ids, folders), subject_links),
                                 sent=sent)


def _linked(records: list[MessageRecord], subject_links: bool) -> list[MessageRecord]:
    if subject_links:
        return records
    return [replace(r, inferred_parent="") if r.inferred_parent else r for r in records]


def _final(ctx: Cycle, ledger: Ledger, decisions: list[Decision]) -> list[Decision]:
    """The plan made final: what a dry run prints is what the run does.

    The user may have marked a due message $NoNudge, or moved it, since the sync read it
    (and a server without CONDSTORE tells the sync nothing of changed flags): its flags
    are read again, and a thread that changed is decided again, until every due message
    was checked (but those the sync read a moment ago: a first cycle's). Then at most
    ``max_new_drafts`` of them are written this cycle. What changes on the server after
    this (a keyword set a second later) cannot change the plan; a message deleted
    meanwhile only makes the act phase skip its draft.
    """
    checked = {m for m, at in ctx.read.items() if time.monotonic() - at < READ_FRESH}
    while due := [d.action.outbound for d in decisions if isinstance(d.action, AppendDraft)
                  and (d.action.outbound.folder, d.action.outbound.uid) not in checked]:
        checked |= {(o.folder, o.uid) for o in due}
        again = _note_fresh_flags(ctx, due, _fresh_flags(ctx.mailbox, due))
        if not again:
            break
        kept = {d.thread_key: d for d in decisions
                if d.outbound is None or d.outbound.message_id not in again}
        kept.update((d.thread_key, d) for d in _evaluate(ctx, ledger, again, full=False))
        decisions = list(kept.values())
    decisions = hold_sends(decisions, Outbox(ctx.state).steps(ctx.name))
    appends = sum(1 for d in decisions if isinstance(d.action, AppendDraft))
    if appends > ctx.account.max_new_drafts and not ctx.dry_run:
        log.info("%s: %d follow-ups are due; writing the %d oldest now, the rest in later cycles",
                 ctx.name, appends, ctx.account.max_new_drafts)
    return cap_new_drafts(decisions, ctx.account.max_new_drafts, ctx.now)


def _fresh_flags(mailbox: Mailbox, outbounds: list[MessageRecord]) -> dict[tuple[str, int], tuple[str, ...]]:
    """The user may have marked a message since we read it: ask again, one FETCH per folder."""
    by_folder: dict[str, list[int]] = {}
    for out in outbounds:
        by_folder.setdefault(out.folder, []).append(out.uid)
    return {(folder, uid): flags for folder, uids in by_folder.items()
            for uid, flags in mailbox.fetch_flags(folder, uids).items()}


def _note_fresh_flags(ctx: Cycle, due: list[MessageRecord],
                      flags: dict[tuple[str, int], tuple[str, ...]]) -> list[str]:
    """Keep in the state what the fresh flags show: a copy gone from its folder is
    forgotten, a $NoNudge remembered (servers without CONDSTORE do not tell the sync: it
    is excluded from now on). Returns the Message-IDs whose threads must be decided again."""
    gone = [o for o in due if (o.folder, o.uid) not in flags]
    marked = [o for o in due if is_no_nudge(flags.get((o.folder, o.uid), ()))]
    if not gone and not marked:
        return []
    with ctx.state.transaction():
        for out in gone:
            ctx.state.drop_records(ctx.name, out.folder, [out.uid])
        for out in marked:
            ctx.state.set_keywords(ctx.name, out.folder, {out.uid: flags[(out.folder, out.uid)]})
        # Nothing stands on a copy gone; another copy of it, if any, is decided again.
        ctx.state.set_agenda(ctx.name, {o.message_id: None for o in gone})
        ctx.state.set_decided(ctx.name, {o.message_id: None for o in gone})
    for out in gone:
        log.info("%s: %s is gone from %s; no follow-up", ctx.name, out.message_id, out.folder)
    for out in marked:
        log.info("%s: %s was just marked %s; no follow-up", ctx.name, out.message_id,
                 NO_NUDGE_KEYWORD)
    return [o.message_id for o in gone + marked]


def _act(ctx: Cycle, result: CycleResult) -> None:
    """Do what the plan says: write its drafts (the oldest due first), withdraw the ones
    a reply made unneeded. Nothing is decided here any more."""
    appends = sorted((d for d in result.decisions if isinstance(d.action, AppendDraft)),
                     key=lambda d: d.due_at or ctx.now)
    guard = AppendGuard(ctx.mailbox, ctx.layout.drafts)
    written: list[MessageRecord] = []
    sends: dict[str, datetime | None] = {}  # a draft under send_after: looked at again then
    rules = {r.name: r for r in ctx.config.rules}
    for decision in appends:
        assert isinstance(decision.action, AppendDraft)
        if write_draft(ctx, decision, guard):
            result.written.append(decision.action.nudge_id)
            if decision.action.stage:  # (a thank-you waits on no reply: not in the totals)
                written.append(decision.action.outbound)
            after = rules[decision.action.rule].send_after if decision.action.rule in rules else None
            if after is not None and ctx.account.smtp is not None:
                sends[decision.action.outbound.message_id] = send_time(ctx.now, after, ctx.account)
    for decision in result.decisions:
        if isinstance(decision.action, WithdrawDraft):
            if withdraw(ctx, decision.action.entry):
                result.withdrawn.append(decision.action.entry.nudge_id)
    if written:  # the totals count the account after this cycle; a drafted one is not due
        with ctx.state.transaction():
            ctx.state.set_decided(ctx.name, {o.message_id: (DRAFTED, o.date) for o in written})
            ctx.state.set_agenda(ctx.name, {o.message_id: sends.get(o.message_id) for o in written})
    _send(ctx, result)


def _send(ctx: Cycle, result: CycleResult) -> None:
    """The follow-ups due to be sent (cycle/send.py), then their threads decided again:
    sent, or a reply came meanwhile (then our draft is withdrawn now)."""
    from nudger.cycle.send import send_planned

    tried: list[Decision] = []
    try:
        send_planned(ctx, result.decisions, ctx.sender, tried)
    except NudgerError as exc:  # the SMTP login or line: the drafts of this cycle stand,
        result.send_error = exc  # and the sends before it went out (said below)
    if not tried:
        return
    ledger = Ledger(ctx.state.ledger(ctx.name).values())
    ids_sent = [d.action.entry.nudge_id for d in tried if isinstance(d.action, SendDraft)]
    result.sent += [n for n in ids_sent if ledger.entries[n].fate == SENT]
    ids = [d.outbound.message_id for d in tried if d.outbound is not None]
    again = {d.thread_key: d for d in _evaluate(ctx, ledger, ids, full=False)}
    for decision in again.values():
        if isinstance(decision.action, WithdrawDraft) and withdraw(ctx, decision.action.entry):
            result.withdrawn.append(decision.action.entry.nudge_id)
    # A sent one keeps its action (--json says "sent"); the others are decided anew.
    result.decisions = [_sent(d, ctx) if isinstance(d.action, SendDraft) and d.action.entry.nudge_id
                        in result.sent else again.get(d.thread_key, d) for d in result.decisions]


def _sent(decision: Decision, ctx: Cycle) -> Decision:
    return replace(decision, status=Status.SENT, due_at=None,
                   reason=f"follow-up {decision.stage} sent for you at "
                          f"{ctx.now.astimezone(ctx.account.timezone):%a %Y-%m-%d %H:%M}: it had "
                          "waited untouched in Drafts")


def _digest(ctx: Cycle, result: CycleResult) -> None:
    """The day's digest, when it is due (a dry run only says it would send it)."""
    if ctx.dry_run:
        day = due_day(ctx)
        result.digest = "due" if day is not None and not is_empty(gather(ctx, day)) else ""
        return
    resume_digests(ctx)
    try:
        result.digest = "sent" if send_digest(ctx, ctx.sender) else ""
    except NudgerError as exc:
        result.send_error = result.send_error or exc


def _prune(ctx: Cycle) -> None:
    """Once a day, forget mail older than twice the look-back window: nothing that old can
    decide a nudge any more, and the state must not grow with the mailbox for months."""
    state, name, now, lookback = ctx.state, ctx.name, ctx.now, ctx.account.lookback
    last = state.meta(name, "last_prune")
    if last is not None and now - datetime.fromisoformat(last) < timedelta(days=1):
        return
    with state.transaction():
        gone = state.prune(name, now - 2 * lookback)
        state.prune_history(name, now - KEPT)  # what ``stats`` counts: a year of follow-ups
        Outbox(state).prune(name, now - KEPT)
        state.set_meta(name, "last_prune", now.isoformat())
    if gone:
        log.info("%s: forgot %d message(s) older than %d days", name, gone, 2 * lookback.days)
