"""A draft's text as its reader sees it: what "edited by you" is measured against.

Pure. A mail client that opens a draft and saves it again unchanged writes new bytes
(mutt and neomutt, recalling a postponed message, delete it and append it anew: a new
UID, no Date or a new one, their own header order and encodings, X-Mutt-* headers).
What the user wrote is the same: the subject, who it goes to and the body text. So a
draft is the user's only when that changes.
"""

from __future__ import annotations

import hashlib
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses

from nudger.core.bodytext import text_of


def _lines(text: str) -> str:
    """Text without the differences no reader sees: line endings, trailing spaces (a
    format=flowed writer adds them), blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip("\n")


def draft_text(raw: bytes) -> str:
    """Subject, recipients and body text, one canonical string; "" for a broken message."""
    try:
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        subject = " ".join(str(msg.get("Subject", "")).split())
        people = [
            f"{name}: " + ", ".join(sorted(a.lower() for _, a in getaddresses(
                [str(v) for v in msg.get_all(name, [])]) if a))
            for name in ("To", "Cc", "Bcc")]
    except Exception:  # noqa: BLE001 - a draft we cannot read is compared as bytes only
        return ""
    return "\n".join([f"Subject: {subject}", *people, "", _lines(text_of(raw))])


def text_digest(raw: bytes) -> str:
    """sha256 of ``draft_text``; "" when the draft cannot be read."""
    text = draft_text(raw)
    return hashlib.sha256(text.encode()).hexdigest() if text else ""
