"""Reading a header block: fields by name, their text decoded, ids, dates, addresses.

Pure: bytes in, text and values out. Every value is decoded with explicit fallbacks
(8-bit bytes as UTF-8, else Latin-1; unknown charsets as UTF-8; control characters as
spaces), so hostile input becomes data, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import email.utils
import functools
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from nudger.core.addresses import canonical
from nudger.core.record import Addr, new_addr

# What sync asks the server for: everything the judgement needs, no body.
HEADER_FIELDS = (
    "Message-ID", "In-Reply-To", "References", "From", "Sender", "To", "Cc", "Bcc",
    "Date", "Subject", "Auto-Submitted", "X-Autoreply", "X-Autorespond", "Precedence",
    "List-Id", "List-Post", "Content-Type", "Return-Path", "X-Failed-Recipients",
    "X-Nudger-For", "Thread-Index",
)  # fmt: skip

_MSGID = re.compile(r"<([^<>\s]+)>")
_SPACES = re.compile(r"\s+")
ADDRESS_IN_TEXT = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")  # an address in free text


# -- message ids ---------------------------------------------------------------------------


def normalise_message_id(value: str) -> str:
    """Angle brackets, no whitespace, domain part lower-cased (local part is case-sensitive)."""
    ids = message_ids(value)
    return ids[0] if ids else ""


# The ids of one References/In-Reply-To value that are kept: the first (the thread's
# root) and the last ones (the nearest ancestors, the parent last). RFC 5537 trims a long
# References the same way (never the first, never the last three); a hundred links a
# message to its thread as surely as all of them and keep each message's links small.
MAX_IDS = 100


def message_ids(value: str, keep_case: bool = False) -> tuple[str, ...]:
    """Every msg-id in a References/In-Reply-To value, in order, tolerant of junk between;
    at most MAX_IDS of them: the first and the last MAX_IDS - 1.

    Matching uses the normalised form; ``keep_case`` gives the ids as written, which is
    what a reply must carry (some clients compare msg-ids byte for byte).
    """
    if not value:
        return ()
    if (single := _MSGID.fullmatch(value)) is not None:  # one id, as nearly every value holds
        found = [single.group(1)]
    else:
        unfolded = _SPACES.sub("", value) if "<" in value and ">" in value else value
        found = _MSGID.findall(unfolded)
    if not found:
        # Broken senders omit the brackets; a bare token with "@" is still an id.
        found = [t.strip("<>,;()") for t in value.split() if "@" in t]
    result: dict[str, None] = {}  # ordered, and a membership test in constant time
    for token in found:
        local, at, domain = token.rpartition("@")
        norm = f"<{local}@{domain if keep_case else domain.lower()}>" if at and local else f"<{token}>"
        result[norm] = None
    ids = tuple(result)
    return ids if len(ids) <= MAX_IDS else ids[:1] + ids[1 - MAX_IDS:]


def lower_domain(msgid: str) -> str:
    """A msg-id as written -> its normalised form (see message_ids)."""
    local, at, domain = msgid.rpartition("@")
    return f"{local}@{domain.lower()}" if at and local != "<" else msgid


# -- text ----------------------------------------------------------------------------------

# Controls (C0, DEL, C1), line and paragraph separators, lone surrogates: never part of
# a header's text. Tab and line breaks are folding, the rest is junk or an attack.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def without_controls(text: str) -> str:
    """Text with every control character (CR, LF, NUL, tab ...) turned into a space, then
    each run of white space made one space. Linear, whatever the input."""
    if text.isprintable():  # the common case, at C speed
        return text
    spaced, count = _CONTROLS.subn(" ", text)
    return " ".join(spaced.split()) if count else text  # (no-break spaces and such: kept)


# Characters of a header with encoded words that are decoded: decode_header's time
# grows with the square of the words, and this is enough for any real field.
MAX_ENCODED = 20_000


def _decode_chunk(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset or "ascii", "replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the best guess
        return chunk.decode("utf-8", "replace")


def header_text(value: Any) -> str:
    """A header value as text: RFC 2047 decoded, 8-bit bytes read as UTF-8 or Latin-1,
    control characters (a decoded =0D=0A too) turned into spaces."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    return _decoded(_surrogates_undone(value))


def _decoded(raw: str) -> str:
    """Text without 8-bit escapes -> RFC 2047 decoded, controls turned into spaces."""
    if "=?" not in raw:  # no encoded words: nothing to decode
        return without_controls(raw).strip()
    try:
        chunks = email.header.decode_header(raw[:MAX_ENCODED])
        decoded = "".join(_decode_chunk(c, cs) for c, cs in chunks)
    except (LookupError, ValueError, AssertionError, email.errors.HeaderParseError):
        decoded = raw
    return without_controls(decoded).strip()


def _surrogates_undone(value: Any) -> str:
    """Undo compat32's surrogate escapes (8-bit bytes): UTF-8 if it is, else Latin-1."""
    raw = str(value)
    if not raw.isascii() and any("\udc80" <= ch <= "\udcff" for ch in raw):
        data = raw.encode("ascii", "surrogateescape")
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            raw = data.decode("latin-1")
    return raw


# -- the header block ----------------------------------------------------------------------

_HEADER_FIELD = re.compile(rb"^([^:\s]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.MULTILINE)
# The same on an ASCII block's text (re.ASCII: the same white space as the bytes' \s and strip)
_TEXT_FIELD = re.compile(_HEADER_FIELD.pattern.decode(), re.MULTILINE | re.ASCII)
_ASCII_SPACE = " \t\n\r\x0b\x0c"
_ADDR_SPEC = r'[^<>\s,;()"]+@[^<>\s,;()"]+'
_SIMPLE_ADDRESS = re.compile(rf'^\s*(?:"?([^"<>,;()\\=]*?)"?\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*$')


class Headers:
    """A header block as name -> values, read in one pass.

    Written for speed over the email package's feed parser (it reads every message of a
    first sync) and as tolerant: lines without a colon are skipped, folded lines are
    joined, 8-bit bytes are kept (as UTF-8, else Latin-1) rather than replaced. Names
    are looked up in lower case.
    """

    def __init__(self, data: bytes):
        self.index: dict[str, list[str]] = {}
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        block = (data if end < 0 else data[:end]).replace(b"\r\n", b"\n")
        index = self.index
        if block.isascii():  # nearly every block: one decode, not one per field
            for name, value in _TEXT_FIELD.findall(block.decode("ascii")):
                key = name.lower()
                value = value.strip(_ASCII_SPACE)
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            return
        for name, raw in _HEADER_FIELD.findall(block):
            raw = raw.strip()
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("latin-1")
            key = name.decode("ascii", "replace").lower()
            if key in index:
                index[key].append(text)
            else:
                index[key] = [text]

    def all(self, name: str) -> list[str]:
        """Every value of a field, as written (already text: 8-bit bytes are decoded)."""
        return self.index.get(name, [])

    def first(self, name: str) -> str:
        """The first value of a field as written, "" when there is none."""
        values = self.index.get(name)
        return values[0] if values else ""

    def text(self, name: str) -> str:
        """The first value of a field as text (see ``header_text``)."""
        values = self.index.get(name)
        # (Read here as UTF-8 or Latin-1, a value never holds compat32's escapes: only
        # the decoding is left, and it runs up to seven times per message.)
        return _decoded(values[0]) if values else ""

    def addresses(self, name: str) -> tuple[Addr, ...]:
        """The addresses of an address field, e-mail as ``addresses.canonical``; ones
        without "@" dropped."""
        values = self.index.get(name)
        if not values:
            return ()
        # (Only short values: on a long run of spaces the regex backtracks in quadratic time.)
        if len(values) == 1 and len(values[0]) < 500 and (simple := _simple_address(values[0])):
            return simple  # the common case, without the general (slow) address parser
        result = []
        for display, address in email.utils.getaddresses(values):
            address = address.strip()
            if "@" not in address:
                continue
            local, _, domain = address.rpartition("@")
            result.append(new_addr(header_text(display), canonical(f"{local}@{domain}")))
        return tuple(result)


@functools.lru_cache(maxsize=4096)  # (a mailbox's few correspondents, each met many times)
def _simple_address(value: str) -> tuple[Addr, ...]:
    """One address written plainly ("Name <a@b>", "a@b"), else nothing."""
    simple = _SIMPLE_ADDRESS.match(value)
    if simple is None:
        return ()
    display, address = simple.group(1) or "", simple.group(2) or simple.group(3)
    # (a folded display name keeps its line break here: unfolded like any text)
    return (new_addr(without_controls(display).strip(), canonical(address)),)


def failed_recipients(msg: Headers) -> tuple[str, ...]:
    """The addresses an X-Failed-Recipients header (Exim and others) names, lower-cased."""
    return tuple(canonical(a) for v in msg.all("x-failed-recipients") for a in ADDRESS_IN_TEXT.findall(v))


def conversation_of(thread_index: str) -> str:
    """Outlook's Thread-Index is base64 of a 22-byte conversation header plus 5 bytes per
    reply; messages of one conversation share the header: this, in hex."""
    if not thread_index:
        return ""
    try:
        data = base64.b64decode(thread_index.strip() + "==", validate=False)
    except (ValueError, binascii.Error):
        return ""
    return data[:22].hex() if len(data) >= 22 else ""


# -- dates ---------------------------------------------------------------------------------

_COMMON_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), start=1)}


def datetime_of(day: str, month: str, year: str, hh: str, mm: str, ss: str, sign: str, oh: str,
                om: str) -> datetime:
    """An aware datetime from the parts of an RFC 5322 date or an IMAP INTERNALDATE
    ("Oct" for the month); ValueError or KeyError when they make no date."""
    minutes = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1)
    return datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=_zone(minutes))


@functools.lru_cache(maxsize=256)  # (a mailbox's mail comes from a few zones)
def _zone(minutes: int) -> timezone:
    """The fixed zone ``minutes`` east of UTC (ValueError past a day, as timezone says)."""
    return UTC if minutes == 0 else timezone(timedelta(minutes=minutes))


def parse_date(value: str) -> datetime | None:
    """A Date header in UTC; None when it is missing, unreadable or before 1980/after 2200."""
    if not value:
        return None
    common = _COMMON_DATE.fullmatch(value)
    if common and 1980 <= int(common.group(3)) <= 2200:
        # The shape nearly every client writes, read without email.utils' general parser.
        try:
            return datetime_of(*common.groups()).astimezone(UTC)
        except (ValueError, KeyError):
            pass  # 31 Feb, 25:00, "Foo": the general parser decides
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or not 1980 <= parsed.year <= 2200:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
