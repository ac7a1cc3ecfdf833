"""Sending our untouched follow-ups (``send_after``), at most once even across kill -9.

Each send walks the journal (cycle/outbox.py): intent -> smtp-started -> accepted ->
sent-copy -> done, each step on disk before it is taken. Right before SMTP the draft is
read again (still byte for byte ours?), the SMTP connection opened, and the thread
synced and decided again (a reply that came a minute ago cancels the send); a draft
already in Sent or marked as being sent is not sent, nor one gone when it is marked.
The bytes handed over are journaled, so the Sent copy is filed even if the draft goes.
A run that stopped midway is finished by the next: before "smtp-started" nothing went
out; after "accepted" only the Sent copy and the draft's removal are left; in between,
Sent is searched for the Message-ID, and when it is not there nudger never sends again
but says so (log, ``status``, the digest).

Only a draft this state's own APPEND wrote is sent (``LedgerEntry.own``): one adopted
from the server may have gone out under a state that was lost, or be another instance's.
Right before SMTP the draft gets the ``$NudgerSending`` keyword, so a state rebuilt after
a crash there knows it was being sent (cycle/adopt.py) and never sends it again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from typing import Protocol

from nudger.core.ledger import DISMISSED, EDITED, SENT, WITHDRAWN, Ledger, LedgerEntry
from nudger.core.plan import Decision, decide
from nudger.core.sending import (
    NOT_WRITTEN_HERE,
    SENDING_KEYWORD,
    SendDraft,
    Step,
    envelope,
    outgoing,
    saves_copy,
)
from nudger.core.stamp import untouched
from nudger.cycle.answers import human_answers
from nudger.cycle.context import Cycle
from nudger.cycle.drafts import QUOTE_LIMIT
from nudger.cycle.outbox import NUDGE, Outbox, Row
from nudger.cycle.records import SyncCounts
from nudger.cycle.sent_drafts import remove_sent_draft
from nudger.cycle.sync import sync_watched
from nudger.mail.mailbox import Mark
from nudger.mail.smtp import SendRefused, SendUncertain

log = logging.getLogger(__name__)


class Sender(Protocol):
    def open(self) -> None: ...
    def send(self, msg: EmailMessage, sender: str, recipients: list[str]) -> list[str]: ...
    def close(self) -> None: ...


def send_planned(ctx: Cycle, decisions: list[Decision], sender: Sender | None,
                 tried: list[Decision]) -> None:
    """Finish the sends a stopped run left, then make the sends of the plan. Fills ``tried``
    with the decisions whose send was tried (their threads are decided again after), as it
    goes: when a later send raises, the ones before it may have gone out."""
    outbox = Outbox(ctx.state)
    settle(ctx, outbox)
    for row in outbox.rows(ctx.name, NUDGE):
        if row.step not in (Step.DONE, Step.DOUBT, Step.REFUSED):
            resume(ctx, outbox, row)
    for decision in decisions:
        if not isinstance(decision.action, SendDraft) or sender is None:
            continue
        found = outbox.get(ctx.name, decision.action.entry.nudge_id)
        if found is not None and found.step != Step.INTENT:
            continue  # finished just now, or held: never twice
        tried.append(decision)
        send_one(ctx, outbox, decision, sender)


_SETTLED = {SENT: "you sent it", DISMISSED: "you deleted it", WITHDRAWN: "a reply came"}


def settle(ctx: Cycle, outbox: Outbox) -> None:
    """Forget the follow-ups held in doubt or refused once the user has acted: the draft
    left Drafts (sent or deleted), or the thread was answered. Until then ``status`` and
    every digest list them."""
    held = [r for r in outbox.rows(ctx.name, NUDGE) if r.step in (Step.DOUBT, Step.REFUSED)]
    if not held:
        return
    ledger = ctx.state.ledger(ctx.name)
    for row in held:
        entry = ledger.get(row.message_id)
        why = _SETTLED.get(entry.fate) if entry is not None else "its draft is gone"
        if why is None and entry is not None and _answered(ctx, entry):
            why = "its thread was answered"
        if why is not None:
            with ctx.state.transaction():  # without its row, still never nudger's to send
                if entry is not None and entry.own:
                    ctx.state.record_nudge(replace(entry, own=False))
            outbox.drop(ctx.name, row.message_id)
            log.info("%s: follow-up %r, which nudger did not send, is settled (%s): no longer "
                     "listed", ctx.name, row.subject, why)


def _answered(ctx: Cycle, entry: LedgerEntry) -> bool:
    """Whether someone else replied to the thread after this follow-up was drafted."""
    return any(r.date >= entry.appended_at
               for r in human_answers(ctx, [entry.outbound_id, entry.nudge_id]))


def send_one(ctx: Cycle, outbox: Outbox, decision: Decision, sender: Sender) -> bool:
    """Send one planned follow-up; True when it went out."""
    action = decision.action
    assert isinstance(action, SendDraft)
    entry, drafts = action.entry, ctx.layout.drafts
    what = f"follow-up {entry.stage} for {decision.subject!r}"
    row = Row(ctx.name, entry.nudge_id, NUDGE, decision.subject, Step.INTENT, ctx.now, uid=entry.uid)
    outbox.write(row)
    data = _ready(ctx, outbox, decision, row, sender)
    if data is None:
        if (left := outbox.get(ctx.name, entry.nudge_id)) is not None and left.step == Step.INTENT:
            outbox.drop(ctx.name, entry.nudge_id)  # (a row held in doubt stays)
        return False
    assert entry.uid is not None
    msg = outgoing(data, ctx.now, ctx.account.timezone)
    mail_from, recipients = envelope(msg)
    handed = msg.as_bytes(policy=policy.SMTP)
    outbox.write(replace(row, step=Step.STARTED, data=handed))
    try:
        refused = sender.send(msg, mail_from, recipients)
    except SendRefused as exc:  # nothing went out: the draft as it was, mark off
        ctx.mailbox.mark_own_draft(drafts, entry.uid, entry.nudge_id, SENDING_KEYWORD, on=False)
        if exc.permanent:
            outbox.write(replace(row, step=Step.REFUSED, detail=str(exc)))
            log.warning("%s; %s was not sent and stays in %s for you", exc, what, drafts)
        else:
            outbox.drop(ctx.name, entry.nudge_id)
            log.warning("%s; %s was not sent; nudger tries again next cycle", exc, what)
        return False
    except SendUncertain as exc:
        outbox.write(replace(row, step=Step.DOUBT, detail=str(exc)))
        log.warning("%s; %s may or may not have gone out: nudger will not send it again (look "
                    "in Sent, and send the draft yourself if it is not there)", exc, what)
        return False
    outbox.write(replace(row, step=Step.ACCEPTED))
    if refused:
        log.warning("%s: %s: the server refused %s; the others have it", ctx.name, what,
                    ", ".join(refused))
    log.info("%s: sent %s to %s (rule %s)", ctx.name, what, ", ".join(recipients), decision.rule)
    finish(ctx, outbox, replace(row, step=Step.ACCEPTED), handed)
    return True


def _ready(ctx: Cycle, outbox: Outbox, decision: Decision, row: Row, sender: Sender) -> bytes | None:
    """The bytes of the draft, marked as being sent, if it may go out now: still ours as
    written, its thread still waiting, nothing showing it went already. The SMTP
    connection is opened before the last look at the thread, so that look and the mark
    come right before DATA. None (said why) when it may not go."""
    assert isinstance(decision.action, SendDraft)
    entry, drafts = decision.action.entry, ctx.layout.drafts
    what = f"follow-up {entry.stage} for {decision.subject!r}"
    data = _still_ours(ctx, decision, what)
    if data is None:
        return None
    try:
        sender.open()
    except Exception:
        outbox.drop(ctx.name, entry.nudge_id)  # nothing was handed over: try again later
        raise
    why = _changed(ctx, decision) or _went_already(ctx, outbox, row)
    if why is not None:
        log.info("%s: not sending %s: %s", ctx.name, what, why)
        return None
    assert entry.uid is not None  # (_still_ours read it)
    # The mark first: a state rebuilt after a crash from here on never sends it again.
    if ctx.mailbox.mark_own_draft(drafts, entry.uid, entry.nudge_id, SENDING_KEYWORD) == Mark.GONE:
        log.info("%s: you changed or deleted %s just now; nudger does not send it", ctx.name, what)
        return None
    return data


def _still_ours(ctx: Cycle, decision: Decision, what: str) -> bytes | None:
    """The draft's bytes if it is ours (our own APPEND wrote it) and still in Drafts
    exactly as written; else None, said why."""
    assert isinstance(decision.action, SendDraft)
    entry, drafts = decision.action.entry, ctx.layout.drafts
    if not entry.own:  # the plan says so too; a last guard, the one that matters
        log.info("%s: not sending %s: %s", ctx.name, what, NOT_WRITTEN_HERE)
        return None
    data = ctx.mailbox.fetch_message(drafts, entry.uid, QUOTE_LIMIT) if entry.uid else None
    if data is None:
        log.info("%s: %s is no longer in %s; not sending it", ctx.name, what, drafts)
        return None
    if hashlib.sha256(data).hexdigest() != entry.digest or not untouched(data):
        with ctx.state.transaction():
            ctx.state.set_fate(entry.nudge_id, EDITED, ctx.now)
        log.info("%s: you changed %s: it is yours now, nudger will not send it", ctx.name, what)
        return None
    return data


def _went_already(ctx: Cycle, outbox: Outbox, row: Row) -> str | None:
    """Why this draft may have gone out already though the journal did not show it: its
    Message-ID is in Sent (the user's to look at now, as an adopted draft is), or the
    draft carries the mark of a send begun (in doubt: held and listed, never sent)."""
    entry = ctx.state.ledger(ctx.name)[row.message_id]
    assert row.uid is not None
    if ctx.mailbox.find_message_id(ctx.layout.sent, row.message_id):
        with ctx.state.transaction():
            ctx.state.record_nudge(replace(entry, own=False))
        return f"it is already in {ctx.layout.sent}; nudger leaves it for you"
    flags = ctx.mailbox.fetch_flags(ctx.layout.drafts, [row.uid]).get(row.uid, ())
    if SENDING_KEYWORD.lower() in {f.lower() for f in flags}:
        outbox.write(replace(row, step=Step.DOUBT, detail="its draft is marked as being sent"))
        return ("its draft is marked as being sent, so a send may have begun; nudger will not "
                "send it: look in your Sent folder, and send the draft yourself if it is not there")
    return None


def _changed(ctx: Cycle, decision: Decision) -> str | None:
    """Why the thread no longer wants this send, asked of the server just now: its new
    mail synced (a STATUS per folder when none came) and the thread decided again."""
    from nudger.cycle.cycle import threads_of

    assert isinstance(decision.action, SendDraft) and decision.outbound is not None
    sync_watched(ctx, SyncCounts())
    ledger = Ledger(ctx.state.ledger(ctx.name).values())
    for thread in threads_of(ctx.state, ctx.name, [decision.outbound.message_id],
                             ctx.layout.watched, ctx.layout.sent):
        again = decide(thread, ctx.account, ctx.config.rules, ledger, ctx.now)
        if again is None:
            continue
        same = decision.action.entry.nudge_id
        if isinstance(again.action, SendDraft) and again.action.entry.nudge_id == same:
            return None
        return again.reason
    return "its thread is gone from the server"


def resume(ctx: Cycle, outbox: Outbox, row: Row) -> None:
    """Finish what a stopped run left of a send, never sending anything a second time."""
    what = f"follow-up {row.subject!r}"
    if row.step == Step.INTENT:
        outbox.drop(ctx.name, row.message_id)  # it stopped before handing anything over
        return
    if row.step == Step.STARTED:
        if not ctx.mailbox.find_message_id(ctx.layout.sent, row.message_id):
            outbox.write(replace(row, step=Step.DOUBT, detail="stopped while sending"))
            log.warning("%s: nudger stopped while sending %s and cannot tell whether it went out "
                        "(it is not in %s); it will not send it again: send the draft yourself "
                        "if it did not arrive", ctx.name, what, ctx.layout.sent)
            return
        row = replace(row, step=Step.ACCEPTED)
        outbox.write(row)
        log.info("%s: %s was sent before nudger stopped (found in %s)", ctx.name, what, ctx.layout.sent)
    data = outbox.handed(ctx.name, row.message_id)
    if data is None:  # a row of an older nudger: the Sent copy from the draft, if it is there
        draft = (ctx.mailbox.fetch_message(ctx.layout.drafts, row.uid, QUOTE_LIMIT)
                 if row.uid is not None else None)
        if draft is not None:
            data = outgoing(draft, row.at, ctx.account.timezone).as_bytes(policy=policy.SMTP)
    finish(ctx, outbox, row, data)


def finish(ctx: Cycle, outbox: Outbox, row: Row, data: bytes | None) -> None:
    """After the server took it (``data``, as handed over): its copy in Sent (once), the
    draft out of Drafts."""
    smtp, sent = ctx.account.smtp, ctx.layout.sent
    if row.step == Step.ACCEPTED:
        if smtp is not None and saves_copy(smtp) and not ctx.mailbox.find_message_id(sent, row.message_id):
            if data is None:
                log.warning("%s: follow-up %r went out, but its draft is gone, so nudger cannot put "
                            "a copy in %s", ctx.name, row.subject, sent)
            else:
                ctx.mailbox.append(sent, data, ("\\Seen",), row.at)
        row = replace(row, step=Step.FILED)
        outbox.write(row)
    if row.uid is not None:
        remove_sent_draft(ctx, row.uid, row.message_id, row.subject)
    with ctx.state.transaction():
        ctx.state.set_fate(row.message_id, SENT, row.at)
    outbox.write(replace(row, step=Step.DONE))
