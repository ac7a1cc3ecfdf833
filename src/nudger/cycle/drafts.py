"""Our drafts in the Drafts folder: read it, follow each draft's fate, write, withdraw.

Every APPEND is guarded so that a crash or a second instance never leaves a duplicate:
the ledger row is written first ("appending"), Drafts is searched for the draft right
before the APPEND, and searched again right after it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import replace
from datetime import datetime

from nudger.config.model import Account
from nudger.core.bodytext import text_of
from nudger.core.drafttext import text_digest
from nudger.core.headers import Headers, normalise_message_id
from nudger.core.language import LANGUAGE_NAMES, language_of
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
    LedgerEntry,
)
from nudger.core.parse import parse_record
from nudger.core.plan import AppendDraft, Decision
from nudger.core.record import Addr, MessageRecord
from nudger.cycle.adopt import adopt_found
from nudger.cycle.context import Cycle
from nudger.cycle.records import SyncCounts, read_records
from nudger.cycle.state import Checkpoint
from nudger.mail.mailbox import Mailbox

log = logging.getLogger(__name__)
# The language model (~90 MB) loads on first use: one load for every account's worker,
# not one each when several write their first draft at once (a detection takes 0.05 ms).
_DETECTING = threading.Lock()

QUOTE_LIMIT = 2 * 1024 * 1024  # the outbound we quote; larger ones are cut


def drafts_to_read(ctx: Cycle) -> bool:
    """Whether sync_drafts will read Drafts' UIDs, by the status asked with the others
    (none: it asks, and tells why it cannot). Nothing asked or changed here."""
    status = ctx.statuses.get(ctx.layout.drafts)
    if status is None:
        return False
    cp = ctx.state.checkpoint(ctx.name, ctx.layout.drafts)
    return cp is None or (cp.uidvalidity, cp.uidnext, cp.messages) != (
        status.uidvalidity, status.uidnext, status.messages)


def sync_drafts(ctx: Cycle, counts: SyncCounts) -> bool:
    """Drafts is small and changes under the user's hands: track deletions too.

    Unchanged UIDNEXT and message count mean nothing was added or removed (an add plus
    a delete would move UIDNEXT), so a quiet Drafts costs one STATUS.
    """
    state, drafts = ctx.state, ctx.layout.drafts
    status = ctx.status(drafts)
    cp = state.checkpoint(ctx.name, drafts)
    if cp is not None and cp.uidvalidity != status.uidvalidity:
        with state.transaction():
            state.forget_folder(ctx.name, drafts)
        cp = None
    if cp is not None and (cp.uidnext, cp.messages) == (status.uidnext, status.messages):
        return False
    present = ctx.mailbox.all_uids(drafts)
    known = state.uids(ctx.name, drafts)
    new = sorted(present - known)
    records = read_records(ctx.account, ctx.mailbox, drafts,
                           list(ctx.mailbox.fetch_headers(drafts, new)), counts)
    with state.transaction():
        state.drop_records(ctx.name, drafts, known - present)
        state.put_records(ctx.name, records)
        state.save_checkpoint(ctx.name, drafts,
                              Checkpoint(status.uidvalidity, status.uidnext, max(present, default=0),
                                         status.highestmodseq, status.messages), ctx.now)
    return True


def reconcile(ctx: Cycle) -> None:
    """Follow the fate of each draft we wrote: still there, edited, sent, or deleted unsent.

    A follow-up of ours that the ledger does not know (state lost, or a crash between
    APPEND and the ledger write) is adopted first, so it is never written twice.
    """
    state, sent = ctx.state, ctx.layout.sent
    known = state.ledger(ctx.name)
    drafts = state.records(ctx.name, ctx.layout.drafts)
    adopt_found(ctx, known, drafts)
    for entry in [e for e in known.values() if e.fate in PENDING]:
        if _saved_again_unchanged(ctx, entry, drafts):
            continue
        # Only what answers the followed-up message can be the sent follow-up, and only a
        # copy in Sent is the user's: a forged one in INBOX must not turn "deleted" into "sent".
        others = [r for r in state.answers_to(ctx.name, entry.outbound_id) if r.folder == sent]
        others += state.records_for(ctx.name, [entry.nudge_id], [sent])
        fate, when = _fate(ctx.account, entry, drafts, others)
        if fate == entry.fate:
            continue
        with state.transaction():
            state.set_fate(entry.nudge_id, fate, when or ctx.now)
        log.info("%s: follow-up %s for %s was %s", ctx.name, entry.stage, entry.outbound_id,
                 {EDITED: "edited by you: it is yours now", SENT: "sent",
                  DISMISSED: "deleted unsent: thread dismissed"}[fate])


def _saved_again_unchanged(ctx: Cycle, entry: LedgerEntry, drafts: list[MessageRecord]) -> bool:
    """Our draft under a new UID with the text we wrote: a client opened it and saved it
    again (mutt's recall and postpone appends it anew). Still ours: the ledger follows it
    to its new UID and bytes, so a reply still withdraws it; but nudger never sends it."""
    copies = [r for r in drafts if r.message_id == entry.nudge_id]
    if entry.fate != DRAFTED or not entry.text_digest or len(copies) != 1 \
            or copies[0].uid == entry.uid:
        return False
    data = ctx.mailbox.fetch_message(ctx.layout.drafts, copies[0].uid, QUOTE_LIMIT)
    if data is None or text_digest(data) != entry.text_digest:
        return False
    with ctx.state.transaction():
        # Not own: the copy is the client's APPEND, not ours (never sent by nudger).
        ctx.state.record_nudge(replace(entry, uid=copies[0].uid, own=False,
                                       digest=hashlib.sha256(data).hexdigest()))
    log.info("%s: follow-up %s for %s was saved again unchanged (now UID %s): still nudger's",
             ctx.name, entry.stage, entry.outbound_id, copies[0].uid)
    return True


def _fate(account: Account, entry: LedgerEntry, drafts: list[MessageRecord],
          others: list[MessageRecord]) -> tuple[Fate, datetime | None]:
    """What became of the draft, and when it went out if it was sent (its copy's Date)."""
    copies = [r for r in drafts if r.message_id == entry.nudge_id]
    if copies:
        same = len(copies) == 1 and copies[0].uid == entry.uid
        return (entry.fate if same else EDITED), None  # replaced by a client's save: edited
    # Some clients give an edited draft a new Message-ID; it still answers the same message.
    if any(entry.outbound_id in r.in_reply_to and account.is_identity(r.sender.email) for r in drafts):
        return EDITED, None
    sent = [
        r.date for r in others
        if r.message_id == entry.nudge_id
        or (account.is_identity(r.sender.email) and entry.outbound_id in r.in_reply_to
            and r.date >= entry.appended_at - CLOCK_SLACK)
    ]
    return (SENT, min(sent)) if sent else (DISMISSED, None)


class AppendGuard:
    """Finds a draft of ours already in Drafts: a crash after APPEND, or another instance
    (another machine, or a second installation with its own state). Searched right
    before every APPEND: another instance may have written it a second ago."""

    def __init__(self, mailbox: Mailbox, drafts: str):
        self.mailbox, self.drafts = mailbox, drafts

    def existing(self, nudge_id: str) -> list[int]:
        return self.mailbox.find_message_id(self.drafts, nudge_id)


def write_draft(ctx: Cycle, decision: Decision, guard: AppendGuard) -> bool:
    """Write the follow-up ``decision`` plans; True when it was appended.

    The plan is final, flags included; what changes on the server after it was made
    (the message deleted or moved meanwhile) only makes this skip the draft."""
    action, state = decision.action, ctx.state
    assert isinstance(action, AppendDraft)
    out = action.outbound
    entry = LedgerEntry(action.nudge_id, ctx.name, out.message_id, decision.thread_key,
                        action.stage, DRAFTED, ctx.now, folder=ctx.layout.drafts)
    # A crash between APPEND and the ledger write leaves the draft on the server: find it.
    existing = guard.existing(action.nudge_id)
    if existing:
        with state.transaction():
            state.record_nudge(replace(entry, uid=existing[0]))
            state.note_drafted(entry, action.rule)
        log.info("%s: follow-up %s for %r already in %s (UID %s); recorded it", ctx.name,
                 action.stage, out.subject, ctx.layout.drafts, existing[0])
        return False
    raw = ctx.mailbox.fetch_message(out.folder, out.uid, QUOTE_LIMIT)
    if raw is None:
        # Deleted or moved since the plan: forget this copy so the thread is judged anew.
        with state.transaction():
            state.drop_records(ctx.name, out.folder, [out.uid])
        log.info("%s: %s is gone from %s; no follow-up", ctx.name, out.message_id, out.folder)
        return False
    composed = _compose(ctx, action, raw)
    if composed is None:
        return False
    data, language = composed
    # The ledger row first: a disk too full to record the draft stops us before the APPEND,
    # and a stop between the two leaves "appending", which the next cycle resolves.
    with state.transaction():
        state.record_nudge(replace(entry, fate=APPENDING))
    appended = ctx.mailbox.append(ctx.layout.drafts, data, ("\\Draft", "\\Seen"), ctx.now)
    uid, digest, text = _after_append(ctx, entry, appended, data)
    # Ours to send only if the copy kept is the one our APPEND wrote (not another instance's).
    own = appended is not None and uid == appended
    with state.transaction():
        state.record_nudge(replace(entry, uid=uid, digest=digest, text_digest=text, own=own))
        state.note_drafted(entry, action.rule)
    what = f"follow-up {action.stage}" if action.stage else "a thank-you"
    log.info("%s: drafted %s to %s for %r (rule %s, in %s)", ctx.name, what,
             ", ".join(a.email for a in action.to), action.subject or out.subject, action.rule,
             LANGUAGE_NAMES[language])
    return True


def _compose(ctx: Cycle, action: AppendDraft, raw: bytes) -> tuple[bytes, str] | None:
    """The draft's bytes and its language; None (and a warning) if this message cannot be
    followed up."""
    from nudger.core.compose import ComposeError, DraftInput, draft_bytes

    out, account = action.outbound, ctx.account
    sender = action.sender or Addr(account.display_name or out.sender.name, out.sender.email)
    where, notes = f"{account.name}: {out.folder} UID {out.uid}", list[str]()
    try:  # pure work on the message's own data: what fails here fails for this thread only
        # The follow-up is written in the language of the user's message: read from the
        # text fetched here for the quote, so a cycle without a draft to write costs nothing.
        text = text_of(raw)
        with _DETECTING:
            language = language_of(Headers(raw).text("content-language"), text)
        data = draft_bytes(DraftInput(
            account=account.name, outbound=out, outbound_text=text, stage=action.stage,
            template=ctx.config.templates[action.template].body_for(language), sender=sender,
            to=action.to, cc=action.cc, tz=account.timezone, now=ctx.now, language=language,
            subject=action.subject, quote=action.quote),
            ctx.mailbox.append_limit, notes)
    except Exception as exc:  # noqa: BLE001 - one hostile message must not stop every draft
        why = str(exc) if isinstance(exc, ComposeError) else f"internal error ({type(exc).__name__})"
        log.warning("%s: no follow-up for this message: %s", where, why,
                    exc_info=not isinstance(exc, ComposeError))
        return None
    for note in notes:
        log.warning("%s: follow-up %s: %s", where, action.stage, note)
    return data, language


def _after_append(ctx: Cycle, entry: LedgerEntry, uid: int | None,
                  data: bytes) -> tuple[int | None, str, str]:
    """Look again after the APPEND: another instance may have appended the same follow-up
    between our search and ours. Keep the lowest UID, remove the other copies, and return
    the UID kept and its digests (bytes, text) for the ledger.

    Every copy found here appeared after our search found none a moment ago, so none is an
    edit of the user's; we still remove a copy only if it carries our Message-ID and our
    X-Nudger-For (a client's save drops that header or changes the Message-ID), and by UID
    (delete_own_draft checks the UID still holds that Message-ID). Whoever appended a
    higher UID sees the lowest one when it looks, so the copies converge to one.
    """
    mailbox, drafts = ctx.mailbox, ctx.layout.drafts
    found = mailbox.find_message_id(drafts, entry.nudge_id)
    if not found or found == [uid]:
        return uid, hashlib.sha256(data).hexdigest(), text_digest(data)
    keep, *others = sorted(found)
    ours = _nudger_copies(mailbox, drafts, entry, [keep, *others])
    for copy in others:
        if copy not in ours:
            log.warning("%s: follow-up %s for %s is in %s more than once; UID %s is not as nudger "
                        "wrote it, so it stays", ctx.name, entry.stage, entry.outbound_id,
                        drafts, copy)
        elif mailbox.delete_own_draft(drafts, copy, entry.nudge_id):
            log.info("%s: another nudger wrote follow-up %s for %s at the same time; removed the "
                     "copy (UID %s), kept UID %s", ctx.name, entry.stage, entry.outbound_id,
                     copy, keep)
        else:
            log.warning("%s: follow-up %s for %s is in %s twice (UIDs %s and %s); could not remove "
                        "one (the server lacks UIDPLUS): delete UID %s yourself", ctx.name,
                        entry.stage, entry.outbound_id, drafts, keep, copy, copy)
    if keep == uid:
        return keep, hashlib.sha256(data).hexdigest(), text_digest(data)
    # Another instance's copy survives: remember its bytes, so a reply can withdraw it.
    kept = mailbox.fetch_message(drafts, keep, QUOTE_LIMIT) if keep in ours else None
    if kept is None:
        return keep, "", ""
    return keep, hashlib.sha256(kept).hexdigest(), text_digest(kept)


def _nudger_copies(mailbox: Mailbox, drafts: str, entry: LedgerEntry, uids: list[int]) -> set[int]:
    """Those of ``uids`` that are nudger's follow-up as written: our Message-ID, our marker."""
    ours = normalise_message_id(entry.nudge_id), normalise_message_id(entry.outbound_id)
    return {item.uid for item in mailbox.fetch_headers(drafts, uids)
            if ((r := parse_record(item.header, folder=drafts, uid=item.uid)).message_id,
                r.nudge_for) == ours}


def withdraw(ctx: Cycle, entry: LedgerEntry) -> bool:
    """Remove our draft after a reply, only if it is byte for byte what we wrote."""
    state, drafts = ctx.state, ctx.layout.drafts
    if entry.uid is None or not entry.digest:
        return False
    current = ctx.mailbox.fetch_message(drafts, entry.uid, QUOTE_LIMIT)
    if current is None:
        return False  # already gone; the next reconcile records its fate
    if hashlib.sha256(current).hexdigest() != entry.digest:
        with state.transaction():
            state.set_fate(entry.nudge_id, EDITED, ctx.now)
        log.warning("%s: %s was answered; your edited follow-up %s is still in %s: send or "
                    "delete it yourself", ctx.name, entry.outbound_id, entry.stage, drafts)
        return False
    if not ctx.mailbox.delete_own_draft(drafts, entry.uid, entry.nudge_id):
        log.warning("%s: a reply came; could not remove our follow-up %s from %s (server lacks "
                    "UIDPLUS); delete it yourself", ctx.name, entry.stage, drafts)
        return False
    with state.transaction():
        state.set_fate(entry.nudge_id, WITHDRAWN, ctx.now)
        state.drop_records(ctx.name, drafts, [entry.uid])
    log.info("%s: a reply came; removed our unsent follow-up %s for %s", ctx.name,
             entry.stage, entry.outbound_id)
    return True
