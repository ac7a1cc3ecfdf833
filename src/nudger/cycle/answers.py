"""Who answered a thread: the replies from other people the state has, by the messages
they answer. Shared by sending (a held follow-up is settled) and the digest."""

from __future__ import annotations

from nudger.core.record import HUMAN, MessageRecord
from nudger.cycle.context import Cycle


def human_answers(ctx: Cycle, ids: list[str]) -> list[MessageRecord]:
    """Replies from other people to any of ``ids`` (auto-replies and bounces are none)."""
    return [r for mid in ids for r in ctx.state.answers_to(ctx.name, mid)
            if r.kind == HUMAN and not ctx.account.is_identity(r.sender.email)]
