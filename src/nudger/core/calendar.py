"""A calendar message's facts: an iCalendar part (RFC 5545/5546) -> ``CalendarFacts``.

Pure: the bytes of a text/calendar part in, plain facts out (parsed by ``icalendar``,
which resolves TZID through the part's own VTIMEZONE, Windows zone names included).
The facts are kept in the message's record as JSON (``to_json``/``from_json``), so a
meeting is decided from the state alone, like a thread.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from nudger.core.series import SeriesError, series_problem, span_problem

CALENDAR_TYPES = ("text/calendar", "application/ics")
INDIVIDUAL = "INDIVIDUAL"


@dataclass(frozen=True)
class Attendee:
    name: str
    email: str  # lower case, without "mailto:"
    role: str = "REQ-PARTICIPANT"  # CHAIR, REQ-PARTICIPANT, OPT-PARTICIPANT, NON-PARTICIPANT
    cutype: str = INDIVIDUAL  # ROOM, RESOURCE, GROUP, UNKNOWN...
    partstat: str = "NEEDS-ACTION"  # ACCEPTED, DECLINED, TENTATIVE...


@dataclass(frozen=True)
class CalendarFacts:
    """One event of a calendar message: what it asks or answers, when, and who."""

    method: str  # REQUEST, REPLY, CANCEL, PUBLISH... ("" when the part names none)
    uid: str
    sequence: int
    dtstamp: str  # ISO, UTC; "" when missing
    start: str  # ISO: aware (UTC), naive for floating time, a date for an all-day event
    end: str  # (both "" in an answer or cancellation that leaves the time out)
    recurring: bool  # RRULE or RDATE: a series
    recurrence_id: str  # one occurrence of a series, when the message is about only that
    status: str  # CONFIRMED, TENTATIVE, CANCELLED
    summary: str
    organizer: Attendee | None
    attendees: tuple[Attendee, ...]
    ics: str = ""  # a series' own calendar text: its occurrences are computed from it
    refused: str = ""  # why a series' occurrences are not computed (core.series); "" if they are

    @property
    def series(self) -> bool:
        return self.recurring or bool(self.recurrence_id)

    @property
    def all_day(self) -> bool:
        return bool(self.start) and "T" not in self.start

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def is_request(text: str) -> bool:
        """Whether facts stored by ``to_json`` are an invitation's (METHOD:REQUEST), read
        without parsing them: asked of every thread's messages at every plan."""
        return '"method":"REQUEST"' in text

    @classmethod
    def from_json(cls, text: str) -> CalendarFacts:
        data: dict[str, Any] = json.loads(text)
        organizer = data.pop("organizer")
        attendees = data.pop("attendees")
        return cls(**data, organizer=Attendee(**organizer) if organizer else None,
                   attendees=tuple(Attendee(**a) for a in attendees))


def calendar_part(message: bytes) -> bytes | None:
    """The first text/calendar (or application/ics) part of a whole message, decoded."""
    msg = BytesParser(policy=policy.default).parsebytes(message)
    for part in msg.walk():
        if isinstance(part, EmailMessage) and part.get_content_type() in CALENDAR_TYPES:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and payload.strip():
                return payload
    return None


def parse_calendar(data: bytes) -> CalendarFacts | None:
    """The facts of the calendar's event (its master when it has several); None when it
    holds no event. Raises ValueError for a part icalendar cannot read."""
    import icalendar  # here: only an account with meetings on pays for importing it

    cal = icalendar.Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    if not events:
        return None
    event = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    recurring = "RRULE" in event or "RDATE" in event
    refused = next((p for e in events if (p := series_problem(e))), "") if recurring else ""
    method = str(cal.get("METHOD", "")).upper()
    start = _when(event.decoded("DTSTART", None))
    if start is None and method in ("REQUEST", "PUBLISH", ""):
        return None  # (an answer or a cancellation may leave the time out: RFC 5546)
    end = _end(event, start) if start is not None else None
    return CalendarFacts(
        method=method,
        uid=str(event.get("UID", "")),
        sequence=_int(event.get("SEQUENCE", 0)),
        dtstamp=_iso(_when(event.decoded("DTSTAMP", None))),
        start=_iso(start),
        end=_iso(end),
        recurring=recurring,
        recurrence_id=_iso(_when(event.decoded("RECURRENCE-ID", None))),
        status=str(event.get("STATUS", "")).upper(),
        summary=" ".join(str(event.get("SUMMARY", "")).split())[:200],
        organizer=_person(event.get("ORGANIZER")),
        attendees=tuple(a for v in _list(event.get("ATTENDEE")) if (a := _person(v)) is not None),
        ics=data.decode("utf-8", "replace") if recurring and not refused else "",
        refused=refused,
    )


def occurrences(facts: CalendarFacts, since: datetime, until: datetime) -> list[tuple[str, str]]:
    """The (start, end) of each occurrence of a series between ``since`` and ``until``, as
    ``CalendarFacts`` writes them (EXDATE and overridden occurrences applied, by
    ``recurring_ical_events``). Raises SeriesError, saying why, for a series it does
    not expand (core.series); never anything else, whatever the invitation says."""
    import icalendar
    import recurring_ical_events

    if facts.refused or not facts.ics:
        raise SeriesError(facts.refused or "its calendar text was not kept")
    found = []
    try:
        cal = icalendar.Calendar.from_ical(facts.ics)
        for e in cal.walk("VEVENT"):  # (a state written before these checks is checked here)
            problem = series_problem(e) or span_problem(e, until)
            if problem:
                raise SeriesError(problem)
        for event in recurring_ical_events.of(cal).between(since, until):
            if str(event.get("UID", "")) != facts.uid or str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            start = _when(event.decoded("DTSTART", None))
            if start is not None:
                found.append((_iso(start), _iso(_end(event, start))))
    except SeriesError:
        raise
    except Exception as exc:  # noqa: BLE001 - what the checks missed still costs only this meeting
        raise SeriesError(f"its occurrences cannot be computed ({type(exc).__name__})") from exc
    return sorted(found)


def _end(event: Any, start: date) -> date:
    end = _when(event.decoded("DTEND", None))
    if end is not None and type(end) is type(start):
        return end
    duration = event.decoded("DURATION", None)
    if isinstance(duration, timedelta):
        return start + duration
    # RFC 5545 3.6.1: without either, a date lasts the day, a date-time no time at all.
    return start if isinstance(start, datetime) else start + timedelta(days=1)


def _when(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value
    return value if isinstance(value, date) else None


def _iso(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _person(value: Any) -> Attendee | None:
    """An ORGANIZER or ATTENDEE: its address (the value's mailto:, else its EMAIL) and
    parameters; None when it names no address."""
    if value is None:
        return None
    params = getattr(value, "params", {})
    text = str(value).strip()
    address = text[7:] if text.lower().startswith("mailto:") else ""
    if "@" not in address:
        address = str(params.get("EMAIL", ""))
    if "@" not in address:
        return None
    name = str(params.get("CN", "")).strip().strip('"')
    return Attendee(
        name="" if "@" in name else name,  # a CN that is the address is no name
        email=address.strip().lower(),
        role=str(params.get("ROLE", "REQ-PARTICIPANT")).upper(),
        cutype=str(params.get("CUTYPE", INDIVIDUAL)).upper(),
        partstat=str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
    )
