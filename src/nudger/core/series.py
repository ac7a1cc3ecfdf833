"""Whether a series' occurrences may be computed: its RRULE, RDATE and EXDATE checked
before ``recurring_ical_events`` expands them.

Pure. An invitation is anyone's text: a rule that cannot be read would raise at every
cycle, one that repeats every second or minute (or an hour's worth of BYMINUTE) has
thousands of occurrences a day, and dateutil scans up to the year 9999 for a rule
that never matches (BYMONTHDAY=40, 30 February). Such a series gets no thank-you, and
the reason is said; the others are bounded in count and in span.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

SUB_HOURLY = ("SECONDLY", "MINUTELY")
MAX_DATES = 1000  # RDATE (or EXDATE) values one series may list
MAX_COUNT = 10_000  # a COUNT above it is no meeting's
MAX_STEPS = 40_000  # rule periods from the series' start to the end of the window looked at
# RFC 5545 3.3.10: the values each BY part may take (dateutil checks only some of them).
_BY_RANGES = {"BYSECOND": (0, 60), "BYMINUTE": (0, 59), "BYHOUR": (0, 23),
              "BYMONTHDAY": (-31, 31), "BYYEARDAY": (-366, 366), "BYWEEKNO": (-53, 53),
              "BYMONTH": (1, 12), "BYSETPOS": (-366, 366)}
_PERIOD = {"HOURLY": timedelta(hours=1), "DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1),
           "MONTHLY": timedelta(days=28), "YEARLY": timedelta(days=365)}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class SeriesError(ValueError):
    """A series whose occurrences are not computed; the message says why."""


def series_problem(event: Any) -> str:
    """Why the event's series is not expanded ("" when it may be): its dates or its
    repeat rule cannot be read, it repeats within the hour, or it is far too long."""
    import icalendar

    for name in ("RDATE", "EXDATE"):
        values = _values(event.get(name))
        if any(not isinstance(v, icalendar.vDDDLists) for v in values):
            return f"its {name} dates cannot be read"
        if sum(len(v.dts) for v in values) > MAX_DATES:
            return f"it lists more than {MAX_DATES} {name} dates"
    for rule in _values(event.get("RRULE")):
        if not isinstance(rule, icalendar.vRecur) or len(rule.get("FREQ", [])) != 1:
            return "its repeat rule (RRULE) cannot be read"
        problem = _rule_problem(rule, _start(event))
        if problem:
            return problem
    return ""


def span_problem(event: Any, until: datetime) -> str:
    """Why expanding the series up to ``until`` is too long a walk ("" when it is not):
    dateutil steps through every period from the series' start."""
    start = _start(event)
    if start is None:
        return ""
    end = until if start.tzinfo is not None else until.replace(tzinfo=None)
    for rule in _values(event.get("RRULE")):
        period = _PERIOD.get(str(rule["FREQ"][0]).upper(), timedelta(hours=1))
        if (end - start) / (period * int(rule.get("INTERVAL", [1])[0])) > MAX_STEPS:
            return f"the series began too long ago to count its occurrences ({start:%Y-%m-%d})"
    return ""


def _start(event: Any) -> datetime | None:
    try:
        start = event.decoded("DTSTART", None)
    except Exception:  # noqa: BLE001 - a stranger's text: no start to count from
        return None
    if not isinstance(start, date):
        return None
    return start if isinstance(start, datetime) else datetime.combine(start, datetime.min.time())


def _rule_problem(rule: Any, start: datetime | None) -> str:
    freq = str(rule["FREQ"][0]).upper()
    if freq in SUB_HOURLY or len(rule.get("BYMINUTE", [])) > 1 or len(rule.get("BYSECOND", [])) > 1:
        return "it repeats more often than once an hour"
    unreadable = "its repeat rule (RRULE) cannot be read"
    if freq not in _PERIOD:
        return unreadable
    for name in ("INTERVAL", "COUNT"):
        values = rule.get(name, [1])
        if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool) \
                or values[0] < 1:
            return unreadable
    if rule.get("COUNT", [1])[0] > MAX_COUNT:
        return f"it repeats more than {MAX_COUNT} times"
    for name, (low, high) in _BY_RANGES.items():
        values = rule.get(name, [])
        if any(not isinstance(v, int) or not low <= v <= high or (v == 0 and low < 0) for v in values):
            return unreadable
    months, days = rule.get("BYMONTH", []), [d for d in rule.get("BYMONTHDAY", []) if d > 0]
    if months and days and not any(d <= _MONTH_DAYS[m - 1] for m in months for d in days):
        return "its repeat rule (RRULE) names a day no month has"
    if any(not isinstance(u, date) for u in rule.get("UNTIL", [])):
        return unreadable
    return _parsed_by_dateutil(rule, start or datetime(2000, 1, 1))


def _parsed_by_dateutil(rule: Any, start: datetime) -> str:
    """What dateutil itself says of the rule (BYDAY=XX, a WKST that is no day...), and
    whether it ever happens: dateutil walks up to the year 9999 looking for a match of
    a rule that has none (BYMONTH=1 with BYYEARDAY=200, a BYSETPOS past every set), at
    each expansion; asked once here, when the invitation is read, it is refused."""
    import icalendar
    from dateutil.rrule import rrulestr

    # Without UNTIL: its zone must agree with DTSTART's, which recurring_ical_events sees to.
    text = icalendar.vRecur({k: v for k, v in rule.items() if k != "UNTIL"}).to_ical().decode()
    try:
        first = rrulestr(text, dtstart=start).after(start, inc=True)
    except Exception:  # noqa: BLE001 - whatever dateutil makes of a stranger's text
        return "its repeat rule (RRULE) cannot be read"
    return "its repeat rule (RRULE) never happens" if first is None else ""


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
