"""Durations as people write them: "90s", "5m", "2h", "3d", "3 days", "2 business days"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_BUSINESS = re.compile(r"^(\d+)\s*(?:business|working|work)[\s-]*days?$|^(\d+)\s*bd$")


@dataclass(frozen=True)
class Delay:
    """A delay in calendar time, or a whole number of business days."""

    calendar: timedelta = timedelta(0)
    business_days: int = 0

    def __str__(self) -> str:
        if self.business_days:
            n = self.business_days
            return f"{n} business day{'s' if n != 1 else ''}"
        secs = int(self.calendar.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if secs and secs % size == 0:
                return f"{secs // size}{unit}"
        return f"{secs}s"


def parse_duration(text: str) -> timedelta:
    """Parse a calendar duration; "1h 30m" is allowed. Raises ValueError."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("empty duration")
    pos, total = 0, 0
    for match in _PART.finditer(cleaned):
        if cleaned[pos : match.start()].strip(" ,") or match.group(2) not in _UNITS:
            raise ValueError(text)
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or cleaned[pos:].strip():
        raise ValueError(text)
    return timedelta(seconds=total)


def parse_delay(text: str) -> Delay:
    """Parse a rule delay: a calendar duration or "N business days"."""
    match = _BUSINESS.match(text.strip().lower())
    if match:
        return Delay(business_days=int(match.group(1) or match.group(2)))
    return Delay(calendar=parse_duration(text))
