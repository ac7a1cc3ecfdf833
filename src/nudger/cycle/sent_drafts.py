"""The draft of a follow-up that went out: removed from Drafts (by UID, still holding its
Message-ID), its records dropped, and a warning when it cannot be removed. One way for a
finished send and for a send a lost state finds in Sent."""

from __future__ import annotations

import logging

from nudger.cycle.context import Cycle

log = logging.getLogger(__name__)


def remove_sent_draft(ctx: Cycle, uid: int, message_id: str, subject: str) -> bool:
    """Remove the draft at ``uid`` of the follow-up ``message_id``, which went out; True
    when it is gone from Drafts (removed now, or already)."""
    drafts = ctx.layout.drafts
    if ctx.mailbox.delete_own_draft(drafts, uid, message_id):
        gone = True
    else:
        gone = ctx.mailbox.fetch_message(drafts, uid, 1) is None
        if not gone:
            log.warning("%s: follow-up %r went out; could not remove its draft from %s (the server "
                        "lacks UIDPLUS): delete it yourself", ctx.name, subject, drafts)
    if gone:
        with ctx.state.transaction():
            ctx.state.drop_records(ctx.name, drafts, [uid])
    return gone
