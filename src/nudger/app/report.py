"""How decisions look to a person (stderr) and to a program (--json on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TextIO

from nudger.core.plan import AppendDraft, Decision, WithdrawDraft
from nudger.core.sending import SendDraft
from nudger.core.words import counted
from nudger.cycle.cycle import AWAITING_STATUSES, CycleResult

WAITING_SHOWN = 10  # a first run on a big mailbox must not print a wall of text
ORDER = ("due", "drafted", "waiting", "replied", "excluded", "bounced", "dismissed", "limit", "no-rule")
MARK = {"due": "->", "drafted": "..", "waiting": "  ", "replied": "ok", "excluded": "--",
        "dismissed": "xx", "limit": "==", "no-rule": "??", "bounced": "--"}
# How a total reads: "3 in Drafts", "2 with every follow-up sent".
LABEL = {"drafted": "in Drafts", "limit": "with every follow-up sent", "no-rule": "matching no rule"}


def line(d: Decision) -> str:
    who = ", ".join(a.email for a in d.to) or (
        ", ".join(a.email for a in d.outbound.recipients) if d.outbound else "")
    subject = d.subject if len(d.subject) <= 50 else d.subject[:49] + "…"
    stage = f" [follow-up {d.stage}]" if d.stage and d.status in ("due", "drafted") else ""
    return f"{MARK.get(d.status, '  ')} {d.status:<9} {subject!r} to {who}{stage}: {d.reason}"


def totals_text(totals: Mapping[str, int]) -> str:
    """An account's threads by status: "16 awaiting a reply (3 due, 9 in Drafts, 4 waiting);
    10 replied, 2 excluded". Awaiting adds up exactly what its parenthesis lists."""
    awaiting = sum(totals.get(s, 0) for s in AWAITING_STATUSES)
    parts = ", ".join(f"{totals[s]} {LABEL.get(s, s)}" for s in AWAITING_STATUSES if totals.get(s))
    text = f"{awaiting} awaiting a reply" + (f" ({parts})" if parts else "")
    rest = [s for s in ORDER if s not in AWAITING_STATUSES] + sorted(set(totals) - set(ORDER))
    others = ", ".join(f"{totals[s]} {LABEL.get(s, s)}" for s in rest if totals.get(s))
    return text + (f"; {others}" if others else "")


def print_cycle(result: CycleResult, dry_run: bool, verbose: bool, out: TextIO | None = None) -> None:
    out = out or sys.stderr  # looked up at call time: tests and daemons swap the stream
    print(f"{result.account}: {totals_text(result.totals)}; {cycle_text(result, dry_run)}", file=out)
    # Every changed thread; of a whole window (a first run), what awaits a reply.
    shown = sorted(result.decisions if verbose or not result.full else [
        d for d in result.decisions if d.status in AWAITING_STATUSES], key=_order)
    waiting = [d for d in shown if d.status == "waiting"]
    hidden = waiting[WAITING_SHOWN:] if not verbose else []
    skip = {id(d) for d in hidden}
    for d in shown:
        if id(d) not in skip:
            print("  " + line(d), file=out)
    if hidden:
        print(f"  ... and {len(hidden)} more waiting (`nudger status` lists them all, -v shows "
              "every decision)", file=out)


def cycle_text(result: CycleResult, dry_run: bool = False) -> str:
    """What this cycle did, apart from the totals: "this cycle: 2 changed, wrote 2 drafts"."""
    due = sum(1 for d in result.decisions if isinstance(d.action, AppendDraft))
    looked = (f"looked at all {counted(len(result.decisions), 'thread')}" if result.full
              else f"{len(result.decisions)} changed")
    wrote = (f"would write {counted(due, 'draft')}" if dry_run
             else f"wrote {counted(len(result.written), 'draft')}")
    if result.withdrawn:
        wrote += f", removed {len(result.withdrawn)} after a reply"
    sends = sum(1 for d in result.decisions if isinstance(d.action, SendDraft))
    if dry_run and sends:
        wrote += f", would send {counted(sends, 'follow-up')} for you"
    elif result.sent:
        wrote += f", sent {counted(len(result.sent), 'follow-up')} for you"
    if result.digest:
        wrote += ", would send the digest" if dry_run else ", sent the digest"
    skipped = f", skipped {counted(result.skipped, 'malformed message')}" if result.skipped else ""
    return f"this {'dry run' if dry_run else 'cycle'}: {looked}, {wrote}{skipped}"


def _order(d: Decision) -> tuple[int, float]:
    when = d.due_at or (d.outbound.date if d.outbound else None)  # (zones differ: by instant)
    return (_RANK.get(d.status, 99), when.timestamp() if when else 0.0)


_RANK = {status: i for i, status in enumerate(ORDER)}  # (a first run sorts thousands)


def print_json(result: CycleResult, dry_run: bool, out: TextIO | None = None) -> None:
    """JSON Lines: one object per thread looked at this cycle."""
    out = out or sys.stdout
    for d in result.decisions:
        data = d.to_json(result.timezone)
        if isinstance(d.action, AppendDraft) and not dry_run:
            data["action"] = "appended" if d.draft_id in result.written else "not-appended"
        elif isinstance(d.action, WithdrawDraft) and not dry_run:
            data["action"] = "withdrawn" if d.draft_id in result.withdrawn else "left-in-place"
        elif isinstance(d.action, SendDraft) and not dry_run:
            data["action"] = "sent" if d.draft_id in result.sent else "not-sent"
        print(json.dumps(data, ensure_ascii=False), file=out)
