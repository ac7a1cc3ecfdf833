"""Bounces in the shapes real MTAs send (issue 15): who failed, which message, which thread.

The synthetic reports here are minimal and written for these tests, each in the shape of
the MTA it names (seen in the public sample sets bench/bounces.py reads); the real ones
are read from the shared corpus.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nudger.core.parse import parse_record
from nudger.core.record import BOUNCE
from nudger.core.threads import build_threads
from support.harness import Box, by_subject, make_box
from support.mail import days_ago, message


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def _report(headers: str, parts: str, boundary: str = "B") -> bytes:
    """A multipart/report with these extra headers and these parts (CRLF line ends)."""
    text = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.client.example>\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        f"{headers}"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n\n'
        f"{parts}--{boundary}--\n"
    )
    return text.replace("\n", "\r\n").encode()


_STATUS = ("--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.client.example\n\n"
           "Final-Recipient: rfc822; gone@client.example\nAction: failed\nStatus: 5.1.1\n\n")


def _sent_to_two(box: Box, mid: str, subject: str) -> None:
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", subject=subject,
                             to="ann@client.example, gone@client.example", date=days_ago(6)))


def _draft_to(box: Box) -> list[str]:
    [draft] = box.drafts()
    return [a.addr_spec for a in draft["To"].addresses]


# -- item 1: the body is read whenever the failed recipients are not known -------------------


def test_a_bounce_naming_its_original_in_headers_still_has_its_body_read() -> None:
    head = (b"From: MAILER-DAEMON@mx.client.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"In-Reply-To: <p1@example.com>\r\nContent-Type: multipart/report; report-type=delivery-status;"
            b' boundary="B"\r\n\r\n')
    record = parse_record(head, folder="INBOX", uid=1)
    # (as if its original were known from its headers, and its failed recipients not)
    assert replace(record, original_ids=("<p1@example.com>",)).needs_report_body


def test_a_bounce_answering_ours_by_its_headers_leaves_out_only_the_failed_address(box: Box) -> None:
    # Exim and Postfix set In-Reply-To on some reports: the original is known from the
    # headers, who failed only from the body.
    _sent_to_two(box, "p1@example.com", "Rota")
    box.seed("INBOX", _report(f"To: {box.user}\nSubject: Mail delivery failed\nMessage-ID: <r1@mx.client.example>\n"
                              "In-Reply-To: <p1@example.com>\nReferences: <p1@example.com>\n",
                              "--B\nContent-Type: text/plain\n\nSorry.\n\n" + _STATUS))
    box.run()
    assert _draft_to(box) == ["ann@client.example"]


# -- item 2: a bounce that reuses the original's Message-ID is a message of its own ----------


def test_bounce_reusing_the_originals_message_id_still_leaves_the_failed_address_out(box: Box) -> None:
    # Some MTAs (seen with qmail-based and appliance relays) stamp the report with the
    # Message-ID of the message it returns.
    _sent_to_two(box, "p2@example.com", "Board minutes")
    box.seed("INBOX", _report(f"To: {box.user}\nSubject: failure notice\nMessage-ID: <p2@example.com>\n",
                              "--B\nContent-Type: text/plain\n\nSorry.\n\n" + _STATUS))
    d = by_subject(box.run())["Board minutes"]
    assert d["action"] == "appended" and "left out bounced address gone@client.example" in d["reason"]
    assert _draft_to(box) == ["ann@client.example"]


def test_a_message_whose_id_collides_with_ours_is_not_taken_for_ours(box: Box) -> None:
    box.seed("Sent", message("p3@example.com", sender=f"Mia Example <{box.user}>", subject="Offer",
                             date=days_ago(6)))
    box.seed("INBOX", message("p3@example.com", sender="bob@client.example", to=box.user,
                              subject="Re: Offer", date=days_ago(5), reply_to="p3@example.com"))
    d = by_subject(box.run())["Offer"]
    assert d["status"] == "replied" and "bob@client.example" in d["reason"]
    assert box.drafts() == []


# -- item 3: the original's headers right after Content-Type: message/rfc822 -----------------


def test_original_headers_on_the_line_after_the_parts_content_type() -> None:
    # In the shape of CommuniGate Pro's reports: no blank line between the part's
    # Content-Type and the returned message's own headers.
    raw = _report("To: mia@example.com\nSubject: Undeliverable mail\nMessage-ID: <r3@mx.client.example>\n",
                  "--B\nContent-Type: text/plain\n\nFailed to deliver to '<gone@client.example>'\n"
                  "LOCAL module(account gone) reports:\n account is not found\n\n"
                  "--B\nContent-Type: message/rfc822\nReceived: from [192.0.2.1] by mx.example.com\n"
                  "Message-ID: <p3@example.com>\nFrom: mia@example.com\nSubject: Hello\n\nHello\n\n")
    head = raw.split(b"\r\n\r\n", 1)[0]
    record = parse_record(head, folder="INBOX", uid=1, report_bytes=raw)
    assert record.kind == BOUNCE and record.original_ids == ("<p3@example.com>",)


# -- item 4: a bounce through a list server does not make ours a list thread ----------------


def test_bounce_through_a_list_server_does_not_make_a_list_thread(box: Box) -> None:
    _sent_to_two(box, "p4@example.com", "Venue")
    box.seed("INBOX", _report(f"To: {box.user}\nSubject: Undelivered Mail Returned to Sender\n"
                              "Message-ID: <r4@mx.client.example>\nList-Id: <staff.client.example>\n"
                              "List-Post: <mailto:staff@client.example>\n",
                              _STATUS + "--B\nContent-Type: text/rfc822-headers\n\n"
                              "Message-ID: <p4@example.com>\nSubject: Venue\n\n"))
    d = by_subject(box.run())["Venue"]
    assert d["action"] == "appended", d
    assert _draft_to(box) == ["ann@client.example"]


# -- item 14: the thread's id is the user's message, even at the bounce's timestamp ---------


def test_thread_id_is_the_users_message_when_a_bounce_has_the_same_time() -> None:
    when = days_ago(3)
    ours = message("zz-p5@example.com", sender="mia@example.com", date=when)
    bounce = message("aa-r5@mx.client.example", sender="MAILER-DAEMON@mx.client.example",
                     subject="Undelivered Mail Returned to Sender", date=when,
                     reply_to="zz-p5@example.com", headers={"X-Failed-Recipients": "bob@client.example"})
    records = [parse_record(raw.split(b"\n\n", 1)[0], folder=folder, uid=1)
               for raw, folder in ((bounce, "INBOX"), (ours, "Sent"))]
    [thread] = build_threads(records, sent="Sent")
    assert thread.key == "<zz-p5@example.com>"
    assert thread.messages[0].folder == "Sent"


# -- the failed recipient named only in the report's words: real reports --------------------


@pytest.mark.parametrize("name,failed", [
    ("office365_ndr.eml", "kijitora@example.com"),
    ("opensmtpd_plaintext.eml", "apdugoaidugoaidugoaeiudggadi@gmail.com"),
    ("yahoo_failure_notice.eml", "kijitora@example.org"),
    ("postfix_plaintext_nonstandard.eml", "soto-neko-nyaan@ntt.example.com"),
    ("lotus_notes_plaintext.eml", "kijitora@u1.example.co.jp"),
    ("dragonfly_dma_plaintext.eml", "pseudo-local-part@google.example.com"),
])
def test_plain_text_bounces_name_the_failed_recipient(corpus: Path, name: str, failed: str) -> None:
    raw = (corpus / "bounces" / name).read_bytes()
    record = parse_record(raw.split(b"\n\n", 1)[0], folder="INBOX", uid=1, report_bytes=raw)
    assert record.failed_recipients == (failed,)


def test_a_transcripts_sender_is_not_a_failed_recipient() -> None:
    # In the shape of au/EZweb's reports: the rejected recipient, then the SMTP
    # transcript naming the sender.
    raw = (b"From: MAILER-DAEMON@ezweb.example\r\nTo: mia@example.com\r\nSubject: Mail System Error"
           b" - Returned Mail\r\n\r\nEach of the following recipients was rejected by a remote\r\n"
           b"mail server.\r\n\r\n    Recipient: <gone@client.example>\r\n"
           b"    >>> MAIL FROM:<mia@example.com>\r\n    <<< 550 5.1.1 unknown\r\n")
    record = parse_record(raw.split(b"\r\n\r\n", 1)[0], folder="INBOX", uid=1, report_bytes=raw)
    assert record.failed_recipients == ("gone@client.example",)


def test_a_report_without_report_type_from_the_mail_delivery_system_is_a_bounce() -> None:
    # In the shape of a report seen from an unnamed MTA in sisimai's set (lhost-x3): a
    # multipart/report with no report-type, from "Mail Delivery System" at an address
    # that is not MAILER-DAEMON.
    head = (b"From: Mail Delivery System <Mail.Delivery.System@mx.client.example>\r\n"
            b"Subject: Delivery status notification\r\nContent-Type: multipart/report;\r\n"
            b'\tboundary="B"\r\n\r\n')
    assert parse_record(head, folder="INBOX", uid=1).kind == BOUNCE


def test_a_bounce_names_its_failed_recipients_in_the_same_order_in_every_process() -> None:
    """flufl.bounce answers sets: their order changed with the hash seed, and so did the
    stored record of one bounce from one run to the next."""
    import os
    import subprocess
    import sys

    qmail = (b"From: MAILER-DAEMON@mail.example\r\nTo: me@example.com\r\nSubject: failure notice\r\n"
             b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n\r\n"
             b"Hi. This is the qmail-send program at mail.example.\r\n"
             b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
             b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
             + b"".join(b"<%s@x.example>:\r\nSorry, no mailbox here by that name.\r\n\r\n" % n
                        for n in (b"dora", b"ann", b"cy", b"bob", b"eve"))
             + b"--- Below this line is a copy of the message.\r\n\r\nHello\r\n")
    code = ("import sys; from nudger.core.bounce import parse_report; "
            "print(parse_report(sys.stdin.buffer.read())[0])")
    seen = {subprocess.run([sys.executable, "-c", code], input=qmail, capture_output=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in range(6)}
    assert len(seen) == 1 and b"ann@x.example" in seen.pop()
