"""Opt-in sending: an untouched follow-up of ours goes out by itself after send_after, at
most once, through a real SMTP server (aiosmtpd, STARTTLS, AUTH) and a real Dovecot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from support.harness import Box, by_subject, make_box
from support.mail import NOW, days_ago, message
from support.smtpd import SmtpServer

pytestmark = pytest.mark.imap

MONDAY = NOW + timedelta(days=3, hours=1)  # NOW is a Friday 09:00 UTC; Monday 11:00 in Berlin
RULES = '''[[rules]]
name = "recruiters"
after = "3 business days"
send_after = "1 day"
'''


@pytest.fixture
def smtp(tmp_path: Path, dovecot, imap_user) -> Iterator[SmtpServer]:  # type: ignore[no-untyped-def]
    server = SmtpServer(tmp_path / "smtp", {imap_user: dovecot.users[imap_user]})
    yield server
    server.stop()


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch, smtp) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES,
                    extra_account=smtp.config())


def _drafted(box: Box, subject: str = "Offer", mid: str = "offer@example.com") -> str:
    """Your message of 6 days ago, and nudger's follow-up for it in Drafts; its Message-ID."""
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to="Bob <bob@client.example>",
                             subject=subject, date=days_ago(6)))
    assert by_subject(box.run())[subject]["status"] == "due"
    (draft,) = [d for d in box.drafts() if d["Subject"] == f"Re: {subject}"]
    return str(draft["Message-ID"])


def test_an_untouched_follow_up_is_sent_once_on_the_next_working_day(box: Box, smtp: SmtpServer) -> None:
    nudge_id = _drafted(box)
    saturday = by_subject(box.run(now=NOW + timedelta(days=1)))["Offer"]
    assert saturday["status"] == "drafted" and saturday["action"] is None
    assert "nudger sends it Mon 2026-11-30 10:00 unless you edit or delete it" in saturday["reason"]
    assert smtp.received == []
    decision = by_subject(box.run(now=MONDAY))["Offer"]
    assert decision["action"] == "sent", box.last_err
    (got,) = smtp.received
    msg = got.message
    assert got.mail_from == box.user and got.rcpt_tos == ["bob@client.example"]
    assert got.login == box.user
    assert msg["Message-ID"] == nudge_id and msg["In-Reply-To"] == "<offer@example.com>"
    assert msg["Subject"] == "Re: Offer" and "X-Nudger-Digest" not in msg and "X-Nudger-For" not in msg
    assert msg["Date"] == "Mon, 30 Nov 2026 11:00:00 +0100"
    assert "bringing this back to the top of your inbox" in msg.get_body(("plain",)).get_content()
    assert box.drafts() == []
    sent = [m for m, _ in box.raw("Sent").values() if nudge_id.encode() in m]
    assert len(sent) == 1 and sent[0].replace(b"\r\n", b"\n") == got.data.replace(b"\r\n", b"\n")
    # Later cycles send nothing again, and the thread counts the follow-up as sent.
    later = by_subject(box.run(now=MONDAY + timedelta(days=1)))["Offer"]
    assert later["follow_ups_sent"] == 1 and len(smtp.received) == 1
