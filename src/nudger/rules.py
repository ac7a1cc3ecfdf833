"""Which rule applies to a message, and when its follow-up falls due.

Pure: ``now`` and time zones are parameters. Business days skip weekends (and,
where given, holidays) in the account's time zone, keeping the time of day.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Container, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from nudger.config import Rule
from nudger.durations import Delay
from nudger.mailfacts import Addr, MessageRecord

MON_TO_FRI = frozenset(range(5))


def match_rule(
    rules: Sequence[Rule], account: str, outbound: MessageRecord, recipients: Sequence[Addr]
) -> Rule | None:
    """The first rule whose conditions all hold (an empty condition holds)."""
    for rule in rules:
        if rule.accounts and account not in rule.accounts:
            continue
        if rule.to and not any(
            fnmatch.fnmatchcase(a.email, pattern) for a in recipients for pattern in rule.to
        ):
            continue
        if rule.subject is not None and not rule.subject.search(outbound.subject):
            continue
        return rule
    return None


def add_delay(
    start: datetime,
    delay: Delay,
    tz: ZoneInfo,
    workdays: Container[int] = MON_TO_FRI,
    holidays: Container[date] = frozenset(),
) -> datetime:
    """When ``delay`` has passed since ``start``.

    N business days later is the same wall-clock time on the N-th working day after
    the start day; a message sent on a Saturday counts from the Monday.
    """
    if not delay.business_days:
        return start + delay.calendar
    local = start.astimezone(tz)
    day = local.date()
    remaining = delay.business_days
    while remaining:
        day += timedelta(days=1)
        if day.weekday() in workdays and day not in holidays:
            remaining -= 1
    # Rebuild from wall-clock time so a DST change in between keeps "same time of day".
    return datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=tz)
