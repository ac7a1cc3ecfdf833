"""Counts in words: "1 draft", "2 drafts" (what people read, never "draft(s)"); and the
day and time a reason names: "Mon 2026-11-02 09:30"."""

from __future__ import annotations

from datetime import datetime


def counted(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# What ``%a`` gives in the C locale, the one nudger runs in (it never sets LC_TIME): a
# reason is written for every thread of a first cycle, and strftime costs three times this.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def day(when: datetime) -> str:
    """``f"{when:%Y-%m-%d}"``."""
    return f"{when.year}-{when.month:02}-{when.day:02}"


def weekday_and_day(when: datetime) -> str:
    """``f"{when:%a %Y-%m-%d}"``."""
    return f"{_WEEKDAYS[when.weekday()]} {when.year}-{when.month:02}-{when.day:02}"


def day_and_time(when: datetime) -> str:
    """``f"{when:%a %Y-%m-%d %H:%M}"``."""
    return (f"{_WEEKDAYS[when.weekday()]} {when.year}-{when.month:02}-{when.day:02} "
            f"{when.hour:02}:{when.minute:02}")
