"""Facts about one message, from its header bytes: who, when, what it answers, what kind.

Pure: bytes in, a frozen ``MessageRecord`` out. Parsing uses the ``email`` package's
compat32 policy on purpose: it never raises on malformed headers, and every value is
decoded here with explicit fallbacks, so hostile input becomes data, not exceptions.
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.header
import email.utils
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

# What sync asks the server for: everything the judgement needs, no body.
HEADER_FIELDS = (
    "Message-ID", "In-Reply-To", "References", "From", "Sender", "To", "Cc", "Bcc",
    "Date", "Subject", "Auto-Submitted", "X-Autoreply", "X-Autorespond", "Precedence",
    "List-Id", "List-Post", "Content-Type", "Return-Path", "X-Failed-Recipients",
    "X-Nudger-For", "Thread-Index",
)  # fmt: skip

HUMAN = "human"
AUTO_REPLY = "auto-reply"
BOUNCE = "bounce"
DELAY = "delay-notice"
READ_RECEIPT = "read-receipt"
CALENDAR = "calendar-answer"
MACHINE_KINDS = (AUTO_REPLY, BOUNCE, DELAY, READ_RECEIPT, CALENDAR)

NUDGE_ID_PREFIX = "<nudger."


_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def nudge_message_id(account: str, outbound_id: str, stage: int, domain: str) -> str:
    """Our follow-up's Message-ID, derived, so that a second attempt finds the first."""
    digest = hashlib.sha256(f"{account}\0{outbound_id}\0{stage}".encode()).hexdigest()[:32]
    if len(domain) > 253 or not _PLAIN_DOMAIN.fullmatch(domain):
        domain = "nudger.invalid"  # a msg-id is plain ASCII, never encoded: nothing odd in it
    return f"{NUDGE_ID_PREFIX}{digest}.s{stage}@{domain}>"

_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|odp|res|r|rif|ynt|atb|vá|回复|回覆|答复|返信|fw|fwd|wg|tr|rv|i|enc|doorst)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|\[[^\]]{1,40}\])\s*",
    re.IGNORECASE,
)
_ONLY_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|odp|res|r|rif|ynt|atb|vá|回复|回覆|答复|返信)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|auto:|out of (?:the )?office"
    r"|autoreply|automatische antwort|abwesenheitsnotiz|réponse automatique|absence du bureau"
    r"|respuesta automática|fuera de la oficina|risposta automatica|fuori sede"
    r"|automatisch antwoord|afwezig|resposta automática|ausente|autosvar|frånvaro|自動応答|不在)"
    r"|\bauto-?reply\b|automatic reply|automatiska atbilde|out of (?:the )?office|on vacation\b"
    r"|afwezigheidsbericht|fora do escritório|frånvarande|自動返信|不在通知"
    # help desks acknowledging a request: no person has read it yet
    r"|we(?:'ve| have)? received your (?:message|request|e-?mail|inquiry|enquiry)"
    r"|thank you for contacting|your (?:request|ticket|case) (?:#\s*)?\d*\s*(?:has been )?"
    r"(?:received|created|opened|logged)|\bautoreply:"
    r"|ihre anfrage (?:ist )?eingegangen|eingangsbestätigung|wir haben ihre (?:nachricht|anfrage) erhalten"
    r"|accusé de réception|nous avons bien reçu|hemos recibido su|abbiamo ricevuto la sua"
    r"|wij hebben uw (?:bericht|aanvraag) ontvangen|recebemos (?:a )?sua|vi har tagit emot"
    r"|お問い合わせを受け付けました",
)  # written in lower case and matched against the lower-cased subject: IGNORECASE on this
#    many alternatives costs three times as much, for every message of a first sync
_CALENDAR_SUBJECT = re.compile(
    r"^\s*(?:accepted|declined|tentative|tentatively accepted|angenommen|abgelehnt|mit vorbehalt"
    r"|accepté|refusé|aceptado|rechazado|accettato|rifiutato|geaccepteerd|geweigerd)\s*:",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery failure|failure notice|returned mail"
    r"|mail delivery (?:failed|system)|non[- ]?delivery|unzustellbar|nicht zustellbar"
    r"|non remis|rejected:|could not be delivered|delivery has failed|delivery problem",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"delay|warning: could not send|still being retried|verzögert", re.I)
_NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|mailer-daemon|postmaster|bounces?"
    r"|notifications?|notify|alerts?|automated|auto[-_.]?confirm)(?:[-+_.].*)?$|-daemon$",
    re.IGNORECASE,
)
_MSGID = re.compile(r"<([^<>\s]+)>")
_ADDR_IN_TEXT = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Addr:
    name: str
    email: str  # lower-cased where it matters: compare with .key


@dataclass(frozen=True)
class MessageRecord:
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
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def parents(self) -> tuple[str, ...]:
        inferred = (self.inferred_parent,) if self.inferred_parent else ()
        return tuple(dict.fromkeys(self.references + self.in_reply_to + inferred))

    @property
    def topic(self) -> str:
        return normalise_subject(self.subject).lower()

    @property
    def recipients(self) -> tuple[Addr, ...]:
        return self.to + self.cc

    @property
    def needs_report_body(self) -> bool:
        """Bounces and receipts name the original message in their body: fetch it."""
        return self.kind in (BOUNCE, DELAY, READ_RECEIPT) and not self.original_ids

    def has_keyword(self, keyword: str) -> bool:
        return keyword.lower() in (k.lower() for k in self.keywords)

    def to_row(self) -> list[Any]:
        """The record as a JSON-ready list, field by field: positional, because storing
        and loading run for every message of a first sync and keys would double the work."""
        row: list[Any] = [getattr(self, name) for name in _ROW_FIELDS]
        row[_DATE] = self.date.isoformat()
        row[_SENDER] = (self.sender.name, self.sender.email)
        for i in _ADDRESSES:
            row[i] = [(a.name, a.email) for a in row[i]]
        return row

    @classmethod
    def from_row(cls, row: list[Any] | dict[str, Any]) -> MessageRecord:
        if isinstance(row, dict):  # a state written by nudger 0.1.0
            row = [row.get(name, _FIELD_DEFAULTS.get(name)) for name in _ROW_FIELDS]
            row[_SENDER] = (row[_SENDER]["name"], row[_SENDER]["email"])
            for i in _ADDRESSES:
                row[i] = [(a["name"], a["email"]) for a in row[i]]
        row = list(row)
        row[_DATE] = datetime.fromisoformat(row[_DATE])
        row[_SENDER] = Addr(*row[_SENDER])
        for i in _ADDRESSES:
            row[i] = tuple(Addr(name, email) for name, email in row[i])
        for i in _TUPLES:
            row[i] = tuple(row[i])
        if len(row) != len(_ROW_FIELDS):
            return cls(*row)  # (the dataclass fills in or complains about missing fields)
        return _new_record(**dict(zip(_ROW_FIELDS, row, strict=True)))


def record_key(record: MessageRecord) -> str:
    """The id a message is threaded by: its Message-ID, or one made from where it lives."""
    return record.message_id or f"<nudger-missing.{record.uid}@{record.folder}>"


_ROW_FIELDS = tuple(f for f in MessageRecord.__dataclass_fields__ if f != "warnings")
_FIELD_DEFAULTS = {name: f.default for name, f in MessageRecord.__dataclass_fields__.items()
                   if f.default is not MISSING}


def _new_record(**fields: Any) -> MessageRecord:
    """MessageRecord(**fields), without the frozen dataclass's __init__ (one
    object.__setattr__ per field: a tenth of the time of a whole parse, per message).
    The way pickle and copy build instances; a missing field is still an error."""
    record = object.__new__(MessageRecord)
    values = {**_FIELD_DEFAULTS, **fields}
    if len(values) != len(MessageRecord.__dataclass_fields__):
        return MessageRecord(**fields)  # raises TypeError naming the field
    record.__dict__.update(values)
    return record
_DATE, _SENDER = _ROW_FIELDS.index("date"), _ROW_FIELDS.index("sender")
_ADDRESSES = tuple(_ROW_FIELDS.index(name) for name in ("to", "cc", "bcc"))
_TUPLES = tuple(_ROW_FIELDS.index(name) for name in ("in_reply_to", "references", "failed_recipients",
                                                     "original_ids", "keywords", "written_references"))


# -- normalisation -------------------------------------------------------------------------


def normalise_message_id(value: str) -> str:
    """Angle brackets, no whitespace, domain part lower-cased (local part is case-sensitive)."""
    ids = message_ids(value)
    return ids[0] if ids else ""


# The ids of one References/In-Reply-To value that are kept: the first (the thread's
# root) and the last ones (the nearest ancestors, the parent last). RFC 5537 trims a long
# References the same way (never the first, never the last three); a hundred links a
# message to its thread as surely as 200,000 and keeps each message's links small.
MAX_IDS = 100


def message_ids(value: str, keep_case: bool = False) -> tuple[str, ...]:
    """Every msg-id in a References/In-Reply-To value, in order, tolerant of junk between;
    at most MAX_IDS of them: the first and the last MAX_IDS - 1.

    Matching uses the normalised form; ``keep_case`` gives the ids as written, which is
    what a reply must carry (some clients compare msg-ids byte for byte).
    """
    if not value:
        return ()
    unfolded = re.sub(r"\s+", "", value) if "<" in value and ">" in value else value
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


def _lower_domain(msgid: str) -> str:
    """A msg-id as written -> its normalised form (see message_ids)."""
    local, at, domain = msgid.rpartition("@")
    return f"{local}@{domain.lower()}" if at and local != "<" else msgid


_SPACES = re.compile(r"\s+")


def _strip_prefixes(pattern: re.Pattern[str], subject: str) -> str:
    text = subject or ""
    while (found := pattern.match(text)) and found.end():  # "Re: AW: Re:": one per round
        text = text[found.end():]
    return _SPACES.sub(" ", text).strip() if "  " in text or not text.isprintable() else text.strip()


def normalise_subject(subject: str) -> str:
    """The thread topic: reply/forward prefixes and list tags removed, spaces folded."""
    return _strip_prefixes(_REPLY_PREFIX, subject)


def strip_reply_prefixes(subject: str) -> str:
    """Subject without its leading Re:/AW:/SV:... (Fwd: and list tags stay)."""
    return _strip_prefixes(_ONLY_REPLY_PREFIX, subject)


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


MAX_ENCODED = 20_000  # characters of a header with encoded words that are decoded


def _decode_chunk(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset or "ascii", "replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the best guess
        return chunk.decode("utf-8", "replace")


def _text(value: Any) -> str:
    """A header value as text: RFC 2047 decoded, 8-bit bytes read as UTF-8 or Latin-1,
    control characters (a decoded =0D=0A too) turned into spaces."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    raw = _text_raw(value)
    if "=?" not in raw:  # no encoded words: nothing to decode
        return without_controls(raw).strip()
    try:  # (decode_header's time grows with the square of the words: enough for any field)
        chunks = email.header.decode_header(raw[:MAX_ENCODED])
        decoded = "".join(_decode_chunk(c, cs) for c, cs in chunks)
    except (LookupError, ValueError, AssertionError, email.errors.HeaderParseError):
        decoded = raw
    return without_controls(decoded).strip()


_HEADER_FIELD = re.compile(rb"^([^:\s]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.MULTILINE)


class Headers:
    """A header block as name -> values, read in one pass.

    Faster than the email package's feed parser (this runs for every message of a
    first sync) and as tolerant: lines without a colon are skipped, folded lines are
    joined, 8-bit bytes are kept (as UTF-8, else Latin-1) rather than replaced.
    """

    def __init__(self, data: bytes):
        self.index: dict[str, list[str]] = {}
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        block = (data if end < 0 else data[:end]).replace(b"\r\n", b"\n")
        index = self.index
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


# The helpers below take lower-case names and read the index directly: they run a dozen
# times per message of a first sync.


def _raw_all(msg: Headers, name: str) -> list[str]:
    return msg.index.get(name, [])  # already text: Headers decodes 8-bit bytes itself


def _raw(msg: Headers, name: str) -> str:
    values = msg.index.get(name)
    return values[0] if values else ""


_ADDR_SPEC = r'[^<>\s,;()"]+@[^<>\s,;()"]+'
_SIMPLE_ADDRESS = re.compile(rf'^\s*(?:"?([^"<>,;()\\=]*?)"?\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*$')


def _addresses(msg: Headers, name: str) -> tuple[Addr, ...]:
    values = msg.index.get(name)
    if not values:
        return ()
    # (Only short values: on a long run of spaces the regex backtracks in quadratic time.)
    if len(values) == 1 and len(values[0]) < 500:
        simple = _SIMPLE_ADDRESS.match(values[0])
        if simple:  # the common case, without the general (slow) address parser
            display, address = simple.group(1) or "", simple.group(2) or simple.group(3)
            local, _, domain = address.rpartition("@")
            # (a folded display name keeps its line break here: unfolded like any text)
            return (Addr(without_controls(display).strip(), f"{local}@{domain}".lower()),)
    result = []
    for display, address in email.utils.getaddresses(values):
        address = address.strip()
        if "@" not in address:
            continue
        local, _, domain = address.rpartition("@")
        result.append(Addr(_text(display), f"{local}@{domain}".lower()))
    return tuple(result)


def _text_raw(value: Any) -> str:
    """Undo compat32's surrogate escapes (8-bit bytes): UTF-8 if it is, else Latin-1."""
    raw = str(value)
    if not raw.isascii() and any("\udc80" <= ch <= "\udcff" for ch in raw):
        data = raw.encode("ascii", "surrogateescape")
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            raw = data.decode("latin-1")
    return raw


_COMMON_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), start=1)}


def datetime_of(day: str, month: str, year: str, hh: str, mm: str, ss: str, sign: str, oh: str,
                om: str) -> datetime:
    """An aware datetime from the parts of an RFC 5322 date or an IMAP INTERNALDATE
    ("Oct" for the month); ValueError or KeyError when they make no date."""
    minutes = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1)
    zone = UTC if minutes == 0 else timezone(timedelta(minutes=minutes))
    return datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=zone)


def parse_date(value: str) -> datetime | None:
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


def is_noreply(address: str) -> bool:
    """An address no person reads: no-reply senders, daemons, notification robots."""
    return bool(_NOREPLY.search(address.partition("@")[0]))


def _conversation(thread_index: str) -> str:
    """Outlook's Thread-Index is base64 of a 22-byte conversation header plus 5 bytes per
    reply; messages of one conversation share the header."""
    if not thread_index:
        return ""
    try:
        data = base64.b64decode(thread_index.strip() + "==", validate=False)
    except (ValueError, binascii.Error):
        return ""
    return data[:22].hex() if len(data) >= 22 else ""


# -- classification ------------------------------------------------------------------------


def _header(msg: Headers, name: str) -> str:
    return _text(_raw(msg, name))


_REPORT_TYPE = re.compile(r'report-type\s*=\s*"?([\w-]+)', re.IGNORECASE)


def classify(msg: Headers, sender: Addr, subject: str) -> tuple[str, str]:
    """What kind of message this is, judged from headers, standards first."""
    content_type = _raw(msg, "content-type")
    ctype = content_type.split(";", 1)[0].strip().lower()
    found = _REPORT_TYPE.search(content_type)
    report = found.group(1).lower() if found else ""
    local = sender.email.partition("@")[0]
    if ctype == "multipart/report" and report == "disposition-notification":
        return READ_RECEIPT, "read receipt (RFC 8098 disposition notification)"
    if ctype == "multipart/report" and report == "delivery-status":
        if _DELAY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject):
            return DELAY, "delivery delay notice"
        return BOUNCE, "delivery status report (RFC 3464)"
    failed = _header(msg, "x-failed-recipients")
    daemon_names = ("mailer-daemon", "postmaster", "post_master", "mail-daemon", "mailerdaemon")
    daemon = local in daemon_names or sender.name.lower() in daemon_names
    if failed or (daemon and _BOUNCE_SUBJECT.search(subject)):
        return BOUNCE, "bounce from " + (sender.email or "the mail system")
    if daemon and _DELAY_SUBJECT.search(subject):
        return DELAY, "delivery delay notice"
    auto = _header(msg, "auto-submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return AUTO_REPLY, f"Auto-Submitted: {auto.split(';')[0].strip()}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name.lower() in msg.index:
            return AUTO_REPLY, f"{name} header"
    precedence = _header(msg, "precedence").lower()
    # "bulk" alone is not enough: list servers stamp it on human replies, and calling
    # a real reply a machine's would cause the one mistake users never forgive.
    if precedence in ("auto_reply", "junk"):
        return AUTO_REPLY, f"Precedence: {precedence}"
    lowered = subject.lower()
    topic = normalise_subject(lowered)
    if _AUTO_SUBJECT.search(lowered) or (topic != lowered and _AUTO_SUBJECT.search(topic)):
        return AUTO_REPLY, f'subject "{subject[:60]}"'
    if _CALENDAR_SUBJECT.search(subject):
        return CALENDAR, "calendar answer"
    if sender.email and is_noreply(sender.email):
        return AUTO_REPLY, f"sent by an automated address ({sender.email})"
    return HUMAN, ""


def _is_list(msg: Headers) -> bool:
    return "list-id" in msg.index or "list-post" in msg.index


def parse_report(raw: bytes) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Failed recipients, original Message-IDs and "only notices" from a whole report.

    Reads RFC 3464 delivery-status parts and the attached original (message/rfc822 or
    text/rfc822-headers); for non-standard bounces, falls back to the text.
    """
    msg = message_from_bytes(raw)  # compat32, the default: never raises on bad headers
    failed: list[str] = []
    delayed: list[str] = []
    delivered: list[str] = []
    originals: list[str] = []
    texts: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            blocks = part.get_payload()
            if isinstance(blocks, list):
                for block in blocks:
                    if not isinstance(block, Message):
                        continue
                    recipient = _text(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                    action = _text(block.get("Action", "")).lower()
                    address = recipient.rpartition(";")[2].strip().strip("<>").lower()
                    if "@" in address:
                        if action.startswith("failed"):
                            failed.append(address)
                        elif action.startswith("delayed"):
                            delayed.append(address)
                        elif action.startswith(("delivered", "relayed", "expanded")):
                            delivered.append(address)
                    for key in ("Original-Message-ID", "X-Original-Message-ID"):
                        originals.extend(message_ids(_text(block.get(key, ""))))
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                originals.extend(message_ids(_text(inner[0].get("Message-ID", ""))))
        elif ctype in ("text/rfc822-headers", "message/disposition-notification") or (
            ctype.startswith("text/") and not part.is_multipart()
        ):
            payload = part.get_payload(decode=True) or b""
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
            if ctype in ("text/rfc822-headers", "message/disposition-notification"):
                headers = BytesHeaderParser().parsebytes(text.encode("utf-8", "replace"))
                for key in ("Message-ID", "Original-Message-ID"):
                    originals.extend(message_ids(_text(headers.get(key, ""))))
            else:
                texts.append(text)
    for header in ("X-Failed-Recipients",):
        for value in msg.get_all(header, []):
            failed.extend(a.lower() for a in _ADDR_IN_TEXT.findall(_text(value)))
    if not failed and not delivered:
        failed, more_delays = _flufl_failures(msg)
        delayed += more_delays
    if not originals:
        for text in texts:
            for match in re.finditer(r"(?im)^\s*message-id:\s*(\S.*)$", text):
                originals.extend(message_ids(match.group(1)))
    # "delayed" or "delivered/relayed" only: a notice, not a failure.
    only_notices = bool(delayed or delivered) and not failed
    return tuple(dict.fromkeys(failed)), tuple(dict.fromkeys(originals)), only_notices


def _flufl_failures(msg: Message) -> tuple[list[str], list[str]]:
    """Failed and delayed recipients of a non-standard bounce (Exim, qmail, old Sendmail,
    Exchange NDRs, ...), by flufl.bounce's per-MTA detectors."""
    from flufl.bounce import all_failures

    # It logs a traceback when one of its detectors chokes on odd input; for us that is
    # only "recipient unknown", never worth a traceback in the journal.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector choking on odd input is just "unknown"
        return [], []

    def clean(found: Iterable[bytes | str]) -> list[str]:
        out = [(a.decode("utf-8", "replace") if isinstance(a, bytes) else a).strip("<> ").lower()
               for a in found]
        return [a for a in out if _ADDR_IN_TEXT.fullmatch(a)]

    return clean(permanent), clean(temporary)


# -- the record ----------------------------------------------------------------------------


def parse_record(
    header_bytes: bytes,
    *,
    folder: str,
    uid: int,
    internaldate: datetime | None = None,
    keywords: tuple[str, ...] = (),
    gm_thrid: int | None = None,
    size: int = 0,
    report_bytes: bytes | None = None,
) -> MessageRecord:
    """Build the record of one message; never raises on malformed input."""
    msg = Headers(header_bytes)
    warnings = []
    written_ids = message_ids(_text(_raw(msg, "message-id")), keep_case=True)
    message_id = _lower_domain(written_ids[0]) if written_ids else ""
    if not message_id:
        warnings.append("no Message-ID")
    senders = _addresses(msg, "from") or _addresses(msg, "sender")
    sender = senders[0] if senders else Addr("", "")
    subject = _header(msg, "subject")
    if len(subject) > 1000:
        warnings.append(f"subject of {len(subject)} characters cut to 1000")
        subject = subject[:1000]
    date = parse_date(_raw(msg, "date"))
    if date is None:
        if "date" in msg.index:
            warnings.append("unreadable Date header; using the server's arrival time")
        date = (internaldate or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)
    kind, why = classify(msg, sender, subject)
    failed: tuple[str, ...] = tuple(
        a.lower() for v in _raw_all(msg, "x-failed-recipients") for a in _ADDR_IN_TEXT.findall(v)
    )
    originals: tuple[str, ...] = ()
    if report_bytes is not None and kind in (BOUNCE, DELAY, READ_RECEIPT):
        rep_failed, originals, only_notices = parse_report(report_bytes)
        failed = tuple(dict.fromkeys(failed + rep_failed))
        if kind == BOUNCE and only_notices:
            kind, why = DELAY, "delivery notice (delayed or relayed, not failed)"
    written_refs = message_ids(_raw(msg, "references"), keep_case=True)
    return _new_record(
        folder=folder,
        uid=uid,
        message_id=message_id,
        in_reply_to=message_ids(_raw(msg, "in-reply-to")),
        references=tuple(dict.fromkeys(_lower_domain(i) for i in written_refs)),
        sender=sender,
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        bcc=_addresses(msg, "bcc"),
        date=date,
        subject=subject,
        kind=kind,
        kind_reason=why,
        list_traffic=_is_list(msg),
        failed_recipients=failed,
        original_ids=originals,
        keywords=tuple(keywords),
        gm_thrid=gm_thrid,
        thread_index=_conversation(_raw(msg, "thread-index")),
        nudge_for=normalise_message_id(_text(_raw(msg, "x-nudger-for"))),
        size=size,
        written_id=written_ids[0] if written_ids else "",
        written_references=written_refs,
        warnings=tuple(warnings),
    )
