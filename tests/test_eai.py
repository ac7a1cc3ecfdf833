"""Addresses with a non-ASCII local part (EAI, RFC 6531: jörg@example.de, 用户@例子.中国), as
their messages carry them: raw UTF-8 in the header (RFC 6532), no encoding."""

from __future__ import annotations

from datetime import datetime
from email import message_from_string, policy
from email.utils import format_datetime

import pytest

from support.harness import Box, by_subject, make_box
from support.mail import days_ago

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def utf8_message(mid: str, sender: str, to: str, subject: str, date: datetime,
                 reply_to: str | None = None) -> bytes:
    """A message as an EAI client writes it: its header in UTF-8 as is."""
    lines = [f"Message-ID: <{mid}>", f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Date: {format_datetime(date)}", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if reply_to:
        lines += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    return ("\r\n".join(lines) + "\r\n\r\nHallo,\r\n\r\nich melde mich bald.\r\n").encode()


def sent(box: Box, mid: str, to: str, subject: str) -> None:
    box.seed("Sent", utf8_message(mid, f"Mia Example <{box.user}>", to, subject, days_ago(6)))


def test_a_reply_from_an_eai_address_answers_the_thread(box: Box) -> None:
    sent(box, "e1@example.com", "Jörg Müller <jörg@example.de>", "Angebot")
    box.seed("INBOX", utf8_message("e1r@example.de", "Jörg Müller <jörg@example.de>", box.user,
                                   "Re: Angebot", days_ago(5), reply_to="e1@example.com"))
    sent(box, "e2@example.com", "用户 <用户@例子.中国>", "报价")
    box.seed("INBOX", utf8_message("e2r@example.cn", "用户 <用户@例子.中国>", box.user,
                                   "回复: 报价", days_ago(5), reply_to="e2@example.com"))
    decisions = by_subject(box.run())
    assert box.last_code == 0, box.last_err
    assert decisions["Angebot"]["status"] == "replied"
    assert decisions["报价"]["status"] == "replied"
    assert box.drafts() == []


def test_a_reply_without_threading_headers_from_the_same_domain_in_other_forms(box: Box) -> None:
    # A phone client drops In-Reply-To; the domain comes back in capitals, or as its
    # ASCII form (IDNA): the same person, so an answer.
    sent(box, "e3@example.com", "Jörg <jörg@bücher.example>", "Lieferung")
    box.seed("INBOX", utf8_message("e3r@x.example", "Jörg <jörg@xn--bcher-kva.example>", box.user,
                                   "AW: Lieferung", days_ago(5)))
    sent(box, "e4@example.com", "Jörg <jörg@example.de>", "Rechnung")
    box.seed("INBOX", utf8_message("e4r@x.example", "Jörg <jörg@EXAMPLE.DE>", box.user,
                                   "AW: Rechnung", days_ago(5)))
    decisions = by_subject(box.run())
    assert decisions["Lieferung"]["status"] == "replied"
    assert decisions["Rechnung"]["status"] == "replied"


def test_a_follow_up_to_an_eai_address_keeps_its_recipient(box: Box) -> None:
    sent(box, "e5@example.com", "Jörg Müller <jörg@example.de>, 用户 <用户@例子.中国>", "Termin")
    d = by_subject(box.run())["Termin"]
    assert d["action"] == "appended", d
    [(data, _)] = box.raw("Drafts").values()
    draft = message_from_string(data.decode("utf-8"), policy=policy.default)  # as EAI reads it
    assert sorted(a.addr_spec for a in draft["To"].addresses) == ["jörg@example.de", "用户@例子.中国"]
    assert [a.display_name for a in draft["To"].addresses] == ["Jörg Müller", "用户"]
    assert draft["From"].addresses[0].addr_spec == box.user
    assert "left out" not in box.last_err
    # An ASCII local part at a Unicode domain: the draft's header stays ASCII.
    box.delete_drafts()
    sent(box, "e6@example.com", "Bob <bob@bücher.example>", "Bestellung")
    assert by_subject(box.run())["Bestellung"]["action"] == "appended"
    [(data, _)] = [d for d in box.raw("Drafts").values() if b"Bestellung" in d[0]]
    assert b"\r\nTo: Bob <bob@xn--bcher-kva.example>\r\n" in data and data.isascii()


def test_a_user_at_an_idn_domain_keeps_one_follow_up_when_the_state_is_lost(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Its Message-ID takes the A-labels the user's address is written with (as it always
    # did), though addresses are compared with Unicode domains: a rebuilt state finds it.
    import shutil

    me = "mia@xn--bcher-kva.example"
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, identities=[me])
    box.seed("Sent", utf8_message("idn@xn--bcher-kva.example", f"Mia <{me}>", "Bob <bob@client.example>",
                                  "Angebot", days_ago(6)))
    assert by_subject(box.run())["Angebot"]["action"] == "appended"
    [draft] = box.drafts()
    assert str(draft["Message-ID"]).endswith("@xn--bcher-kva.example>")
    shutil.rmtree(tmp_path / "state")
    assert by_subject(box.run())["Angebot"]["action"] != "appended", box.last_err
    assert len(box.drafts()) == 1
