"""Building test messages and configurations a user would recognise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ME = "me@example.com"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


def message(
    mid: str,
    sender: str = ME,
    to: str = "bob@client.example",
    subject: str = "Proposal",
    date: datetime | None = None,
    *,
    reply_to: str | None = None,
    references: list[str] | None = None,
    cc: str | None = None,
    body: str = "Hello,\n\nplease see the proposal below.\n",
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>" if mid and not mid.startswith("<") else mid
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or NOW)
    if reply_to:
        msg["In-Reply-To"] = f"<{reply_to}>"
        msg["References"] = " ".join(f"<{r}>" for r in (references or [reply_to]))
    elif references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if not mid:
        del msg["Message-ID"]
    return bytes(msg)


def config_text(
    port: int,
    user: str,
    state_dir: Path,
    *,
    identities: list[str] | None = None,
    rules: str = "",
    extra_account: str = "",
    password: str = "secret",
) -> str:
    idents = identities or [user]
    return f"""
[daemon]
state_dir = "{state_dir}"

[accounts.test]
host = "127.0.0.1"
port = {port}
tls = "none"
username = "{user}"
password_env = "NUDGER_TEST_PASSWORD"
identities = {idents!r}
name = "Mia Example"
timezone = "Europe/Berlin"
lookback = "30d"
{extra_account}

{rules or '''[[rules]]
name = "default"
after = "3 business days"
template = "gentle"'''}
""".replace("'", '"')


__all__ = ["Address", "ME", "NOW", "days_ago", "message", "config_text"]
