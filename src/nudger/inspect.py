"""``status`` and ``explain``: answers from the state, without connecting."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from nudger.config import Account, Config
from nudger.errors import EX_OK, NudgerError
from nudger.mailfacts import HUMAN, normalise_message_id
from nudger.plan import Decision, decide
from nudger.report import line
from nudger.rules import match_rule
from nudger.state import State
from nudger.threads import Thread, build_threads, judge


def _threads(state: State, account: Account) -> tuple[list[Thread], str]:
    folders = [row[0] for row in state.conn.execute(
        "SELECT folder FROM folders WHERE account=?", (account.name,))]
    drafts = {r.folder for r in state.records(account.name) if r.folder.lower().endswith("drafts")}
    records = state.records(account.name, [f for f in folders if f not in drafts])
    synced = state.meta(account.name, "last_cycle") or "never"
    return build_threads(records), synced


def _open(config: Config) -> State:
    if not (config.daemon.state_dir / "state.sqlite3").exists():
        raise NudgerError(f"no state in {config.daemon.state_dir} yet: run `nudger run --once` first")
    return State.open(config.daemon.state_dir)


def status(config: Config, now: datetime, as_json: bool) -> int:
    state = _open(config)
    try:
        for account in config.accounts:
            threads, synced = _threads(state, account)
            ledger = state.ledger(account.name)
            decisions = [d for t in threads
                         if (d := decide(t, account, config.rules, ledger, now)) is not None
                         and d.status in ("due", "drafted", "waiting", "limit", "dismissed")]
            if as_json:
                for d in decisions:
                    print(json.dumps(d.to_json(), ensure_ascii=False))
                continue
            print(f"{account.name}: waiting on {len(decisions)} thread(s) (last synced {synced})")
            for d in sorted(decisions, key=lambda d: d.outbound.date if d.outbound else now):
                since = f"{d.outbound.date.astimezone(account.timezone):%Y-%m-%d}" if d.outbound else ""
                print(f"  since {since}  " + line(d))
    finally:
        state.close()
    return EX_OK


def explain(config: Config, message_id: str, now: datetime) -> int:
    wanted = normalise_message_id(message_id if "<" in message_id else f"<{message_id}>")
    state = _open(config)
    try:
        for account in config.accounts:
            threads, synced = _threads(state, account)
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
    out = sys.stdout
    print(f"Thread {thread.key} ({account.name}, last synced {synced})", file=out)
    for m in thread.messages:
        who = "you" if account.is_identity(m.sender.email) else m.sender.email or "?"
        kind = m.kind if m.kind != HUMAN else ("your message" if who == "you" else "a reply")
        why = f" ({m.kind_reason})" if m.kind_reason else ""
        print(f"  {m.date.astimezone(account.timezone):%Y-%m-%d %H:%M}  {who:<28} {kind}{why}"
              f"  [{thread.found_in(m)}]  {m.subject[:60]!r}", file=out)
    verdict = judge(thread, account.is_identity)
    print(f"Verdict: {verdict.status}: {verdict.reason}", file=out)
    if verdict.outbound is not None:
        rule = match_rule(config.rules, account.name, verdict.outbound, verdict.to + verdict.cc)
        if rule is not None:
            stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
            print(f"Rule: {rule.name}: {stages}", file=out)
    decision: Decision | None = decide(thread, account, config.rules, state.ledger(account.name), now)
    if decision is not None:
        print(f"Decision: {line(decision).strip()}", file=out)
