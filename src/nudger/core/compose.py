"""The follow-up draft: decision + template + original message -> an EmailMessage.

Pure: everything it needs is a parameter, including ``now``. The draft replies to the
latest outbound so every client shows it in the thread, and its Message-ID is derived
from (account, outbound Message-ID, stage) so a second attempt finds the first.

Every header value is written by this module, already on the wire's terms (ASCII,
folded, RFC 2047 where needed), from text with its control characters removed: the
email library is never handed a value it would decode again, because a Subject such
as ``=?utf-8?q?=0D=0ABcc:...`` decodes into a line break and a header of the sender's.
``to_bytes`` reads the draft back and refuses one with any header it did not write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from email import policy
from email.charset import Charset
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from nudger.core.addresses import ascii_domain, writable_local_part
from nudger.core.greeting import first_name as given_name
from nudger.core.greeting import greeting
from nudger.core.headers import MAX_IDS, Headers, without_controls
from nudger.core.language import DEFAULT_LANGUAGE
from nudger.core.ledger import nudge_message_id
from nudger.core.record import Addr, MessageRecord
from nudger.core.stamp import stamp
from nudger.core.subjects import normalise_subject, strip_reply_prefixes
from nudger.core.templates import ATTRIBUTION, DAY_AND_MONTH, GREETINGS, MONTHS, WEEKDAYS

# CRLF for IMAP, and no folding by the library: compose folds every value itself.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
WIRE_UTF8 = WIRE_POLICY.clone(utf8=True)  # a draft to a non-ASCII local part (RFC 6532)
# Every header a draft may carry, each at most once: what to_bytes checks a draft against.
DRAFT_HEADERS = frozenset({
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Thread-Topic", "X-Nudger-For", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    "X-Nudger-Digest",  # (added last, over all the others: see stamp.py)
})  # fmt: skip
MAX_QUOTED_LINES = 400
MAX_ID_CHARS = 900  # a msg-id is never folded nor encoded: its line must stay under 998
MAX_NAME_CHARS = 200
_MSG_ID = re.compile(r"<[!-;=?-~]+>")  # printable ASCII, no space, no <>: as it was written
_ADDR_SPEC = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*"
                        r"|\[[!-Z^-~]+\])")
_BODY_JUNK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class ComposeError(ValueError):
    """No draft for this message, and why (a sentence): it cannot be written safely."""


def first_name(addr: Addr) -> str:
    """How to greet someone by first name: from their display name (a title is none),
    else a guess from the address, else "there"."""
    return given_name(addr) or "there"


@dataclass(frozen=True)
class DraftInput:
    """Everything one follow-up draft is written from (the plan's action plus the
    outbound's text and the account's identity and zone)."""

    account: str
    outbound: MessageRecord
    outbound_text: str
    stage: int
    template: str
    sender: Addr  # the identity that sent the outbound; display name filled in
    to: tuple[Addr, ...]
    cc: tuple[Addr, ...]
    tz: ZoneInfo
    now: datetime
    language: str = DEFAULT_LANGUAGE  # of the outbound: the greeting, quote line and dates
    subject: str = ""  # what the draft is about, when not the outbound's subject (a meeting's)
    quote: bool = True  # the outbound quoted below (not an invitation under a thank-you)


def placeholders(d: DraftInput) -> dict[str, str]:
    """The values a template's ``{first_name}``, ``{subject}``... stand for."""
    first = d.to[0] if d.to else (d.cc[0] if d.cc else Addr("", ""))
    sent = d.outbound.date.astimezone(d.tz)
    my_name = d.sender.name or first_name(d.sender)
    lang = d.language if d.language in GREETINGS else DEFAULT_LANGUAGE
    month = MONTHS[lang].split()[sent.month - 1]
    return {
        "greeting": greeting(first, lang),
        "first_name": first_name(first),
        "name": first.name or first_name(first),
        "email": first.email,
        "my_name": my_name,
        "my_first_name": my_name.split()[0] if my_name.split() else my_name,
        "my_email": d.sender.email,
        "subject": d.subject or normalise_subject(d.outbound.subject),
        "days": str(max(0, (d.now - d.outbound.date).days)),
        "date": DAY_AND_MONTH[lang].format(d=sent.day, month=month),
        "weekday": WEEKDAYS[lang].split()[sent.weekday()],
        "stage": str(d.stage),
    }


def reply_subject(subject: str) -> str:
    """One "Re: " however many the outbound's subject had, so clients thread it."""
    return "Re: " + (strip_reply_prefixes(subject) or "(no subject)")


def quote(d: DraftInput) -> str:
    """The outbound quoted below the follow-up ("On ..., X wrote:"), at most
    MAX_QUOTED_LINES of it."""
    sent = d.outbound.date.astimezone(d.tz)
    who = d.outbound.sender.name or d.sender.name or d.outbound.sender.email
    lines = d.outbound_text.rstrip().splitlines() or [""]
    if len(lines) > MAX_QUOTED_LINES:
        lines = lines[:MAX_QUOTED_LINES] + ["[...]"]
    quoted = "\n".join("> " + line if line.strip() else ">" for line in lines)
    line = ATTRIBUTION.get(d.language, ATTRIBUTION[DEFAULT_LANGUAGE]).format(
        wd=f"{sent:%a}", dd=f"{sent:%d}", mon=f"{sent:%b}", mm=f"{sent:%m}", yyyy=sent.year,
        hm=f"{sent:%H:%M}", who=who)
    return f"{line}\n{quoted}\n"


# -- header values, on the wire's terms ------------------------------------------------------


def _clean(text: str, limit: int = 1000) -> str:
    return without_controls(text).strip()[:limit].strip()


def _words(name: str, text: str) -> str:
    """Unstructured text (Subject, a display name) as folded ASCII: as is when it is
    plain, else RFC 2047 encoded words, so that "=?" in it is never read as one."""
    plain = text.isascii() and "=?" not in text and all(len(w) < 70 for w in text.split())
    return Header(text, "us-ascii" if plain else "utf-8", header_name=name, maxlinelen=78).encode()


def _addr_spec(email: str) -> str | None:
    """The address as a header writes it: its domain in ASCII, and the local part as
    it is (UTF-8 when it is not ASCII: EAI); None if it cannot be written safely."""
    local, _, domain = email.rpartition("@")
    plain = ascii_domain(domain)
    if "=?" in email or plain is None or len(email) > 254:
        return None
    if local.isascii():
        spec = f"{local}@{plain}"
        return spec if _ADDR_SPEC.fullmatch(spec) else None
    # (the recipient's domain as they wrote it, in Unicode: an EAI reader's own form)
    return email if writable_local_part(local) and _ADDR_SPEC.fullmatch(f"x@{plain}") else None


def _address(addr: Addr) -> str | None:
    """``Name <local@domain>`` from a parsed pair, or None for an address that cannot be
    written as it is (controls, spaces, "=?" in it, no valid addr-spec)."""
    email = _addr_spec(addr.email.strip())
    if email is None:
        return None
    name = _clean(addr.name, MAX_NAME_CHARS)
    if not name or (name.isascii() and "=?" not in name):
        if not email.isascii():  # (formataddr takes ASCII addresses only)
            return _utf8_address(name, email)
        return formataddr((name, email))  # (quotes the name when it needs quoting)
    # One encoded word, as formataddr writes it: readers differ on where a name split into
    # several words has spaces. Only a very long name is split, to keep its line short.
    word = Charset("utf-8").header_encode(name)
    return f"{word if len(word) <= 600 else _words('To', name)} <{email}>"


def _utf8_address(name: str, email: str) -> str | None:
    try:
        return str(Address(display_name=name, addr_spec=email))
    except (ValueError, IndexError, HeaderParseError):
        return None


def _addresses(addrs: tuple[Addr, ...], notes: list[str]) -> list[str]:
    written = []
    for addr in addrs:
        value = _address(addr)
        if value is None:
            notes.append(f"left out recipient {addr.email[:80]!r}: not an address a draft can carry")
        else:
            written.append(value)
    return written


def writable_id(msgid: str) -> bool:
    """A msg-id a header can carry as it is: printable ASCII, short enough, no "=?"."""
    return len(msgid) <= MAX_ID_CHARS and "=?" not in msgid and bool(_MSG_ID.fullmatch(msgid))


def _headers(d: DraftInput, notes: list[str]) -> list[tuple[str, str]]:
    out = d.outbound
    parent = out.written_id or out.message_id
    if not (writable_id(parent) and writable_id(out.message_id)):
        raise ComposeError("its Message-ID cannot be written in a reply's In-Reply-To "
                           f"(8-bit, over {MAX_ID_CHARS} characters or odd: {parent[:60]!r}...), "
                           "so a follow-up could not be threaded to it")
    sender = _address(d.sender)
    if sender is None:
        raise ComposeError(f"the sender address {d.sender.email[:80]!r} cannot be written in a draft")
    to, cc = _addresses(d.to, notes), _addresses(d.cc, notes)
    if not to:
        to, cc = cc[:1], cc[1:]
    if not to:
        raise ComposeError("no recipient address nudger can write in a draft")
    ancestors = [r for r in out.written_references if writable_id(r) and r != parent]
    if len(ancestors) >= MAX_IDS:  # (a record stored before message_ids kept only these)
        ancestors = ancestors[:1] + ancestors[2 - MAX_IDS:]
    references = ancestors + [parent]
    domain = d.sender.email.rpartition("@")[2]
    headers = [("From", sender), ("To", ",\n ".join(to))]  # one address per line
    if cc:
        headers.append(("Cc", ",\n ".join(cc)))
    return headers + [
        ("Subject", _words("Subject", _clean(reply_subject(d.subject or out.subject)))),
        ("Date", format_datetime(d.now.astimezone(d.tz))),
        ("Message-ID", nudge_message_id(d.account, out.message_id, d.stage, domain)),
        ("In-Reply-To", parent),
        ("References", "\n ".join(references)),  # one per line: never folded inside an id
        ("Thread-Topic", _words("Thread-Topic", _clean(normalise_subject(d.subject or out.subject))
                                or "(no subject)")),
        ("X-Nudger-For", f"{out.message_id}; stage={d.stage}"),
    ]


def compose_nudge(d: DraftInput, notes: list[str] | None = None) -> EmailMessage:
    """The draft; ``notes`` (when given) receives what was left out of it, and why.
    Raises ComposeError when no safe draft can be written for this message."""
    msg = EmailMessage(policy=policy.default)
    for name, value in _headers(d, notes if notes is not None else []):
        msg.set_raw(name, value)  # as written: already ASCII and folded, never re-parsed
    body = d.template.format_map(placeholders(d)).rstrip() + "\n" + ("\n" + quote(d) if d.quote else "")
    body = _BODY_JUNK.sub("", body)
    plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    msg.set_content(body, charset="utf-8", cte="7bit" if plain else "quoted-printable")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """The draft as APPENDed; ComposeError if reading it back finds a header not written
    here, a header twice, or a line over 998 (the check that makes injection impossible)."""
    utf8 = not all(value.isascii() for _, value in msg.raw_items())  # only EAI addresses
    data = msg.as_bytes(policy=WIRE_UTF8 if utf8 else WIRE_POLICY)
    head = data[: data.find(b"\r\n\r\n") + 2]
    written = sorted(name.lower() for name in msg.keys())
    allowed = {name.lower() for name in DRAFT_HEADERS}
    readings = (
        [name.lower() for name in BytesHeaderParser(policy=policy.default).parsebytes(head).keys()],
        [name.lower() for name in BytesHeaderParser().parsebytes(head).keys()],  # (compat32)
        [name for name, values in Headers(head).index.items() for _ in values],
    )
    for names in readings:
        if sorted(names) != written or len(set(names)) != len(names) or not set(names) <= allowed:
            raise ComposeError(f"the draft would carry headers nudger did not write: {sorted(names)}")
    if any(len(line) > 998 for line in head.split(b"\r\n")):
        raise ComposeError("the draft would carry a header line over 998 characters")
    return stamp(data)  # a found draft proves itself untouched


def draft_bytes(d: DraftInput, limit: int | None = None, notes: list[str] | None = None) -> bytes:
    """The draft's bytes, at most ``limit`` of them (a server's APPENDLIMIT): the quote is
    cut, then left out, before the draft is given up (ComposeError)."""
    data = to_bytes(compose_nudge(d, notes))
    if limit is None or len(data) <= limit:
        return data
    text = "\n".join(d.outbound_text.splitlines()[:MAX_QUOTED_LINES])  # what quote() shows
    while len(data) > limit:
        if not text:
            raise ComposeError(f"even without its quote the draft is {len(data)} bytes, over the "
                               f"server's APPENDLIMIT of {limit}")
        keep = int(len(text) * limit / len(data) * 0.9)  # (encodings grow text: a margin)
        text = text[: text.rfind("\n", 0, keep) + 1 or keep]
        data = to_bytes(compose_nudge(replace(d, outbound_text=text + "[...]\n" if text else "")))
    if notes is not None:
        notes.append(f"quote cut to {len(text)} characters: the server takes {limit} bytes at most")
    return data
