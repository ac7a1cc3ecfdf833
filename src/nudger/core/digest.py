"""The morning digest: one short mail to yourself about your follow-ups.

Pure: plain facts in (what waits in Drafts, what nudger sent for you, what was answered,
what it could not send), one ``EmailMessage`` out, plain text with a small HTML part.
Its Message-ID is derived from the account and the day, so that a run that stopped while
sending it finds it in the inbox and never sends that day's digest twice.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from nudger.core.addresses import ascii_domain
from nudger.core.record import Addr
from nudger.core.words import counted


@dataclass(frozen=True)
class Item:
    subject: str
    who: str  # the recipient (or, for an answer, who answered)
    when: datetime  # drafted, sent or answered at


@dataclass(frozen=True)
class DigestInput:
    account: str
    me: Addr
    day: date
    now: datetime
    tz: ZoneInfo
    waiting: tuple[Item, ...] = ()  # in Drafts, oldest first
    sent: tuple[Item, ...] = ()  # sent for you since the last digest
    answered: tuple[Item, ...] = ()  # threads answered since the last digest
    not_sent: tuple[Item, ...] = ()  # nudger could not send, or cannot tell: yours to look at
    nudged: int = 0  # threads with a follow-up sent, in the look-back window
    replied: int = 0  # of those, answered after it


def digest_id(account: str, day: date, domain: str) -> str:
    digest = hashlib.sha256(f"digest\0{account}\0{day.isoformat()}".encode()).hexdigest()[:24]
    return f"<nudger-digest.{digest}.{day:%Y%m%d}@{ascii_domain(domain) or 'nudger.invalid'}>"


def is_empty(d: DigestInput) -> bool:
    """Nothing to tell: no mail that day (a digest that says nothing teaches to ignore it)."""
    return not (d.waiting or d.sent or d.answered or d.not_sent)


def _age(d: DigestInput, when: datetime) -> str:
    days = (d.now.astimezone(d.tz).date() - when.astimezone(d.tz).date()).days
    return "today" if days <= 0 else "1 day" if days == 1 else f"{days} days"


def _sections(d: DigestInput) -> list[tuple[str, list[str]]]:
    at = "%a %d %b %H:%M"
    return [(title, lines) for title, lines in (
        ("Waiting in Drafts for you (oldest first)",
         [f'"{i.subject}" to {i.who}, {_age(d, i.when)}' for i in d.waiting]),
        ("Sent for you since the last digest",
         [f'"{i.subject}" to {i.who}, {i.when.astimezone(d.tz):{at}}' for i in d.sent]),
        ("Answered since the last digest",
         [f'"{i.subject}": {i.who} replied {i.when.astimezone(d.tz):{at}}' for i in d.answered]),
        ("Not sent: please look at these in Drafts and Sent",
         [f'"{i.subject}" to {i.who}' for i in d.not_sent]),
    ) if lines]  # fmt: skip


def _rate(d: DigestInput) -> str:
    if not d.nudged:
        return "No follow-up has been sent in the look-back window yet."
    share = round(100 * d.replied / d.nudged)
    return (f"Reply rate: {d.replied} of {counted(d.nudged, 'thread')} answered after a follow-up "
            f"({share}%).")


def _subject(d: DigestInput) -> str:
    n = len(d.waiting)
    waiting = f"{counted(n, 'follow-up')} waiting in Drafts" if n else "your follow-ups"
    return f"nudger: {waiting}, {d.day:%a %d %b}"


def _hello(d: DigestInput) -> str:
    """The greeting of the hour it is read at: ``[digest] at`` need not be the morning."""
    hour = d.now.astimezone(d.tz).hour
    return "Good morning" if 4 <= hour < 12 else "Good afternoon" if 12 <= hour < 18 else "Good evening"


def compose_digest(d: DigestInput, message_id: str) -> EmailMessage:
    """The day's digest to ``d.me``, from ``d.me``."""
    sections = _sections(d)
    text = [f"{_hello(d)},", ""]
    for title, lines in sections:
        text += [f"{title}:", *(f"  - {line}" for line in lines), ""]
    text += [_rate(d), "", "-- ", f"nudger, for your account {d.account}. Nothing in this mail "
             "was tracked; it was made on your machine."]
    parts = [f"<h3>{html.escape(title)}</h3>\n<ul>\n" +
             "".join(f"<li>{html.escape(line)}</li>\n" for line in lines) + "</ul>"
             for title, lines in sections]
    body = (f"<html><body>\n<p>{_hello(d)},</p>\n" + "\n".join(parts) +
            f"\n<p>{html.escape(_rate(d))}</p>\n<p style=\"color:#666\">nudger, for your account "
            f"{html.escape(d.account)}. Nothing in this mail was tracked.</p>\n</body></html>\n")
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(d.me.name, addr_spec=d.me.email)
    msg["To"] = Address(d.me.name, addr_spec=d.me.email)
    msg["Subject"] = _subject(d)
    msg["Date"] = format_datetime(d.now.astimezone(d.tz))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-reply should answer it
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(body, subtype="html")
    return msg
