"""What a delivery report says: who failed, which message it reports on, or only a delay.

Pure: the bytes of a whole report in, addresses and Message-IDs out. Reads RFC 3464
delivery-status parts and the attached original (message/rfc822 or
text/rfc822-headers); non-standard bounces fall back to flufl.bounce's per-MTA
detectors and to the text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from nudger.core.bouncetext import failures_in_text
from nudger.core.headers import ADDRESS_IN_TEXT, header_text, message_ids


@dataclass
class _Findings:
    failed: list[str] = field(default_factory=list)
    delayed: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def parse_report(raw: bytes, failed: tuple[str, ...] = ()) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Failed recipients, original Message-IDs and "only notices" from a whole report.

    ``failed`` are those its headers already name (X-Failed-Recipients, read with the
    record): a report that names none of its own is then still a failure.
    """
    msg = message_from_bytes(raw)  # compat32, the default: never raises on bad headers
    found = _Findings(failed=list(failed))
    for part in msg.walk():
        _read_part(part, found)
    if not found.failed and not found.delivered:
        found.failed, more_delays = _flufl_failures(msg)
        found.delayed += more_delays
    if not found.failed and not found.delivered and not found.delayed:
        own = frozenset(a.lower() for _, a in getaddresses([str(v) for k in ("From", "To")
                                                            for v in msg.get_all(k, [])]))
        found.failed = failures_in_text(found.texts, own)
    if not found.originals:
        # Not where the standards put it: in a text part, appended to the status part,
        # in a message/partial, or past a broken boundary. Any Message-ID line below the
        # report's own headers is the original's.
        for text in [*found.texts, _below_headers(raw)]:
            for match in re.finditer(r"(?im)^\s*message-id:\s*(\S.*)$", text):
                found.originals.extend(message_ids(match.group(1)))
    # "delayed" or "delivered/relayed" only: a notice, not a failure.
    only_notices = bool(found.delayed or found.delivered) and not found.failed
    return tuple(dict.fromkeys(found.failed)), tuple(dict.fromkeys(found.originals)), only_notices


def _below_headers(raw: bytes) -> str:
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    return raw[min(ends):].decode("utf-8", "replace") if ends else ""


def _read_part(part: Message, found: _Findings) -> None:
    ctype = part.get_content_type()
    if ctype == "message/delivery-status":
        blocks = part.get_payload()
        if isinstance(blocks, list):
            for block in blocks:
                if isinstance(block, Message):
                    _read_status(block, found)
    elif ctype == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            found.originals.extend(message_ids(header_text(inner[0].get("Message-ID", ""))))
        # The original's headers on the line right after "Content-Type: message/rfc822",
        # no blank line between (CommuniGate Pro and others): they are the part's own.
        found.originals.extend(message_ids(header_text(part.get("Message-ID", ""))))
    elif ctype in ("text/rfc822-headers", "message/disposition-notification") or (
        ctype.startswith("text/") and not part.is_multipart()
    ):
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        if ctype in ("text/rfc822-headers", "message/disposition-notification"):
            headers = BytesHeaderParser().parsebytes(text.encode("utf-8", "replace"))
            for key in ("Message-ID", "Original-Message-ID"):
                found.originals.extend(message_ids(header_text(headers.get(key, ""))))
        else:
            found.texts.append(text)


def _read_status(block: Message, found: _Findings) -> None:
    """One per-recipient block of a delivery-status part (RFC 3464)."""
    recipient = header_text(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
    action = header_text(block.get("Action", "")).lower()
    address = recipient.rpartition(";")[2].strip().strip("<>").lower()
    if "@" in address:
        if action.startswith("failed"):
            found.failed.append(address)
        elif action.startswith("delayed"):
            found.delayed.append(address)
        elif action.startswith(("delivered", "relayed", "expanded")):
            found.delivered.append(address)
    for key in ("Original-Message-ID", "X-Original-Message-ID"):
        found.originals.extend(message_ids(header_text(block.get(key, ""))))


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
        return sorted(a for a in out if ADDRESS_IN_TEXT.fullmatch(a))  # (it answers sets)

    return clean(permanent), clean(temporary)
