"""``stats``: what the follow-ups achieved, from the state alone (no connection, nothing
sent anywhere): per account and rule, threads nudged, answered after stage 1, 2, ...,
and the median time from the follow-up to the answer."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table

from nudger.app.views import open_state
from nudger.config.model import Config
from nudger.core.stats import NudgeOutcome, RuleStats, StageStats, reply_counts, summarise
from nudger.errors import EX_OK

BAR = 12  # characters of a full bar


def stats(config: Config, now: datetime, since: timedelta, as_json: bool) -> int:
    start = now - since
    state = open_state(config)
    try:
        found = [(account, state.history(account.name)) for account in config.accounts]
    finally:
        state.close()
    if as_json:
        print(json.dumps({"since": start.isoformat(), "accounts": [
            {"account": account.name, **_totals(rows, start),
             "rules": [_rule_json(r) for r in summarise(rows, start)]} for account, rows in found]},
            ensure_ascii=False, indent=2))
        return EX_OK
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120,
                      highlight=False, markup=False, soft_wrap=not sys.stdout.isatty())
    for account, rows in found:
        console.print(_table(account.name, start.astimezone(account.timezone),
                             summarise(rows, start), _totals(rows, start)))
    return EX_OK


def _totals(rows: list[NudgeOutcome], start: datetime) -> dict[str, object]:
    """The account's threads nudged and answered, counted as the digest counts them."""
    answered, nudged = reply_counts(rows, start)
    return {"threads_nudged": nudged, "answered": answered,
            "reply_rate": round(answered / nudged, 3) if nudged else None}


def _seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


def _rule_json(r: RuleStats) -> dict[str, object]:
    return {"rule": r.rule or None, "threads": r.threads, "nudged": r.nudged,
            "answered": r.answered, "waiting": r.waiting, "dismissed": r.dismissed,
            "answered_before_sent": r.answered_first,
            "reply_rate": round(r.reply_rate, 3) if r.reply_rate is not None else None,
            "median_to_answer_seconds": _seconds(r.median_to_answer),
            "stages": [{"stage": s.stage, "label": s.label, "sent": s.sent, "answered": s.answered,
                        "median_to_answer_seconds": _seconds(s.median_to_answer)}
                       for s in r.stages]}


def span(value: timedelta | None) -> str:
    """A wait as a person says it: "<1h", "5h", "1d 4h", "12d"."""
    if value is None:
        return "-"
    hours = round(value.total_seconds() / 3600)
    days, rest = divmod(hours, 24)
    if hours < 1:
        return "<1h"
    if days == 0:
        return f"{hours}h"
    if days >= 7 or rest == 0:
        return f"{round(hours / 24)}d"
    return f"{days}d {rest}h"


def _bar(stage: StageStats) -> str:
    share = stage.answered / stage.sent if stage.sent else 0.0
    full = round(share * BAR)
    return f"{'█' * full}{'·' * (BAR - full)} {share:4.0%}"


def _table(account: str, start: datetime, rules: list[RuleStats], t: dict[str, object]) -> Table:
    rate = f" ({t['reply_rate']:.0%})" if t["reply_rate"] is not None else ""
    title = (f"{account}: since {start:%Y-%m-%d}, {t['threads_nudged']} threads got a follow-up, "
             f"{t['answered']} answered after one{rate}")
    table = Table(title=title, title_justify="left")
    for column in ("rule", "stage", "sent", "answered", "", "median wait", "other"):
        table.add_column(column, no_wrap=True,
                         justify="right" if column in ("stage", "sent", "answered") else "left")
    for r in rules:
        other = ", ".join(f"{n} {what}" for n, what in (
            (r.waiting, "waiting"), (r.dismissed, "dismissed"),
            (r.answered_first, "answered before sent")) if n)
        for i, s in enumerate(r.stages or [StageStats(1, 0, 0, None)]):
            stage = str(s.stage) if s.stage else s.label  # stage 0: after a meeting
            table.add_row(r.rule or "(before stats)" if i == 0 else "", stage, str(s.sent),
                          str(s.answered), _bar(s), span(s.median_to_answer),
                          other if i == 0 else "")
        if len(r.stages) > 1:  # the rule as a whole: threads nudged, answered after any stage
            whole = StageStats(0, r.nudged, r.answered, r.median_to_answer)
            table.add_row("", "all", str(r.nudged), str(r.answered), _bar(whole),
                          span(r.median_to_answer), "")
    if not rules:
        table.add_row("(no follow-ups in this period)", "", "", "", "", "", "")
    return table
