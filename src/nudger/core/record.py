"""The record of one message: the header facts every later step reads, and its row.

``MessageRecord`` is what sync stores and threading, judging and planning read; it is
frozen, so a decision can never change the facts it was made from. The row is its
stored form (see ``to_row``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar, overload

from nudger.core.subjects import normalise_subject

_V = TypeVar("_V")

# What kind of message a record is (see ``classify``): only a human's answers a thread.
HUMAN = "human"
AUTO_REPLY = "auto-reply"
BOUNCE = "bounce"
DELAY = "delay-notice"
READ_RECEIPT = "read-receipt"
CALENDAR = "calendar-answer"
MACHINE_KINDS = (AUTO_REPLY, BOUNCE, DELAY, READ_RECEIPT, CALENDAR)
REPORT_KINDS = (BOUNCE, DELAY, READ_RECEIPT)  # they name the message they report on


class _once(Generic[_V]):
    """functools.cached_property without its lock (Python 3.11 takes one at each first
    read: a third of the cost, for values read of every record of a first sync). A record
    is frozen, so two threads racing would only work out the same value twice."""

    def __init__(self, fn: Callable[[Any], _V]):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> _once[_V]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _V: ...

    def __get__(self, instance: object, owner: type | None = None) -> _V | _once[_V]:
        if instance is None:
            return self
        # (Read from the instance's __dict__ from now on: this is no data descriptor.)
        value = instance.__dict__[self.name] = self.fn(instance)
        return value


@dataclass(frozen=True)
class Addr:
    """One address of a header: display name and e-mail."""

    name: str
    email: str  # lower-cased as read (see Headers.addresses): compare as is

    def __reduce__(self) -> tuple[Any, ...]:
        return (new_addr, (self.name, self.email))  # (see MessageRecord.__reduce__)


@dataclass(frozen=True)
class MessageRecord:
    """The header facts of one message in one folder (see the module docstring)."""

    folder: str
    uid: int
    message_id: str  # normalised "<local@domain>", "" when the message has none
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: Addr
    to: tuple[Addr, ...]
    cc: tuple[Addr, ...]
    bcc: tuple[Addr, ...]
    date: datetime  # aware, UTC
    subject: str
    kind: str = HUMAN
    kind_reason: str = ""
    list_traffic: bool = False
    failed_recipients: tuple[str, ...] = ()
    original_ids: tuple[str, ...] = ()  # what a bounce or receipt reports on
    keywords: tuple[str, ...] = ()
    gm_thrid: int | None = None
    thread_index: str = ""  # Outlook's conversation id: the first 22 bytes of Thread-Index
    nudge_for: str = ""
    size: int = 0
    written_id: str = ""  # Message-ID and References exactly as written, for our replies
    written_references: tuple[str, ...] = ()
    back_on: str = ""  # an out-of-office's announced return date (ISO), when it names one
    inferred_parent: str = ""  # for a reply without In-Reply-To: ours, by subject and people
    calendar: str = ""  # an invitation's or answer's facts (core.calendar.CalendarFacts, JSON)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @_once
    def parents(self) -> tuple[str, ...]:
        """What it answers, oldest first, once each. Worked out once (threading asks it of
        every record several times); the value lives in the instance's ``__dict__`` beside
        the fields, outside equality, repr and the row, which are made of the fields."""
        inferred = (self.inferred_parent,) if self.inferred_parent else ()
        return tuple(dict.fromkeys(self.references + self.in_reply_to + inferred))

    @_once
    def topic(self) -> str:
        """The subject without reply prefixes, lower-cased: what subject threading compares
        (worked out once, kept beside ``parents``)."""
        return normalise_subject(self.subject).lower()

    @property
    def recipients(self) -> tuple[Addr, ...]:
        return self.to + self.cc

    @property
    def needs_report_body(self) -> bool:
        """Bounces and receipts name the original message, and a bounce who failed, in
        their body: fetch it unless the headers told both."""
        return self.kind in REPORT_KINDS and (
            not self.original_ids or (self.kind == BOUNCE and not self.failed_recipients))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (to and from the helper process, cycle/parse_helper.py) as its values:
        # loaded about 3x faster than pickle's default for a frozen dataclass, when the
        # records of a batch share their Addr objects (pickled once each, then referred to).
        return (_rebuilt, (_all_values(self),))

    def has_keyword(self, keyword: str) -> bool:
        return keyword.lower() in (k.lower() for k in self.keywords)

    def to_row(self) -> list[Any]:
        """The record as a JSON-ready list, field by field: positional, because it is
        stored and loaded for every message of a first sync and keys would weigh on that."""
        row: list[Any] = list(_row_values(self))
        row[DATE] = self.date.isoformat()
        row[_SENDER] = (self.sender.name, self.sender.email)
        for i in _ADDRESSES:
            if row[i]:  # (most Cc and Bcc are empty: an empty tuple is written as [] too)
                row[i] = [(a.name, a.email) for a in row[i]]
        return row

    @classmethod
    def from_row(cls, row: list[Any] | dict[str, Any]) -> MessageRecord:
        """The record of a stored row (a list from ``to_row``, or the dict of 0.1.0)."""
        if isinstance(row, dict):  # a state written by nudger 0.1.0
            row = [row.get(name, _FIELD_DEFAULTS.get(name)) for name in _ROW_FIELDS]
            row[_SENDER] = (row[_SENDER]["name"], row[_SENDER]["email"])
            for i in _ADDRESSES:
                row[i] = [(a["name"], a["email"]) for a in row[i]]
        row = list(row)
        row[DATE] = datetime.fromisoformat(row[DATE])
        row[_SENDER] = new_addr(*row[_SENDER])
        for i in _ADDRESSES:
            row[i] = tuple([new_addr(name, email) for name, email in row[i]]) if row[i] else ()
        for i in _TUPLES:
            row[i] = tuple(row[i])
        if len(row) != len(_ROW_FIELDS):
            return cls(*row)  # (the dataclass fills in or complains about missing fields)
        # What new_record does, without its keyword round: every field but the warnings
        # is in the row, and a loaded record has none.
        record = object.__new__(MessageRecord)
        record.__dict__.update(zip(_ROW_FIELDS, row, strict=True))
        record.__dict__["warnings"] = ()
        return record


def replaced(record: MessageRecord, **changes: Any) -> MessageRecord:
    """dataclasses.replace(record, **changes), without the frozen dataclass's __init__ (see
    new_record): a first sync threads most replies of a phone or a webmail by subject,
    one replace each. What the record worked out once (its parents, its topic) is not
    carried over: worked out again from the new fields when asked."""
    fields = MessageRecord.__dataclass_fields__
    if not changes.keys() <= fields.keys():
        return replace(record, **changes)  # raises TypeError naming the field
    values = record.__dict__
    new = object.__new__(MessageRecord)
    new.__dict__.update({name: values[name] for name in fields})
    new.__dict__.update(changes)
    return new


def record_key(record: MessageRecord) -> str:
    """The id a message is threaded by: its Message-ID, or one made from where it lives."""
    return record.message_id or f"<nudger-missing.{record.uid}@{record.folder}>"


_ROW_FIELDS = tuple(f for f in MessageRecord.__dataclass_fields__ if f != "warnings")
_row_values = attrgetter(*_ROW_FIELDS)  # (the fields in one call, not a getattr each)
_FIELD_DEFAULTS = {name: f.default for name, f in MessageRecord.__dataclass_fields__.items()
                   if f.default is not MISSING}
# The date's place in a stored row (its ISO text; rows.py reads it), and the sender's.
DATE, _SENDER = _ROW_FIELDS.index("date"), _ROW_FIELDS.index("sender")
_ADDRESSES = tuple(_ROW_FIELDS.index(name) for name in ("to", "cc", "bcc"))
_TUPLES = tuple(_ROW_FIELDS.index(name) for name in ("in_reply_to", "references", "failed_recipients",
                                                     "original_ids", "keywords", "written_references"))


_set = object.__setattr__
_all_values = attrgetter(*MessageRecord.__dataclass_fields__)


def _rebuilt(values: tuple[Any, ...]) -> MessageRecord:
    """The record of ``__reduce__``'s values (the fields' order is the stamp's, parse_helper.py)."""
    record = object.__new__(MessageRecord)
    record.__dict__.update(zip(MessageRecord.__dataclass_fields__, values, strict=True))
    return record


def new_addr(name: str, email: str) -> Addr:
    """Addr(name, email) without the call through the frozen dataclass's __init__ (see
    new_record). Attribute by attribute, not through ``__dict__``: asking for it would
    give each instance a dict of its own (measured: slower, through the collector)."""
    addr = object.__new__(Addr)
    _set(addr, "name", name)
    _set(addr, "email", email)
    return addr


def new_record(**fields: Any) -> MessageRecord:
    """MessageRecord(**fields), without the frozen dataclass's __init__ and its
    object.__setattr__ per field: this runs for every message read or loaded. The way
    pickle and copy build instances; a missing or unknown field is still an error."""
    record = object.__new__(MessageRecord)
    values = {**_FIELD_DEFAULTS, **fields}
    if len(values) != len(MessageRecord.__dataclass_fields__):
        return MessageRecord(**fields)  # raises TypeError naming the field
    record.__dict__.update(values)
    return record
