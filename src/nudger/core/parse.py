"""One message's header bytes -> its ``MessageRecord``: the entry point of the core.

Pure: bytes in, a frozen record out; never raises on malformed input (``headers``
reads every value with fallbacks), and what it had to guess is in ``warnings``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nudger.core.classify import classify, is_list
from nudger.core.headers import (
    Headers,
    conversation_of,
    failed_recipients,
    lower_domain,
    message_ids,
    normalise_message_id,
    parse_date,
)
from nudger.core.record import BOUNCE, DELAY, REPORT_KINDS, Addr, MessageRecord, new_record

MAX_SUBJECT = 1000  # characters of a subject kept


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
    """Build the record of one message; ``report_bytes``, the whole message, is read
    for what a bounce or receipt reports on (see ``bounce``)."""
    msg = Headers(header_bytes)
    warnings: list[str] = []
    written_ids = message_ids(msg.text("message-id"), keep_case=True)
    message_id = lower_domain(written_ids[0]) if written_ids else ""
    if not message_id:
        warnings.append("no Message-ID")
    senders = msg.addresses("from") or msg.addresses("sender")
    sender = senders[0] if senders else Addr("", "")
    subject = _subject(msg, warnings)
    date = _date(msg, internaldate, warnings)
    kind, why = classify(msg, sender, subject)
    failed = failed_recipients(msg)
    originals: tuple[str, ...] = ()
    if report_bytes is not None and kind in REPORT_KINDS:
        # (Here: the helper process parses headers alone, and starts sooner without the
        # email package this needs.)
        from nudger.core.bounce import parse_report

        failed, originals, only_notices = parse_report(report_bytes, failed)
        if kind == BOUNCE and only_notices:
            kind, why = DELAY, "delivery notice (delayed or relayed, not failed)"
    written_refs = message_ids(msg.first("references"), keep_case=True)
    return new_record(
        folder=folder,
        uid=uid,
        message_id=message_id,
        in_reply_to=message_ids(msg.first("in-reply-to")),
        references=tuple(dict.fromkeys(lower_domain(i) for i in written_refs)),
        sender=sender,
        to=msg.addresses("to"),
        cc=msg.addresses("cc"),
        bcc=msg.addresses("bcc"),
        date=date,
        subject=subject,
        kind=kind,
        kind_reason=why,
        list_traffic=is_list(msg),
        failed_recipients=failed,
        original_ids=originals,
        keywords=tuple(keywords),
        gm_thrid=gm_thrid,
        thread_index=conversation_of(msg.first("thread-index")),
        nudge_for=normalise_message_id(msg.text("x-nudger-for")),
        size=size,
        written_id=written_ids[0] if written_ids else "",
        written_references=written_refs,
        warnings=tuple(warnings),
    )


def _subject(msg: Headers, warnings: list[str]) -> str:
    subject = msg.text("subject")
    if len(subject) > MAX_SUBJECT:
        warnings.append(f"subject of {len(subject)} characters cut to {MAX_SUBJECT}")
        subject = subject[:MAX_SUBJECT]
    return subject


def _date(msg: Headers, internaldate: datetime | None, warnings: list[str]) -> datetime:
    """The Date header's time, else the server's arrival time (else 1970): never none."""
    date = parse_date(msg.first("date"))
    if date is None:
        if "date" in msg.index:
            warnings.append("unreadable Date header; using the server's arrival time")
        date = (internaldate or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)
    return date
