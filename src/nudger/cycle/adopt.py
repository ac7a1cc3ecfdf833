"""The state is a cache of the server: rebuild the ledger of our drafts from what it shows.

A follow-up the ledger does not know (the state was lost or set aside, or a crash came
between APPEND and the ledger write) is found by its derived Message-ID and adopted:

- in Sent: the user sent it; the next stage is timed from it;
- in Drafts: ours and untouched if the digest stamped into it still matches (so a reply
  withdraws it), else the user's (edited: never removed);
- in Trash: the user deleted it: the thread is dismissed. Trash is not watched; it is
  searched once per state, before the first draft is written, so a lost state never
  nudges a thread the user dismissed.

nudger's marks are believed only there (Drafts, Sent, Trash): a copy elsewhere may be a
forward or a quote. An id must also be the one derived from the message it follows up,
for this account: a copy of someone else's nudger is not ours.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from nudger.config.model import Account
from nudger.core.ledger import (
    APPENDING,
    DISMISSED,
    DRAFTED,
    EDITED,
    SENT,
    Fate,
    LedgerEntry,
    nudge_message_id,
    parse_nudge_id,
)
from nudger.core.parse import parse_record
from nudger.core.record import MessageRecord
from nudger.core.sending import SENDING_KEYWORD, Step
from nudger.core.stamp import untouched
from nudger.core.subjects import strip_reply_prefixes
from nudger.cycle.context import Cycle
from nudger.cycle.outbox import NUDGE, Outbox, Row
from nudger.cycle.sent_drafts import remove_sent_draft
from nudger.errors import FolderUnavailable

log = logging.getLogger(__name__)

BODY_LIMIT = 2 * 1024 * 1024  # as much of a draft as we write (its quote is cut there)
TRASH_CHECKED = "trash_checked"  # meta: when Trash was searched for this state
_HOW = {SENT: "sent by you", DRAFTED: "untouched in Drafts", EDITED: "in Drafts, changed by you",
        DISMISSED: "deleted unsent (in Trash): thread dismissed"}


def followed_up(account: Account, record: MessageRecord) -> tuple[str, int] | None:
    """(the Message-ID it follows up, its stage) if ``record`` is a follow-up of this account."""
    stage = parse_nudge_id(record.message_id)
    if stage is None:  # (stage 0: a meeting's thank-you)
        return None
    domain = record.message_id.rpartition("@")[2].rstrip(">")
    for outbound in (record.nudge_for, *record.in_reply_to):
        if outbound and nudge_message_id(account.name, outbound, stage, domain) == record.message_id:
            return outbound, stage
    return None


def _entry(account: Account, record: MessageRecord, fate: Fate, folder: str,
           known: dict[str, LedgerEntry]) -> LedgerEntry | None:
    """A ledger entry for ``record`` if it is ours and the ledger does not know it yet (or
    knows only that we were about to append it)."""
    before = known.get(record.message_id)
    if before is not None and before.fate != APPENDING:
        return None
    found = followed_up(account, record)
    if found is None:
        return None
    outbound, stage = found
    return LedgerEntry(record.message_id, account.name, outbound,
                       before.thread_key if before else outbound, stage, fate,
                       before.appended_at if before else record.date,
                       record.date if fate == SENT else None, folder=folder, uid=record.uid)


def adopt_found(ctx: Cycle, known: dict[str, LedgerEntry], drafts: list[MessageRecord]) -> None:
    """Record the follow-ups found in Sent and Drafts that the ledger does not know;
    resolve the ones left "appending" by a cycle that stopped. Updates ``known``."""
    account, mailbox, state, layout, now = ctx.account, ctx.mailbox, ctx.state, ctx.layout, ctx.now
    adopted = [e for r in state.nudges_in(account.name, layout.sent)
               if (e := _entry(account, r, SENT, layout.sent, known)) is not None]
    seen = {e.nudge_id for e in adopted}
    found = [(r, e) for r in drafts if r.message_id not in seen
             and (e := _entry(account, r, DRAFTED, layout.drafts, known)) is not None]
    bodies = mailbox.fetch_messages(layout.drafts, [r.uid for r, _ in found], BODY_LIMIT) if found else {}
    for r, entry in found:
        if r.message_id in seen:
            continue  # a second copy: _fate calls that edited
        seen.add(r.message_id)
        data = bodies.get(r.uid)
        if data is not None and untouched(data):
            entry = replace(entry, digest=hashlib.sha256(data).hexdigest())
            adopted.append(_was_being_sent(ctx, r, entry) if r.has_keyword(SENDING_KEYWORD) else entry)
        else:  # unstamped (an older nudger) or changed: the user's, never removed
            adopted.append(replace(entry, fate=EDITED))
    sent_now = {e.nudge_id for e in adopted if e.fate == SENT}
    # Sent just before the state was lost: its copy is in Sent. Only a draft still as
    # written is removed; one the user changed since is theirs.
    marked = [r for r in drafts if r.message_id in sent_now and r.has_keyword(SENDING_KEYWORD)]
    texts = {r.uid: bodies[r.uid] for r in marked if r.uid in bodies}  # (read above already)
    if rest := [r.uid for r in marked if r.uid not in texts]:
        texts.update(mailbox.fetch_messages(layout.drafts, rest, BODY_LIMIT))
    for r in marked:
        if (data := texts.get(r.uid)) is not None and untouched(data):
            _remove_sent_draft(ctx, r)
    left = [e for e in known.values() if e.fate == APPENDING and e.nudge_id not in seen]
    gone = []
    for entry in left:
        if layout.trash and mailbox.find_message_id(layout.trash, entry.nudge_id):
            adopted.append(replace(entry, fate=DISMISSED, fate_at=now))
        else:
            gone.append(entry)  # the APPEND never happened: it is written when due
    with state.transaction():
        for entry in adopted:
            state.record_nudge(entry)
        for entry in gone:
            state.forget_nudge(entry.nudge_id)
    for entry in gone:
        del known[entry.nudge_id]
    for entry in adopted:
        known[entry.nudge_id] = entry
        log.info("%s: found our follow-up %s for %s: %s; recorded it", account.name, entry.stage,
                 entry.outbound_id, _HOW[entry.fate])


def _was_being_sent(ctx: Cycle, record: MessageRecord, entry: LedgerEntry) -> LedgerEntry:
    """Our draft, marked as being sent, found by a state that does not know it (lost
    after a crash mid-send): never sent again. In Sent, it went (adopt_found removes its
    draft, as a finished send's). Not there: in doubt, left for the user, and said so."""
    if ctx.mailbox.find_message_id(ctx.layout.sent, record.message_id):
        return replace(entry, fate=SENT, fate_at=ctx.now)
    subject = strip_reply_prefixes(record.subject) or "(no subject)"
    Outbox(ctx.state).write(Row(ctx.name, record.message_id, NUDGE, subject, Step.DOUBT, ctx.now,
                                detail="found marked as being sent by a state that was lost",
                                uid=record.uid))
    log.warning("%s: follow-up %r was being sent when nudger's state was lost, and it is not in "
                "%s; nudger cannot tell whether it went out and will not send it: send the "
                "draft yourself if it did not arrive", ctx.name, subject, ctx.layout.sent)
    return entry


def _remove_sent_draft(ctx: Cycle, record: MessageRecord) -> None:
    """The draft of a follow-up that went out: out of Drafts, as after a finished send."""
    if ctx.dry_run:
        return  # the server untouched: the run after it removes the draft
    if remove_sent_draft(ctx, record.uid, record.message_id, record.subject):
        log.info("%s: follow-up %r went out before nudger's state was lost (it is in %s); "
                 "removed its draft", ctx.name, record.subject, ctx.layout.sent)


def search_trash(ctx: Cycle) -> bool:
    """Once per state: the follow-ups the user deleted unsent, which the ledger does not
    know, dismiss their threads. True when one was recorded (the plan must be redone)."""
    account, mailbox, state, layout, now = ctx.account, ctx.mailbox, ctx.state, ctx.layout, ctx.now
    adopted: list[LedgerEntry] = []
    if layout.trash:
        known = state.ledger(account.name)
        try:
            uids = mailbox.find_marked(layout.trash)
            headers = list(mailbox.fetch_headers(layout.trash, uids)) if uids else []
        except FolderUnavailable as exc:
            # Not a reason to stop every cycle: only a lost state needs Trash, and it is
            # asked again next cycle until it answers.
            log.warning("%s: cannot search %s for follow-ups you deleted (%s); until it can be "
                        "read, a follow-up deleted before the state was lost may be written again",
                        account.name, layout.trash, exc.detail or exc)
            return False
        for item in headers:
            try:
                record = parse_record(item.header, folder=layout.trash, uid=item.uid,
                                      internaldate=item.internaldate)
            except Exception:  # noqa: BLE001 - a broken message in Trash is not ours to judge
                continue
            entry = _entry(account, record, DISMISSED, layout.trash, known)
            if entry is not None and entry.nudge_id not in {e.nudge_id for e in adopted}:
                adopted.append(replace(entry, fate_at=now, uid=None))
    with state.transaction():
        for entry in adopted:
            state.record_nudge(entry)
        state.set_meta(account.name, TRASH_CHECKED, now.isoformat())
    for entry in adopted:
        log.info("%s: found our follow-up %s for %s: %s; recorded it", account.name, entry.stage,
                 entry.outbound_id, _HOW[DISMISSED])
    return bool(adopted)
