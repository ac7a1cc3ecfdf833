"""The morning digest: one mail a day to yourself, through a real SMTP server (aiosmtpd)
and a real Dovecot, never twice for one day, even across restarts and crashes."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta

import pytest
from test_sending import _Crashing, _cycle_until_killed

from support.harness import Box
from support.mail import NOW, days_ago, message
from support.smtpd import SmtpServer

pytestmark = pytest.mark.imap

SATURDAY = NOW + timedelta(days=1, hours=1)  # 11:00 in Berlin, after the digest's 10:30
MONDAY = NOW + timedelta(days=3, hours=1)
RULES = '''[[rules]]
name = "recruiters"
match = { to = ["*@talent.example"] }
after = "3 business days"
send_after = "1 day"

[[rules]]
name = "default"
after = "3 business days"

[digest]
at = "10:30"
'''


@pytest.fixture
def box(sending_box: Box) -> Box:  # (conftest: this module's RULES, sending through ``smtp``)
    return sending_box


def _three_drafts(box: Box) -> None:
    for mid, subject, to in (("a@example.com", "Proposal", "Ann <ann@client.example>"),
                             ("b@example.com", "Senior role", "Jo <jo@talent.example>"),
                             ("c@example.com", "Invoice 7", "Cy <cy@client.example>")):
        box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to=to, subject=subject,
                                 date=days_ago(6)))
    box.run()
    assert len(box.drafts()) == 3


def _digests(smtp: SmtpServer):  # type: ignore[no-untyped-def]
    return [r for r in smtp.received if str(r.message["Subject"]).startswith("nudger:")]


def test_one_digest_a_day_lists_drafts_sends_answers_and_the_reply_rate(box: Box, smtp: SmtpServer) -> None:
    _three_drafts(box)
    box.run(now=SATURDAY - timedelta(hours=1))  # 10:00 in Berlin: not yet
    assert _digests(smtp) == []
    box.run(now=SATURDAY)
    assert "sent the digest" in box.last_err
    (first,) = _digests(smtp)
    assert first.rcpt_tos == [box.user] and first.mail_from == box.user
    msg = first.message
    assert msg["Subject"] == "nudger: 3 follow-ups waiting in Drafts, Sat 28 Nov"
    assert msg["To"] == f"Mia Example <{box.user}>" and msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ('Waiting in Drafts for you (oldest first):\n  - "Proposal" to ann@client.example, 1 day\n'
            '  - "Senior role" to jo@talent.example, 1 day\n  - "Invoice 7" to cy@client.example, 1 day\n') in text
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "<li>&quot;Proposal&quot; to ann@client.example, 1 day</li>" in html
    for later in (SATURDAY + timedelta(hours=2), SATURDAY + timedelta(hours=5)):  # restarts, same day
        box.run(now=later)
    assert len(_digests(smtp)) == 1
    # Cy answers on Saturday; on Monday the recruiter's follow-up goes out by itself.
    box.seed("INBOX", message("re-c@client.example", sender="Cy <cy@client.example>", to=box.user,
                              subject="Re: Invoice 7", date=SATURDAY + timedelta(hours=3),
                              reply_to="c@example.com"))
    box.run(now=SATURDAY + timedelta(hours=4))
    box.run(now=MONDAY)
    digests = _digests(smtp)
    assert len(digests) == 2
    second = digests[1].message
    assert second["Subject"] == "nudger: 1 follow-up waiting in Drafts, Mon 30 Nov"
    text = second.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert 'Waiting in Drafts for you (oldest first):\n  - "Proposal" to ann@client.example, 3 days\n' in text
    assert 'Sent for you since the last digest:\n  - "Senior role" to jo@talent.example, Mon 30 Nov 11:00\n' in text
    assert 'Answered since the last digest:\n  - "Invoice 7": cy@client.example replied Sat 28 Nov 14:00\n' in text
    assert "Reply rate: 0 of 1 thread answered after a follow-up (0%)." in text
    box.run(now=MONDAY + timedelta(hours=3))
    assert len(_digests(smtp)) == 2


def test_a_dry_run_says_the_digest_is_due_and_sends_nothing(box: Box, smtp: SmtpServer) -> None:
    _three_drafts(box)
    box.run("--dry-run", now=SATURDAY)
    assert "would send the digest" in box.last_err and smtp.received == []


def test_a_run_stopped_while_sending_the_digest_never_sends_that_day_twice(box: Box, smtp: SmtpServer) -> None:
    _three_drafts(box)
    _cycle_until_killed(box, sender_crash=lambda s: _Crashing(s, "send", "after"), now=SATURDAY)
    assert len(_digests(smtp)) == 1
    box.run(now=SATURDAY + timedelta(hours=1))
    assert "stopped while sending the digest of 2026-11-28" in box.last_err
    box.run(now=SATURDAY + timedelta(hours=2))
    assert len(_digests(smtp)) == 1
    box.run(now=SATURDAY + timedelta(days=1))  # the next day has its own
    assert len(_digests(smtp)) == 2


def test_a_digest_refused_for_good_waits_for_the_next_day(box: Box, smtp: SmtpServer) -> None:
    _three_drafts(box)
    smtp.handler.refuse = "554 5.7.1 Message rejected as spam"
    box.run(now=SATURDAY)
    assert ("the server refused the message (554 5.7.1 Message rejected as spam); the digest of "
            "2026-11-28 was not sent; nudger tries again tomorrow") in box.last_err
    smtp.handler.refuse = None
    for later in (SATURDAY + timedelta(hours=1), SATURDAY + timedelta(hours=2)):
        box.run(now=later)
        assert "digest" not in box.last_err  # told once; not asked again today
    code, out, _ = box.cli("status", "--now", (SATURDAY + timedelta(hours=2)).isoformat())
    assert code == 0 and "not sent" not in out  # no draft of yours is held back
    assert _digests(smtp) == []
    box.run(now=SATURDAY + timedelta(days=1))
    assert len(_digests(smtp)) == 1
    box.run(now=SATURDAY + timedelta(days=3))  # the journal does not keep past days forever
    with contextlib.closing(sqlite3.connect(box.config.parent / "state" / "state.sqlite3")) as conn:
        days = {d for (d,) in conn.execute("SELECT subject FROM outbox WHERE kind='digest'")}
    assert "2026-11-28" not in days


def test_a_digest_refused_for_now_is_tried_again_next_cycle(box: Box, smtp: SmtpServer) -> None:
    _three_drafts(box)
    smtp.handler.refuse = "451 4.3.0 Try again later"
    box.run(now=SATURDAY)
    assert "the digest was not sent (tried again next cycle)" in box.last_err
    smtp.handler.refuse = None
    box.run(now=SATURDAY + timedelta(minutes=5))
    assert len(_digests(smtp)) == 1
