"""Which rule applies to a message, and when its follow-up falls due.

Pure: ``now`` and time zones are parameters. Business days skip the account's
non-working days and public holidays (the ``holidays`` package's tables), keeping the
time of day; a follow-up that falls due in quiet hours waits for the morning. The
user can override the delay per message from any client: an IMAP keyword
(``$Nudge3d``, ``$Nudge2bd``) or a plus-address of theirs in Bcc (``me+nudge-5d@...``,
``me+nonudge@...``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

from nudger.config.model import Account, Rule
from nudger.core.durations import Delay, parse_delay
from nudger.core.record import Addr, MessageRecord

MON_TO_FRI = frozenset(range(5))
NEVER = "never"
_KEYWORD = re.compile(r"^\$nudge(\d+)(d|bd|h|w)$", re.IGNORECASE)
_PLUS = re.compile(r"^[^+@]+\+(?:nudge-?(\d+)(d|bd|h|w)|(nonudge|no-nudge))@", re.IGNORECASE)


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


def _delay(amount: str, unit: str) -> Delay:
    return parse_delay(f"{amount} business days" if unit.lower() == "bd" else f"{amount}{unit}")


def override(outbound: MessageRecord, is_identity: Callable[[str], bool]) -> tuple[Delay | str, str] | None:
    """A delay (or NEVER) the user set on this message, and where it came from."""
    for keyword in outbound.keywords:
        found = _KEYWORD.match(keyword)
        if found:
            return _delay(found[1], found[2]), f"keyword {keyword}"
    for addr in outbound.bcc + outbound.to + outbound.cc:
        found = _PLUS.match(addr.email) if "+" in addr.email else None  # (its shape needs one)
        if found and is_identity(addr.email):
            if found[3]:
                return NEVER, f"{addr.email} in the recipients"
            return _delay(found[1], found[2]), f"{addr.email} in the recipients"
    return None


@lru_cache(maxsize=32)
def holidays_for(spec: str, year: int) -> Mapping[date, str]:
    """The public holidays of a ``"CC-SUB"`` spec (country, optional subdivision) by date,
    for one year and the next (an observed holiday can fall in the year before). Built
    once per spec and year: the tables are slow to build and asked for every due date.
    Raises the holidays package's error (NotImplementedError...) for an unknown spec."""
    if not spec:
        return MappingProxyType({})
    import holidays

    country, _, subdiv = spec.partition("-")
    # Names in English, as every sentence around them: without a language the package
    # picks one from the process's locale (German names under an unset LANG, for DE).
    table = holidays.country_holidays(country.upper(), subdiv=subdiv.upper() or None,
                                      years=(year, year + 1), language="en_US")
    return MappingProxyType(dict(table))


class _Holidays:
    """An account's holidays as the ``Container[date]`` that ``add_delay`` asks."""

    def __init__(self, spec: str):
        self.spec = spec

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in holidays_for(self.spec, day.year)


def is_working_day(day: date, account: Account) -> bool:
    """One of the account's working days and none of its holidays."""
    return day.weekday() in account.workdays and day not in _Holidays(account.holidays)


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


def due_at(start: datetime, delay: Delay, account: Account) -> datetime:
    """``add_delay`` in the account's calendar, then moved out of its quiet hours."""
    due = add_delay(start, delay, account.timezone, account.workdays, _Holidays(account.holidays))
    return after_quiet_hours(due, account).astimezone(account.timezone)


def after_quiet_hours(when: datetime, account: Account) -> datetime:
    """A time inside the quiet hours becomes the end of them (a draft at 3 a.m. reads
    as a machine's; in the morning it reads as the user's)."""
    if account.quiet_hours is None:
        return when
    begin, end = account.quiet_hours
    local = when.astimezone(account.timezone)
    t = local.time().replace(tzinfo=None)
    overnight = begin > end
    inside = (t >= begin or t < end) if overnight else (begin <= t < end)
    if not inside:
        return when
    day = local.date() + timedelta(days=1) if overnight and t >= begin else local.date()
    return datetime.combine(day, end, tzinfo=account.timezone)


def timing_notes(start: datetime, delay: Delay, account: Account) -> list[str]:
    """In words: what the calendar did to a delay (for ``explain``)."""
    notes = []
    if delay.business_days:
        raw = add_delay(start, delay, account.timezone, account.workdays, _Holidays(account.holidays))
        day, end = start.astimezone(account.timezone).date(), raw.date()
        off = []
        while day < end:
            day += timedelta(days=1)
            if day.weekday() not in account.workdays:
                off.append(f"{day:%a %d %b} (not a working day)")
            elif day in _Holidays(account.holidays):
                name = holidays_for(account.holidays, day.year).get(day, "holiday")
                off.append(f"{day:%a %d %b} ({name})")
        if off:
            notes.append("skipped " + ", ".join(off))
    else:
        raw = add_delay(start, delay, account.timezone)
    moved = after_quiet_hours(raw, account)
    if moved != raw and account.quiet_hours is not None:
        begin, end_t = account.quiet_hours
        notes.append(f"moved out of quiet hours {begin:%H:%M}-{end_t:%H:%M} to "
                     f"{moved.astimezone(account.timezone):%a %H:%M}")
    return notes

