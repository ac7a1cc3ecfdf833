"""``status`` and ``explain``: answers from the state, without connecting."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from rich.console import Console
from rich.table import Table

from nudger.config import Account, Config
from nudger.engine import threads_of
from nudger.errors import EX_OK, NudgerError
from nudger.mailfacts import HUMAN, normalise_message_id
from nudger.plan import Decision, Ledger, decide
from nudger.report import line
from nudger.rules import due_at, match_rule, timing_notes
from nudger.state import State
from nudger.threads import Thread, judge

SHOWN = ("due", "drafted", "waiting", "sent", "dismissed", "bounced")


def _threads(state: State, account: Account, now: datetime,
             seeds: list[str] | None = None) -> tuple[list[Thread], str]:
    """Threads of the user's messages in the look-back window (or of ``seeds``)."""
    drafts = state.meta(account.name, "drafts_folder") or ""
    folders = [f for (f,) in state.conn.execute(
        "SELECT folder FROM folders WHERE account=?", (account.name,)) if f != drafts]
    last = state.meta(account.name, "last_cycle")
    synced = (f"{datetime.fromisoformat(last).astimezone(account.timezone):%Y-%m-%d %H:%M}"
              if last else "never")
    sent = state.meta(account.name, "sent_folder") or ""
    whole = seeds is None
    if seeds is None:
        seeds = state.ours_since(account.name, account.identities, now - account.lookback)
    return list(threads_of(state, account.name, seeds, folders, sent, whole_window=whole)), synced


def _open(config: Config) -> State:
    if not (config.daemon.state_dir / "state.sqlite3").exists():
        raise NudgerError(f"no state in {config.daemon.state_dir} yet: run `nudger run --once` first")
    # Read-only, never renamed even when damaged: these commands cannot rebuild it.
    return State.open_for_reading(config.daemon.state_dir)


def _shown(d: Decision) -> bool:
    return d.state in SHOWN or (d.state == "replied" and d.nudged)


def status(config: Config, now: datetime, as_json: bool) -> int:
    state = _open(config)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160,
                      highlight=False, soft_wrap=not sys.stdout.isatty())
    try:
        for account in config.accounts:
            threads, synced = _threads(state, account, now)
            ledger = Ledger(state.ledger(account.name).values())
            decisions = [d for t in threads
                         if (d := decide(t, account, config.rules, ledger, now)) is not None and _shown(d)]
            decisions.sort(key=lambda d: d.outbound.date if d.outbound else now)
            if as_json:
                for d in decisions:
                    print(json.dumps(d.to_json(), ensure_ascii=False))
                continue
            tz = account.timezone
            table = Table(title=f"{account.name}: {len(decisions)} thread(s), last synced {synced}",
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
    finally:
        state.close()
    return EX_OK


def explain(config: Config, message_id: str, now: datetime) -> int:
    wanted = normalise_message_id(message_id if "<" in message_id else f"<{message_id}>")
    state = _open(config)
    try:
        for account in config.accounts:
            threads, synced = _threads(state, account, now, [wanted])
            for thread in threads:
                if any(m.message_id == wanted for m in thread.messages):
                    _explain(thread, account, config, state, now, synced)
                    return EX_OK
    finally:
        state.close()
    raise NudgerError(f"{wanted} is not in any synced thread (is it older than the look-back "
                      "window, or in a folder that is not watched?)")


def _explain(thread: Thread, account: Account, config: Config, state: State, now: datetime,
             synced: str) -> None:
    tz = account.timezone
    print(f"Thread {thread.key} ({account.name}, last synced {synced})")
    for m in thread.messages:
        who = "you" if account.is_identity(m.sender.email) else m.sender.email or "?"
        kind = m.kind if m.kind != HUMAN else ("your message" if who == "you" else "a reply")
        why = f" ({m.kind_reason})" if m.kind_reason else ""
        print(f"  {m.date.astimezone(tz):%Y-%m-%d %H:%M}  {who:<28} {kind}{why}"
              f"  [{thread.found_in(m)}]  {m.subject[:60]!r}")
    verdict = judge(thread, account.is_identity)
    print(f"Verdict: {verdict.status} ({verdict.reason})")
    decision = decide(thread, account, config.rules, Ledger(state.ledger(account.name).values()), now)
    out = verdict.outbound
    if out is not None:
        rule = match_rule(config.rules, account.name, out, verdict.to + verdict.cc)
        if rule is not None:
            stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
            print(f"Rule: {rule.name} (first match of {len(config.rules)}): {stages}")
            if decision is not None and decision.stage and decision.stage <= len(rule.stages):
                spec = rule.stages[decision.stage - 1]
                due = due_at(out.date, spec.after, account)
                notes = timing_notes(out.date, spec.after, account)
                print(f"Timing: your latest message {out.date.astimezone(tz):%a %Y-%m-%d %H:%M} "
                      f"+ {spec.after} = {due.astimezone(tz):%a %Y-%m-%d %H:%M} ({tz.key})"
                      + "".join(f"; {n}" for n in notes)
                      + f"; now is {now.astimezone(tz):%a %Y-%m-%d %H:%M}")
                if decision.due_at is not None and decision.due_at != due:
                    print(f"        moved to {decision.due_at.astimezone(tz):%a %Y-%m-%d %H:%M}: "
                          "see the decision")
    if decision is not None:
        print(f"Decision: {line(decision).strip()}")
