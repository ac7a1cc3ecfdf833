"""The follow-up draft: decision + template + original message -> an EmailMessage.

Pure: everything it needs is a parameter, including ``now``. The draft replies to the
latest outbound so every client shows it in the thread, and its Message-ID is derived
from (account, outbound Message-ID, stage) so a second attempt finds the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from nudger.mailfacts import (
    Addr,
    MessageRecord,
    normalise_subject,
    nudge_message_id,
    strip_reply_prefixes,
)
from nudger.stamp import stamp

# CRLF for IMAP, and no folding: the default policy RFC 2047-encodes long msg-ids in
# References, which breaks threading in Outlook/Exchange.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
GENERIC_LOCAL_PARTS = frozenset(
    "info sales contact support team hello office admin billing accounts help service "
    "mail enquiries inquiries jobs hr press marketing".split()
)
MAX_QUOTED_LINES = 400


def first_name(addr: Addr) -> str:
    """How to greet someone: the first word of their name, else a guess from the address."""
    name = addr.name.strip().strip("'\"")
    if "," in name:  # "Doe, Jane"
        name = name.split(",", 1)[1].strip()
    if name and "@" not in name:
        return name.split()[0]
    local = re.split(r"[._+-]", addr.email.partition("@")[0])[0]
    if local.isalpha() and len(local) > 1 and local.lower() not in GENERIC_LOCAL_PARTS:
        return local.capitalize()
    return "there"


@dataclass(frozen=True)
class DraftInput:
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


def placeholders(d: DraftInput) -> dict[str, str]:
    first = d.to[0] if d.to else (d.cc[0] if d.cc else Addr("", ""))
    sent = d.outbound.date.astimezone(d.tz)
    my_name = d.sender.name or first_name(d.sender)
    return {
        "first_name": first_name(first),
        "name": first.name or first_name(first),
        "email": first.email,
        "my_name": my_name,
        "my_first_name": my_name.split()[0] if my_name.split() else my_name,
        "my_email": d.sender.email,
        "subject": normalise_subject(d.outbound.subject),
        "days": str(max(0, (d.now - d.outbound.date).days)),
        "date": f"{sent.day} {sent:%B}",
        "weekday": f"{sent:%A}",
        "stage": str(d.stage),
    }


def reply_subject(subject: str) -> str:
    return "Re: " + (strip_reply_prefixes(subject) or "(no subject)")


def quote(d: DraftInput) -> str:
    sent = d.outbound.date.astimezone(d.tz)
    who = d.outbound.sender.name or d.sender.name or d.outbound.sender.email
    lines = d.outbound_text.rstrip().splitlines() or [""]
    if len(lines) > MAX_QUOTED_LINES:
        lines = lines[:MAX_QUOTED_LINES] + ["[...]"]
    quoted = "\n".join("> " + line if line.strip() else ">" for line in lines)
    return f"On {sent:%a, %d %b %Y at %H:%M}, {who} wrote:\n{quoted}\n"


def compose_nudge(d: DraftInput) -> EmailMessage:
    out = d.outbound
    domain = d.sender.email.rpartition("@")[2]
    msg = EmailMessage(policy=policy.default)
    msg["From"] = formataddr((d.sender.name, d.sender.email))
    msg["To"] = ", ".join(formataddr((a.name, a.email)) for a in d.to)
    if d.cc:
        msg["Cc"] = ", ".join(formataddr((a.name, a.email)) for a in d.cc)
    msg["Subject"] = reply_subject(out.subject)
    msg["Date"] = format_datetime(d.now.astimezone(d.tz))
    msg["Message-ID"] = nudge_message_id(d.account, out.message_id, d.stage, domain)
    parent = out.written_id or out.message_id
    msg["In-Reply-To"] = parent
    msg["References"] = " ".join([r for r in out.written_references if r != parent] + [parent])
    msg["Thread-Topic"] = normalise_subject(out.subject) or "(no subject)"
    msg["X-Nudger-For"] = f"{out.message_id}; stage={d.stage}"
    body = d.template.format_map(placeholders(d)).rstrip() + "\n\n" + quote(d)
    msg.set_content(body, charset="utf-8", cte="quoted-printable" if not body.isascii() else "7bit")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    return stamp(msg.as_bytes(policy=WIRE_POLICY))  # a found draft proves itself untouched
