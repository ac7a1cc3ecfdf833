"""Reading IMAP answers (FETCH, CAPABILITY, APPENDUID) and writing UID sets: the wire
format, apart from sockets (bytes in, parsed items out).

Whatever does not read as the answer asked for raises ``Garbled``: a cut or garbled
answer must fail the chunk it belongs to, never drop a message silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from nudger.core.headers import datetime_of

BATCH = 1000  # UIDs per FETCH at most; see uid_batches for the command-line limit
MAX_SET = 900  # bytes of a UID set: some servers refuse command lines much over 1,000
# Untagged answers a server may send amid a UID FETCH (RFC 3501 7, RFC 7162): any other
# word there is a garbled line, never something to pass over.
_NUMBERED = {b"FETCH", b"EXISTS", b"EXPUNGE", b"RECENT"}
_STATUS_WORDS = {b"OK", b"NO", b"BAD", b"FLAGS", b"CAPABILITY"}
TOLD = {b"STATUS", b"LIST"}  # what NOTIFY may send amid a FETCH, once it was asked for
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]", re.IGNORECASE)


class Garbled(Exception):
    """An answer that does not read as IMAP."""


class Refused(Exception):
    """The server answered NO or BAD."""


def expected_amid(word: bytes, answers: set[bytes]) -> bool:
    """Whether an untagged response starting with ``word`` (upper case) may come amid the
    answer to a command whose responses are ``answers``: those, a status response, or
    news of the open folder ("3 EXISTS"). Any other is a garbled line, never one to pass
    over: a LIST line garbled so would make its folder seem not to exist."""
    return word in answers or word in _STATUS_WORDS or word.isdigit()


def read_capabilities(names: Iterable[bytes]) -> set[str]:
    """Capability names as upper-case text ("IDLE", "AUTH=PLAIN", "APPENDLIMIT=1000")."""
    return {c.decode("ascii", "replace").upper() for c in names}


def append_limit(capabilities: Iterable[str]) -> int | None:
    """The largest message the server takes, when it says so (RFC 7889 APPENDLIMIT=N;
    a bare APPENDLIMIT means a limit per folder, which nudger does not ask for)."""
    sizes = [int(c[12:]) for c in capabilities if c.startswith("APPENDLIMIT=") and c[12:].isdigit()]
    return min(sizes) if sizes else None


def appended_uid(answer: bytes | None) -> int | None:
    """The UID an APPEND's answer gives the new message (RFC 4315 APPENDUID), if any."""
    found = _APPENDUID.search(answer or b"")
    return int(found.group(1)) if found else None


def uid_batches(uids: Sequence[int], size: int = BATCH, limit: int = MAX_SET) -> list[str]:
    """Sorted UIDs as IMAP sets ("1:500,502,510:520"), each of at most ``size`` UIDs and
    ``limit`` bytes: runs collapse, so a first sync sends a few short commands."""
    runs: list[list[int]] = []
    for uid in sorted(set(uids)):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    batches: list[str] = []
    parts: list[str] = []
    count = length = 0
    for first, last in runs:
        while first <= last:
            take = min(size - count, last - first + 1)
            part = str(first) if take == 1 else f"{first}:{first + take - 1}"
            if take == 0 or (parts and length + len(part) + 1 > limit):
                batches.append(",".join(parts))
                parts, count, length = [], 0, 0
                continue
            parts.append(part)
            count += take
            length += len(part) + 1
            first += take
    if parts:
        batches.append(",".join(parts))
    return batches


# One FETCH item we ask for, as a repeated group (a value given twice: the last, as the
# general parser takes it). An item follows "(" or a space: "UID 5FLAGS ()" is garbled.
_ONE = (rb'(?:(?<![^\s(])(?:UID (\d+)|RFC822\.SIZE (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE "([^"]*)"'
        rb"|X-GM-THRID (\d+)|MODSEQ \(\d+\))|\s)*")
# "n (items BODY[..] {len}", the line before the literal; the items after it, and ")".
_HEAD = re.compile(rb"\d+ \(" + _ONE + rb"(BODY\[[^\]]*\](?:<\d+>)?) \{\d+\}")
_TAIL = re.compile(_ONE + rb"\)\s*")
# Keys the general parser may give for what we ask (it adds SEQ); a BODY[...] key besides.
_KEYS = {b"UID", b"SEQ", b"FLAGS", b"RFC822.SIZE", b"INTERNALDATE", b"X-GM-THRID", b"MODSEQ",
         b"BODYSTRUCTURE"}
_TOLD_FLAGS = {b"SEQ", b"FLAGS", b"MODSEQ"}  # an unasked flag change (no UID without UID FETCH)
_INTERNALDATE = re.compile(r" ?(\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
# Its usual shape, rebuilt as ISO 8601 for datetime.fromisoformat (C: a third of the time).
_ISO_SHAPE = re.compile(rb" ?(\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)")
_MONTH_NUMBER = {m.encode(): b"%02d" % n for n, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_internaldate(value: bytes) -> datetime:
    """INTERNALDATE ("17-Jul-1996 02:44:25 -0700"), aware. Its format is fixed (RFC 3501),
    so a pattern reads it; imapclient's general date parser is the fallback."""
    iso = _ISO_SHAPE.fullmatch(value)
    if iso is not None and (month := _MONTH_NUMBER.get(iso[2])) is not None:
        day, _, year, clock, hours, minutes = iso.groups()
        try:
            return datetime.fromisoformat((year + b"-" + month + (b"-0" if len(day) == 1 else b"-")
                                           + day + b"T" + clock + hours + b":" + minutes).decode())
        except ValueError:
            pass  # (31 Feb, 25:00, a zone of a day or more: the slower reading judges)
    found = _INTERNALDATE.fullmatch(value.decode("ascii", "replace"))
    if found:
        try:
            return datetime_of(*found.groups())
        except (ValueError, KeyError):
            pass
    from imapclient.datetime_util import parse_to_datetime

    try:
        return parse_to_datetime(value, normalise=False)
    except ValueError as exc:
        raise Garbled(f"an unreadable INTERNALDATE {value[:40]!r}") from exc


def parse_header_fetch(data: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """The common shape of our header FETCH answers, parsed in one pass.

    imapclient's general parser reads every byte through a Python tokenizer; this
    reads "* n (UID .. FLAGS (..) .. BODY[..] {len}" plus the literal and what follows
    it with one pattern each. Anything else returns None and the general parser takes
    over.
    """
    result: dict[int, dict[bytes, Any]] = {}
    i, count = 0, len(data)
    while i < count:
        item = data[i]
        if type(item) is not tuple or len(item) != 2:
            return None
        head, literal = item
        trailer = data[i + 1] if i + 1 < count and isinstance(data[i + 1], bytes) else b""
        i += 2 if trailer else 1
        before = _HEAD.fullmatch(head)
        if before is None:
            return None  # something besides the items it knows: the general parser judges
        uid, size, flags, date, thread, key = before.groups()
        if trailer != b")":  # (items after the literal: each overrides the same before it)
            after = _TAIL.fullmatch(trailer)
            if after is None:
                return None
            before_it = (uid, size, flags, date, thread)
            uid, size, flags, date, thread = (a if a is not None else b for a, b in
                                              zip(after.groups(), before_it, strict=True))
        if uid is None:
            return None
        entry: dict[bytes, Any] = {key: literal}
        if size is not None:
            entry[b"RFC822.SIZE"] = int(size)
        if thread is not None:
            entry[b"X-GM-THRID"] = int(thread)
        if flags is not None:
            entry[b"FLAGS"] = tuple(flags.split())
        if date:
            entry[b"INTERNALDATE"] = parse_internaldate(date)
        result[int(uid)] = entry
    return result


def parse_fetch(data: list[Any]) -> dict[int, dict[bytes, Any]]:
    """A UID FETCH answer by UID: the one-pass reader, else imapclient's general parser. An
    item without its UID cannot be placed, so the answer is garbled; unless it carries
    only flags: a change the server tells unasked (RFC 3501 7.4.2), no item of ours."""
    fast = parse_header_fetch(data)
    if fast is not None:
        return fast
    from imapclient.response_parser import parse_fetch_response

    try:
        parsed = parse_fetch_response(data, normalise_times=False, uid_is_key=False)
    except Exception as exc:  # noqa: BLE001 - the parser's errors (ProtocolError, ValueError...)
        raise Garbled(f"unreadable FETCH answer ({type(exc).__name__})") from exc
    result: dict[int, dict[bytes, Any]] = {}
    for item in parsed.values():
        if any(k not in _KEYS and not k.startswith(b"BODY[") for k in item):
            raise Garbled("a FETCH item with words it cannot hold")
        uid = item.pop(b"UID", None)
        if uid is None and item.keys() <= _TOLD_FLAGS:
            continue
        if not isinstance(uid, int):
            raise Garbled("a FETCH item without its UID")
        result[uid] = item
    # Every literal the server sent is some item's value: one that is not was displaced
    # by garbage taken for the value (the header nudger would read instead).
    values = {v for item in result.values() for v in item.values() if isinstance(v, bytes)}
    if any(part[1] not in values for part in data if isinstance(part, tuple)):
        raise Garbled("a literal out of place in a FETCH answer")
    return result


def expand_set(uid_set: str) -> set[int]:
    """The UIDs of an IMAP set as uid_batches writes it ("1:3,7")."""
    uids: set[int] = set()
    for part in uid_set.split(","):
        first, _, last = part.partition(":")
        uids.update(range(int(first), int(last or first) + 1))
    return uids


def decode_flags(flags: Any) -> tuple[str, ...]:
    """Flags as text. A flag is an atom, ASCII by definition (RFC 3501 9): another byte
    in one means the answer was garbled on its way."""
    try:
        return tuple(f.decode("ascii") if isinstance(f, bytes) else str(f) for f in flags)
    except (UnicodeDecodeError, TypeError) as exc:
        raise Garbled("a FLAGS answer with bytes no flag can hold") from exc


def read_literal(line: bytes, read: Callable[[int], bytes], where: str) -> bytes:
    """The literal that ``line`` (ending in "{N}") announces, read whole (RFC 3501 4.3)."""
    size = line[line.rfind(b"{") + 1 : -3]
    if not size.isdigit():
        raise Garbled(f"unreadable literal in {where}: {line[-80:]!r}")
    literal = read(int(size))
    if len(literal) != int(size):
        raise EOFError(f"connection closed amid {where}")
    return literal


def read_fetch_answer(readline: Callable[[], bytes], read: Callable[[int], bytes],
                      tag: bytes, heard: Callable[[str, Any], object] | None = None) -> list[Any]:
    """The answer to the FETCH sent with ``tag``, in imaplib's shape: ``(line, literal)``
    tuples and plain lines. Raises EOFError for a closed connection, Refused for a NO
    or BAD, Garbled for anything that does not read as an answer to a FETCH.

    ``heard``: where a STATUS or LIST told unasked (NOTIFY, RFC 5465) goes, as imaplib
    would file it (its word, the rest of the line; None for a line with a literal)."""
    data: list[Any] = []
    done = tag + b" "
    while True:
        line = _line(readline)
        space = line.find(b" ", 2)
        if line.startswith(b"* ") and line.startswith(b" FETCH ", space) and line[2:space].isdigit():
            chunk, fetch = line[2 : space + 1] + line[space + 7 :], True  # (nearly every line)
        elif line.startswith(done):
            status = line[len(done):].split(b" ", 1)[0].rstrip(b"\r\n").upper()
            if status == b"OK":
                return data
            if status in (b"NO", b"BAD"):
                raise Refused(line.strip().decode("ascii", "replace"))
            raise Garbled(f"unexpected end of a FETCH: {line[:80]!r}")
        elif (untagged := _untagged(line, heard)) is None:
            continue
        else:
            chunk, fetch = untagged
        while chunk.endswith(b"}\r\n"):
            literal = read_literal(chunk, read, "a FETCH answer")
            if fetch:
                data.append((chunk[:-2], literal))
            chunk = _line(readline)
        if fetch:
            data.append(chunk.rstrip(b"\r\n"))
        # Other untagged answers (EXISTS, EXPUNGE...) change nothing a UID FETCH returns.


def _untagged(line: bytes, heard: Callable[[str, Any], object] | None) -> tuple[bytes, bool] | None:
    """An untagged line amid a FETCH but the usual "* n FETCH (...": what of it is read on
    (literals and all) and whether it is a FETCH item; None for a line told and done."""
    if not line.startswith(b"* "):
        raise Garbled(f"unexpected answer to a FETCH: {line[:80]!r}")
    number, _, rest = line[2:].partition(b" ")
    kind, _, rest = rest.partition(b" ")
    word, kind = number.rstrip(b"\r\n").upper(), kind.rstrip(b"\r\n").upper()
    if word == b"BYE":
        raise EOFError(f"server closed the connection: {line.strip()!r}")
    if heard is not None and word == b"OK":
        heard("OK", line[5:].rstrip(b"\r\n"))  # (NOTIFICATIONOVERFLOW, RFC 5465 5.8)
    told = heard is not None and word in TOLD
    if told:
        assert heard is not None
        whole = not line.endswith(b"}\r\n")  # (a name as a literal: read past, unread)
        heard(word.decode(), line[3 + len(word):].rstrip(b"\r\n") if whole else None)
        if whole:
            return None
    fetch = number.isdigit() and kind == b"FETCH"
    if not (number.isdigit() and kind in _NUMBERED) and word not in _STATUS_WORDS and not told:
        raise Garbled(f"unexpected answer to a FETCH: {line[:80]!r}")
    return number + b" " + rest, fetch


def _line(readline: Callable[[], bytes]) -> bytes:
    line = readline()
    if not line.endswith(b"\n"):
        raise EOFError("connection closed during FETCH")
    return line


@cache
def _calendar_parts() -> set[tuple[bytes, ...]]:
    # (Here: the calendar module and the email policy it imports are not what a login
    # needs, imap_login.py; CALENDAR_TYPES, as bytes.)
    from nudger.core.calendar import CALENDAR_TYPES

    return {tuple(t.encode().split(b"/")) for t in CALENDAR_TYPES}


def has_calendar_part(structure: Any) -> bool:
    """Whether a BODYSTRUCTURE (as imapclient parses it) holds a text/calendar or
    application/ics part: a multipart's first element is the list of its parts."""
    if not isinstance(structure, tuple | list) or not structure:
        return False
    if isinstance(structure[0], list):
        return any(has_calendar_part(part) for part in structure[0])
    kind = tuple(x.lower() if isinstance(x, bytes) else b"" for x in structure[:2])
    return kind in _calendar_parts()
