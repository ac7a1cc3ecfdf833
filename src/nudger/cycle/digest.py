"""The morning digest of one account: due at [digest] ``at`` in its time zone, sent once a
day to the user's first identity through the same journal as a follow-up (outbox.py):
a run that stopped while sending it looks for it in INBOX, and when in doubt sends none
that day rather than two."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime, timedelta

from nudger.core.digest import DigestInput, Item, compose_digest, digest_id, is_empty
from nudger.core.ledger import PENDING
from nudger.core.record import Addr
from nudger.core.sending import SAYS, Step, envelope
from nudger.core.stats import reply_counts
from nudger.cycle.answers import human_answers
from nudger.cycle.context import Cycle
from nudger.cycle.outbox import DIGEST, NUDGE, Outbox, Row
from nudger.cycle.send import Sender
from nudger.mail.smtp import SendRefused, SendUncertain

log = logging.getLogger(__name__)

LAST = "last_digest"  # meta: when the last digest went out


def due_day(ctx: Cycle) -> date | None:
    """The day whose digest is due now, or None: not configured for this account, not
    yet ``at`` today, or today's already sent (or in doubt)."""
    digest = ctx.config.digest
    if digest is None or ctx.name not in digest.accounts or ctx.account.smtp is None:
        return None
    local = ctx.now.astimezone(ctx.account.timezone)
    if local.time() < digest.at:
        return None
    row = Outbox(ctx.state).get(ctx.name, _id(ctx, local.date()))
    return local.date() if row is None or row.step == Step.INTENT else None


def _id(ctx: Cycle, day: date) -> str:
    return digest_id(ctx.name, day, ctx.account.identities[0].rpartition("@")[2])


def _me(ctx: Cycle) -> Addr:
    return Addr(ctx.account.display_name, ctx.account.identities[0])


def resume_digests(ctx: Cycle) -> None:
    """A digest a stopped run was handing over: in INBOX, it went; else it counts as sent
    in doubt (one missed digest is better than two). Rows of past days are forgotten."""
    outbox = Outbox(ctx.state)
    # Two days back: a day that is "today" in no time zone any more is never due again.
    past = (ctx.now.astimezone(ctx.account.timezone).date() - timedelta(days=2)).isoformat()
    for row in outbox.rows(ctx.name, DIGEST):
        if row.subject < past and row.step not in (Step.STARTED, Step.ACCEPTED):
            outbox.drop(ctx.name, row.message_id)
        elif row.step == Step.INTENT:
            outbox.drop(ctx.name, row.message_id)
        elif row.step in (Step.STARTED, Step.ACCEPTED):
            found = bool(ctx.mailbox.find_message_id("INBOX", row.message_id))
            outbox.write(replace(row, step=Step.DONE if found else Step.DOUBT))
            if not found:
                log.warning("%s: nudger stopped while sending the digest of %s and cannot tell "
                            "whether it went out; it will not send that one again", ctx.name,
                            row.subject)


def send_digest(ctx: Cycle, sender: Sender | None) -> bool:
    """Send today's digest if it is due and has something to tell; True when sent."""
    day = due_day(ctx)
    if day is None or sender is None:
        return False
    facts = gather(ctx, day)
    if is_empty(facts):
        return False  # nothing to tell yet; a later cycle today may have something
    outbox, message_id = Outbox(ctx.state), _id(ctx, day)
    row = Row(ctx.name, message_id, DIGEST, day.isoformat(), Step.INTENT, ctx.now)
    if _arrived(ctx, message_id):  # sent by a state that was lost: never a second one
        outbox.write(replace(row, step=Step.DONE))
        log.info("%s: the digest of %s was sent already (found on the server); not sending "
                 "it again", ctx.name, day)
        return False
    msg = compose_digest(facts, message_id)
    mail_from, recipients = envelope(msg)
    outbox.write(row)
    try:
        sender.open()
    except Exception:
        outbox.drop(ctx.name, message_id)
        raise
    outbox.write(replace(row, step=Step.STARTED))
    try:
        sender.send(msg, mail_from, recipients)
    except SendRefused as exc:
        if exc.permanent:  # refused for good: asking again each poll would change nothing
            outbox.write(replace(row, step=Step.REFUSED, detail=str(exc)))
            log.warning("%s; the digest of %s was not sent; nudger tries again tomorrow", exc, day)
        else:
            outbox.drop(ctx.name, message_id)
            log.warning("%s; the digest was not sent (tried again next cycle)", exc)
        return False
    except SendUncertain as exc:
        outbox.write(replace(row, step=Step.DOUBT, detail=str(exc)))
        log.warning("%s; the digest may or may not have gone out: not sent again today", exc)
        return False
    with ctx.state.transaction():
        ctx.state.set_meta(ctx.name, LAST, ctx.now.isoformat())
    outbox.write(replace(row, step=Step.DONE))
    log.info("%s: sent the digest of %s to %s", ctx.name, day, recipients[0])
    return True


def _arrived(ctx: Cycle, message_id: str) -> bool:
    """Whether the day's digest (its Message-ID is the day's) is in INBOX or Sent already.
    Asked once a day: right before the digest would go out, whose row then says done."""
    return any(ctx.mailbox.find_message_id(folder, message_id)
               for folder in dict.fromkeys(("INBOX", ctx.layout.sent)))


def gather(ctx: Cycle, day: date) -> DigestInput:
    """The facts of the digest, from the state alone."""
    state, name, tz = ctx.state, ctx.name, ctx.account.timezone
    last = state.meta(name, LAST)
    since = datetime.fromisoformat(last) if last else ctx.now - timedelta(days=1)
    ledger = sorted(state.ledger(name).values(), key=lambda e: e.appended_at)
    waiting = tuple(Item(*_about(ctx, e.outbound_id), e.appended_at) for e in ledger
                    if e.fate in PENDING)
    rows = Outbox(state).rows(name, NUDGE)
    by_id = {e.nudge_id: e for e in ledger}
    sent = tuple(Item(r.subject, _about(ctx, by_id[r.message_id].outbound_id)[1], r.at) for r in rows
                 if r.step == Step.DONE and r.at >= since and r.message_id in by_id)
    not_sent = tuple(Item(r.subject, _about(ctx, by_id[r.message_id].outbound_id)[1], r.at)
                     for r in rows if r.step in SAYS and r.message_id in by_id)
    answered = []
    for outbound in {e.outbound_id for e in ledger}:
        mine = [e for e in ledger if e.outbound_id == outbound]
        answers = human_answers(ctx, [outbound, *(e.nudge_id for e in mine)])
        first = min((a for a in answers if a.date >= mine[0].appended_at), key=lambda a: a.date, default=None)
        if first is not None and first.date >= since:
            answered.append(Item(_about(ctx, outbound)[0], first.sender.email, first.date))
    # The rate over the look-back window, counted as `nudger stats` counts it.
    replied, nudged = reply_counts(state.history(name), ctx.now - ctx.account.lookback)
    return DigestInput(name, _me(ctx), day, ctx.now, tz, waiting, sent,
                       tuple(sorted(answered, key=lambda i: i.when)), not_sent, nudged, replied)


def _about(ctx: Cycle, outbound_id: str) -> tuple[str, str]:
    """The subject of a message of yours and whom it went to, as the state has them."""
    from nudger.core.subjects import strip_reply_prefixes

    found = ctx.state.records_for(ctx.name, [outbound_id], ctx.layout.watched)
    if not found:
        return "(no longer in the look-back window)", ""
    out = found[0]
    return (strip_reply_prefixes(out.subject) or "(no subject)",
            ", ".join(a.email for a in out.recipients))
