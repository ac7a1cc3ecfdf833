"""The meetings' thank-yous in a cycle: the calendar records of the state -> decisions.

A cycle looks at the meetings when mail arrived, a draft changed, or the time noted
for the next thank-you came (the meta row ``meetings_next``): a quiet cycle reads
nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from nudger.config.model import Account, Meetings
from nudger.core.ledger import Ledger
from nudger.core.meetings import THANKS_STAGE, decide_meeting, meetings_of
from nudger.core.plan import Decision, Status
from nudger.cycle.context import Cycle
from nudger.cycle.state import State

NEXT = "meetings_next"  # when the earliest waiting thank-you falls due (ISO); none: no row


def meetings_due(state: State, account: str, now: datetime) -> bool:
    """Whether a waiting thank-you's time has come since the last look."""
    noted = state.meta(account, NEXT)
    return bool(noted) and datetime.fromisoformat(noted or "") <= now


def plan_meetings(state: State, account: Account, meetings: Meetings, ledger: Ledger,
                  watched: Iterable[str], sent: str, now: datetime) -> list[Decision]:
    """One decision per meeting of the watched folders (see core.meetings)."""
    watched = tuple(watched)
    decisions = []
    for meeting in meetings_of(state.calendar_records(account.name, watched)):
        anchor = meeting.anchor
        # The invitation's thread: the answers to it, and to our thank-you once sent.
        asked = [] if anchor is None else [anchor.message_id, *(
            e.nudge_id for e in ledger.for_messages([anchor.message_id]) if e.stage == THANKS_STAGE)]
        answers = list({r.message_id: r for mid in asked for r in state.answers_to(account.name, mid)
                        if r.folder in watched}.values())
        decision = decide_meeting(meeting, answers, account, meetings, ledger, sent, now)
        if decision is not None:
            decisions.append(decision)
    return decisions


def decide_meetings(ctx: Cycle, ledger: Ledger) -> list[Decision]:
    """The cycle's meeting decisions; notes when to look again."""
    decisions = plan_meetings(ctx.state, ctx.account, ctx.config.meetings, ledger,
                              ctx.layout.watched, ctx.layout.sent, ctx.now)
    waiting = [d.due_at for d in decisions if d.status == Status.WAITING and d.due_at]
    answered = {e.nudge_id: d.answered_at for d in decisions if d.answered_at and d.outbound
                for e in ledger.for_messages([d.outbound.message_id]) if e.stage == THANKS_STAGE}
    with ctx.state.transaction():
        ctx.state.set_meta(ctx.name, NEXT, min(waiting).isoformat() if waiting else "")
        ctx.state.note_answered(answered)  # what ``stats`` counts of the thank-yous
    return decisions
