"""``status`` and ``explain``: answers from the state, without connecting."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime

from rich.console import Console
from rich.table import Table

from nudger.app.report import line, totals_text
from nudger.config.model import Account, Config
from nudger.core.headers import normalise_message_id
from nudger.core.ledger import Ledger
from nudger.core.plan import Decision, decide, hold_sends
from nudger.core.record import AUTO_REPLY, HUMAN
from nudger.core.rules import due_at, timing_notes
from nudger.core.sending import SAYS
from nudger.core.threads import Thread
from nudger.cycle.cycle import AWAITING_STATUSES, threads_of
from nudger.cycle.outbox import NUDGE, Outbox, Row
from nudger.cycle.state import State
from nudger.cycle.statefile import FILE_NAME
from nudger.cycle.thanks import plan_meetings
from nudger.errors import EX_OK, NudgerError

SHOWN = ("due", "drafted", "waiting", "sent", "dismissed", "bounced")


def _threads(state: State, account: Account, now: datetime,
             seeds: list[str] | None = None) -> tuple[list[Thread], datetime | None]:
    """Threads of the user's messages in the look-back window (or of ``seeds``), and when
    the account was last synced."""
    drafts = state.meta(account.name, "drafts_folder") or ""
    folders = [f for (f,) in state.conn.execute(
        "SELECT folder FROM folders WHERE account=?", (account.name,)) if f != drafts]
    last = state.meta(account.name, "last_cycle")
    synced = datetime.fromisoformat(last).astimezone(account.timezone) if last else None
    sent = state.meta(account.name, "sent_folder") or ""
    whole = seeds is None
    if seeds is None:  # (and those whose follow-up waits in Drafts, however old they are)
        seeds = state.ours_since(account.name, account.identities, now - account.lookback)
        seeds += state.pending_outbounds(account.name)
    return list(threads_of(state, account.name, seeds, folders, sent, whole_window=whole,
                           subject_links=account.subject_threading)), synced


def _when(synced: datetime | None) -> str:
    return f"{synced:%Y-%m-%d %H:%M %Z}" if synced else "never"


def open_state(config: Config) -> State:
    """The state, for reading; refused with the reason when nothing was kept yet."""
    if not (config.daemon.state_dir / FILE_NAME).exists():
        raise NudgerError(f"no state in {config.daemon.state_dir} yet: a dry run keeps nothing; "
                          "run `nudger run --once` first")
    # Read-only, never renamed even when damaged: these commands cannot rebuild it.
    return State.open_for_reading(config.daemon.state_dir)


def _shown(d: Decision) -> bool:
    return d.state in SHOWN or (d.state == "replied" and d.nudged)


def status(config: Config, now: datetime, as_json: bool) -> int:
    state = open_state(config)
    report: list[dict[str, object]] = []
    try:
        for account in config.accounts:
            threads, synced = _threads(state, account, now)
            ledger = Ledger(state.ledger(account.name).values())
            decided = [d for t in threads if (d := decide(t, account, config.rules, ledger, now))]
            decided = hold_sends(decided, Outbox(state).steps(account.name))
            # (A digest not sent is told in the log: there is no draft to look at.)
            troubles = [r for r in Outbox(state).rows(account.name, NUDGE) if r.step in SAYS]
            # What a cycle's summary counts: the threads of the window, by status.
            totals: Counter[str] = Counter(d.status for d in decided
                             if d.outbound and now - d.outbound.date <= account.lookback)
            decisions = sorted((d for d in decided if _shown(d)),
                               key=lambda d: d.outbound.date if d.outbound else now)
            meetings = _meetings(config, state, account, ledger, now)
            if as_json:
                report.append(_account_json(account, synced, totals, decisions)
                              | {"not_sent": [_trouble_json(r) for r in troubles]})
                report[-1]["meetings"] = [d.to_json(account.timezone) for d in meetings]
            else:
                _table(account, synced, totals, decisions)
                for row in troubles:
                    print(f"  not sent: {row.subject!r} ({row.message_id}): {SAYS[row.step]}"
                          + (f" ({row.detail})" if row.detail else ""))
                _meetings_table(account, meetings)
    finally:
        state.close()
    if as_json:
        print(json.dumps({"accounts": report}, ensure_ascii=False, indent=2))
    return EX_OK


def _account_json(account: Account, synced: datetime | None, totals: Counter[str],
                  decisions: list[Decision]) -> dict[str, object]:
    return {"account": account.name, "timezone": account.timezone.key,
            "last_synced": synced.isoformat() if synced else None,
            "awaiting": sum(totals[s] for s in AWAITING_STATUSES), "totals": dict(totals),
            "threads": [d.to_json(account.timezone) for d in decisions]}


def _trouble_json(row: Row) -> dict[str, object]:
    """A follow-up nudger did not send, or may have: the user must look at it."""
    return {"subject": row.subject, "draft": row.message_id, "step": row.step,
            "reason": SAYS[row.step], "detail": row.detail, "at": row.at.isoformat()}


def _table(account: Account, synced: datetime | None, totals: Counter[str],
           decisions: list[Decision]) -> None:
    tz = account.timezone
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160,
                      highlight=False, markup=False, soft_wrap=not sys.stdout.isatty())
    table = Table(title=f"{account.name}: {totals_text(totals)}; last synced {_when(synced)}",
                  title_justify="left")
    for column in ("recipient", "subject", "since", "due", "stage", "state"):
        table.add_column(column, no_wrap=column in ("since", "due", "state"))
    for d in decisions:
        assert d.outbound is not None
        to = ", ".join(a.email for a in d.to) or ", ".join(a.email for a in d.outbound.recipients)
        table.add_row(to, d.subject, f"{d.outbound.date.astimezone(tz):%Y-%m-%d %H:%M}",
                      f"{d.due_at.astimezone(tz):%Y-%m-%d %H:%M}" if d.due_at else "",
                      str(d.stage or d.sent_nudges or ""), d.state)
    console.print(table)
    for d in decisions:
        if d.state == "replied" and d.pending:  # the user's edit: never removed by us
            to = ", ".join(a.email for a in d.outbound.recipients) if d.outbound else ""
            console.print(f"answered - your edited follow-up to {to} ({d.subject!r}) is still in "
                          "Drafts: send or delete it yourself")


def _meetings(config: Config, state: State, account: Account, ledger: Ledger,
              now: datetime) -> list[Decision]:
    """The meetings' thank-you decisions, as the next cycle makes them."""
    if not config.meetings.thank_you:
        return []
    drafts = state.meta(account.name, "drafts_folder") or ""
    folders = [f for (f,) in state.conn.execute(
        "SELECT folder FROM folders WHERE account=?", (account.name,)) if f != drafts]
    sent = state.meta(account.name, "sent_folder") or ""
    found = plan_meetings(state, account, config.meetings, ledger, folders, sent, now)
    return sorted(found, key=lambda d: d.due_at or now)


def _meetings_table(account: Account, meetings: list[Decision]) -> None:
    if not meetings:
        return
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160,
                      highlight=False, markup=False, soft_wrap=not sys.stdout.isatty())
    table = Table(title=f"{account.name}: meetings", title_justify="left")
    for column in ("attendees", "meeting", "thank-you"):
        table.add_column(column)
    for d in meetings:
        table.add_row(", ".join(a.email for a in d.to), d.subject, d.reason.split(": ", 1)[-1])
    console.print(table)


def _explain_meeting(config: Config, state: State, account: Account, wanted: str,
                     now: datetime) -> bool:
    """A meeting's invitation: what its thank-you decision is, and why."""
    ledger = Ledger(state.ledger(account.name).values())
    for d in _meetings(config, state, account, ledger, now):
        if d.outbound is not None and d.outbound.message_id == wanted:
            print(f"Meeting {d.subject!r} ({account.name}; times in {account.timezone.key})")
            print(f"Decision: {line(d).strip()}")
            return True
    return False


def explain(config: Config, message_id: str, now: datetime) -> int:
    wanted = normalise_message_id(message_id if "<" in message_id else f"<{message_id}>")
    state = open_state(config)
    try:
        ran = False
        for account in config.accounts:
            threads, synced = _threads(state, account, now, [wanted])
            ran = ran or synced is not None
            for thread in threads:
                if any(m.message_id == wanted for m in thread.messages):
                    _explain(thread, account, config, state, now, synced)
                    _explain_meeting(config, state, account, wanted, now)
                    return EX_OK
            if _explain_meeting(config, state, account, wanted, now):
                return EX_OK
    finally:
        state.close()
    if not ran:
        raise NudgerError(f"{wanted}: no cycle has run on this state yet (a dry run keeps "
                          "nothing): run `nudger run --once` first")
    raise NudgerError(f"{wanted} is not in any synced thread (is it older than the look-back "
                      "window, or in a folder that is not watched?)")


def _explain(thread: Thread, account: Account, config: Config, state: State, now: datetime,
             synced: datetime | None) -> None:
    tz = account.timezone
    print(f"Thread {thread.key} ({account.name}, last synced {_when(synced)}; times in {tz.key})")
    for m in thread.messages:
        claimed = account.is_identity(m.sender.email)
        who = "you" if claimed and thread.in_sent(m) else m.sender.email or "?"
        kind = m.kind if m.kind != HUMAN else ("your message" if who == "you" else "a reply")
        if claimed and who != "you" and m.kind == HUMAN:
            kind = f"claims to be from you, but is not in {thread.sent or 'Sent'}: not yours"
        why = f" ({m.kind_reason})" if m.kind_reason else ""
        if m.kind == AUTO_REPLY:  # (whether it moved the follow-up, and why not)
            why += (f"; back on {datetime.fromisoformat(m.back_on):%a %d %b %Y}" if m.back_on
                    else "; no return date recognised in it")
        print(f"  {m.date.astimezone(tz):%Y-%m-%d %H:%M}  {who:<28} {kind}{why}"
              f"  [{thread.found_in(m)}]  {m.subject[:60]!r}")
    # What the plan decided, with the ledger and every rule: never a second judgement.
    decision = decide(thread, account, config.rules, Ledger(state.ledger(account.name).values()), now)
    if decision is not None:
        decision = hold_sends([decision], Outbox(state).steps(account.name))[0]
    if decision is None or decision.outbound is None:
        print("Decision: nothing to follow up: no message of yours in this thread, or none "
              f"within the {account.lookback.days}-day look-back window")
        return
    out = decision.outbound
    rule = next((r for r in config.rules if r.name == decision.rule), None)
    if rule is not None:
        stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
        print(f"Rule: {rule.name} (first match of {len(config.rules)}): {stages}")
        if decision.stage and decision.stage <= len(rule.stages):
            spec = rule.stages[decision.stage - 1]
            due = due_at(out.date, spec.after, account)
            notes = timing_notes(out.date, spec.after, account)
            print(f"Timing: your latest message {out.date.astimezone(tz):%a %Y-%m-%d %H:%M} "
                  f"+ {spec.after} = {due.astimezone(tz):%a %Y-%m-%d %H:%M}"
                  + "".join(f"; {n}" for n in notes)
                  + f"; now is {now.astimezone(tz):%a %Y-%m-%d %H:%M}")
            if decision.due_at is not None and decision.due_at != due:
                print(f"        moved to {decision.due_at.astimezone(tz):%a %Y-%m-%d %H:%M}: "
                      "see the decision")
    print(f"Decision: {line(decision).strip()}")
