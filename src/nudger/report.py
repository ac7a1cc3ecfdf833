"""How decisions look to a person (stderr) and to a program (--json on stdout)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import TextIO

from nudger.engine import CycleResult
from nudger.plan import AppendDraft, Decision, WithdrawDraft

WAITING_SHOWN = 10  # a first run on a big mailbox must not print a wall of text
ORDER = ("due", "drafted", "waiting", "replied", "excluded", "bounced", "dismissed", "limit", "no-rule")
MARK = {"due": "->", "drafted": "..", "waiting": "  ", "replied": "ok", "excluded": "--",
        "dismissed": "xx", "limit": "==", "no-rule": "??", "bounced": "--"}


def line(d: Decision) -> str:
    who = ", ".join(a.email for a in d.to) or (
        ", ".join(a.email for a in d.outbound.recipients) if d.outbound else "")
    subject = d.subject if len(d.subject) <= 50 else d.subject[:49] + "…"
    stage = f" [follow-up {d.stage}]" if d.stage and d.status in ("due", "drafted") else ""
    return f"{MARK.get(d.status, '  ')} {d.status:<9} {subject!r} to {who}{stage}: {d.reason}"


def print_cycle(result: CycleResult, dry_run: bool, verbose: bool, out: TextIO | None = None) -> None:
    out = out or sys.stderr  # looked up at call time: tests and daemons swap the stream
    counts = Counter(d.status for d in result.decisions)
    awaiting = sum(counts[s] for s in ("due", "drafted", "waiting"))
    wrote = (f"would write {counts['due']} draft(s)" if dry_run
             else f"wrote {len(result.written)} draft(s)")
    if result.withdrawn:
        wrote += f", removed {len(result.withdrawn)} after a reply"
    summary = ", ".join(f"{counts[s]} {s}" for s in ORDER if counts[s])
    scope = "thread(s) of yours" if result.full else "changed thread(s)"
    print(f"{result.account}: {len(result.decisions)} {scope}, {awaiting} awaiting "
          f"a reply ({summary or 'nothing to do'}); {wrote}"
          + (f"; {result.skipped} malformed message(s) skipped" if result.skipped else ""),
          file=out)
    shown = sorted(result.decisions if verbose else [
        d for d in result.decisions if d.status in ("due", "drafted", "waiting")], key=_order)
    waiting = [d for d in shown if d.status == "waiting"]
    hidden = waiting[WAITING_SHOWN:] if not verbose else []
    skip = {id(d) for d in hidden}
    for d in shown:
        if id(d) not in skip:
            print("  " + line(d), file=out)
    if hidden:
        print(f"  ... and {len(hidden)} more waiting (`nudger status` lists them all, -v shows "
              "every decision)", file=out)


def _order(d: Decision) -> tuple[int, str]:
    when = d.due_at or (d.outbound.date if d.outbound else None)
    return (ORDER.index(d.status) if d.status in ORDER else 99, when.isoformat() if when else "")


def print_json(result: CycleResult, dry_run: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for d in result.decisions:
        data = d.to_json()
        if isinstance(d.action, AppendDraft) and not dry_run:
            data["action"] = "appended" if d.draft_id in result.written else "not-appended"
        elif isinstance(d.action, WithdrawDraft) and not dry_run:
            data["action"] = "withdrawn" if d.draft_id in result.withdrawn else "left-in-place"
        print(json.dumps(data, ensure_ascii=False), file=out)
