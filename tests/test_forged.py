"""Mail that claims to be from the user, against Dovecot: only the server's record (a copy
in Sent) makes a message the user's; a From header or nudger's own header elsewhere does not."""

from __future__ import annotations

import pytest

from support.harness import Box, by_subject, make_box, text
from support.mail import NOW, days_ago, message

pytestmark = pytest.mark.imap

IBAN = "New bank details: IBAN XX00 1234 5678"


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def test_a_forged_from_you_in_inbox_never_becomes_a_draft(box: Box) -> None:
    box.seed("Sent", message("inv@example.com", sender=f"Mia Example <{box.user}>",
                             to="Bob <bob@client.example>", subject="Invoice", date=days_ago(6)))
    # Someone writes "From: Mia" into INBOX: one in the invoice's thread, one on its own.
    box.seed("INBOX", message("f1@evil.example", sender=f"Mia Example <{box.user}>",
                              to="Accounts <attacker@evil.example>", subject="Re: Invoice",
                              date=days_ago(5), reply_to="inv@example.com", body=IBAN))
    box.seed("INBOX", message("f2@evil.example", sender=f"Mia Example <{box.user}>",
                              to="Accounts <attacker@evil.example>", subject="Payment",
                              date=days_ago(6), body=IBAN))
    decisions = by_subject(box.run())
    assert box.last_code == 0
    assert "Payment" not in decisions  # not a thread of the user's at all
    d = decisions["Invoice"]
    assert d["status"] == "replied" and d["outbound"] == "<inv@example.com>"
    assert "claiming to be you" in d["reason"] and "not in Sent" in d["reason"]
    assert box.drafts() == []
    code, out, _ = box.cli("explain", "f2@evil.example", "--now", NOW.isoformat())
    assert code == 0 and "claims to be from you, but is not in Sent" in out
    assert "Decision: nothing to follow up" in out
    code, out, _ = box.cli("explain", "inv@example.com", "--now", NOW.isoformat())
    assert "replied by someone claiming to be you" in out.split("Decision:", 1)[1]
    assert "claims to be from you, but is not in Sent: not yours" in out


def test_your_bcc_to_self_in_inbox_is_still_yours(box: Box) -> None:
    mine = message("bcc@example.com", sender=f"Mia Example <{box.user}>",
                   to="Bob <bob@client.example>", subject="Quote", date=days_ago(6),
                   headers={"Bcc": box.user})
    box.seed("INBOX", mine)
    box.seed("Sent", mine)
    assert by_subject(box.run())["Quote"]["action"] == "appended"
    [draft] = box.drafts()
    assert [a.addr_spec for a in draft["To"].addresses] == ["bob@client.example"]
    assert draft["In-Reply-To"] == "<bcc@example.com>"


def test_a_forged_follow_up_header_does_not_use_up_the_stages(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                               capsys, monkeypatch) -> None:
    rules = '''[[rules]]
name = "two"
stages = [ { after = "2d", template = "gentle" }, { after = "3d", template = "gentle" } ]'''
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    me = f"Mia Example <{box.user}>"
    box.seed("Sent", message("st@example.com", sender=me, to="Bob <bob@client.example>",
                             subject="Offer", date=days_ago(12)))
    # Our first follow-up, sent: in Sent, it counts.
    box.seed("Sent", message("first@example.com", sender=me, to="Bob <bob@client.example>",
                             subject="Re: Offer", date=days_ago(6), reply_to="st@example.com",
                             headers={"X-Nudger-For": "<st@example.com>; stage=1"}))
    # A forged "second follow-up" in INBOX: it must not count.
    box.seed("INBOX", message("f3@evil.example", sender=me, to="attacker@evil.example",
                              subject="Re: Offer", date=days_ago(9), reply_to="st@example.com",
                              body=IBAN, headers={"X-Nudger-For": "<st@example.com>; stage=2"}))
    d = by_subject(box.run())["Offer"]
    assert d["action"] == "appended" and d["stage"] == 2, d
    [draft] = box.drafts()
    assert "stage=2" in draft["X-Nudger-For"]
    assert [a.addr_spec for a in draft["To"].addresses] == ["bob@client.example"]
    assert draft["In-Reply-To"] == "<first@example.com>"
    assert IBAN not in text(draft)


def test_a_reply_without_threading_headers_is_never_linked_to_a_forged_message(box: Box) -> None:
    me = f"Mia Example <{box.user}>"
    box.seed("Sent", message("ct@example.com", sender=me, to="Bob <bob@client.example>",
                             subject="Contract", date=days_ago(6)))
    # A forged "Contract" to Bob, newer than the real one: Bob's reply that lost its
    # In-Reply-To must still answer the message Mia sent.
    box.seed("INBOX", message("f4@evil.example", sender=me, to="Bob <bob@client.example>",
                              subject="Contract", date=days_ago(5), body=IBAN))
    assert by_subject(box.run(now=days_ago(4.9)))["Contract"]["status"] == "waiting"
    box.seed("INBOX", message("ctr@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Contract", date=days_ago(4)))
    d = by_subject(box.run())["Contract"]
    assert d["status"] == "replied" and "bob@client.example" in d["reason"], d
    assert box.drafts() == []


def test_a_forged_message_does_not_turn_a_deleted_follow_up_into_a_sent_one(dovecot, imap_user,  # type: ignore[no-untyped-def]
                                                                           tmp_path, capsys,
                                                                           monkeypatch) -> None:
    rules = '''[[rules]]
name = "two"
stages = [ { after = "2d", template = "gentle" }, { after = "4d", template = "gentle" } ]'''
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    me = f"Mia Example <{box.user}>"
    box.seed("Sent", message("dm@example.com", sender=me, to="Bob <bob@client.example>",
                             subject="Dinner", date=days_ago(3)))
    assert by_subject(box.run())["Dinner"]["action"] == "appended"
    box.delete_drafts()  # Mia does not want a follow-up here
    # A forged "From: Mia" answering her message, after the draft was written.
    box.seed("INBOX", message("f5@evil.example", sender=me, to="attacker@evil.example",
                              subject="Re: Dinner", date=days_ago(-0.1), reply_to="dm@example.com",
                              body=IBAN))
    box.run(now=days_ago(-1))
    # Mia writes again herself, later: the thread she dismissed is still not nudged.
    box.seed("Sent", message("dm2@example.com", sender=me, to="Bob <bob@client.example>",
                             subject="Re: Dinner", date=days_ago(-2), reply_to="dm@example.com"))
    d = by_subject(box.run(now=days_ago(-9)))["Dinner"]
    assert d["status"] == "dismissed", d
    assert box.drafts() == []
