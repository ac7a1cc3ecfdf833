"""The readable text of a message body: for quoting it in a draft, and for reading an
out-of-office's return date.

The email package picks the body as a mail client shows it (get_body: the preferred
alternative; attachments and list footers left out). Its full header model loads and
runs slowly, so a one-part text/plain message (most auto-replies) is read through the
default compat32 model instead, and HTML is only parsed when there is no text.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import EmailMessage


def _html_text(markup: str) -> str:
    from html.parser import HTMLParser  # here: only mail without a text part needs it

    class TextOfHtml(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag in ("style", "script", "head"):
                self.skip += 1
            elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3"):
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("style", "script", "head") and self.skip:
                self.skip -= 1

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = TextOfHtml()
    parser.feed(markup)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


def _decoded(part: EmailMessage) -> str:
    try:
        text = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return text if isinstance(text, str) else ""


def text_of(raw: bytes) -> str:
    """The body as text: text/plain, else the HTML de-tagged; "" for a broken message."""
    try:
        simple = message_from_bytes(raw)  # compat32
        if not simple.is_multipart() and simple.get_content_type() == "text/plain":
            # Most auto-replies: one text part. compat32 reads it at a fraction of the cost
            # of the full header model, which a first sync would pay per out-of-office.
            payload = simple.get_payload(decode=True)
            charset = simple.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset, "replace") if isinstance(payload, bytes) else ""
            except LookupError:
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            return text.replace("\r\n", "\n")
        from email import policy

        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        plain = msg.get_body(preferencelist=("plain",))
        text = _decoded(plain) if isinstance(plain, EmailMessage) else ""
        if text.strip():
            return text.replace("\r\n", "\n")
        html = msg.get_body(preferencelist=("html",))
        markup = _decoded(html) if isinstance(html, EmailMessage) else ""
    except Exception:  # noqa: BLE001 - a broken original must not stop the draft
        return ""
    return _html_text(markup)
