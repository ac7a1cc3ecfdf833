"""The nudge cycle against a real Dovecot: the drafts a user finds, and the ones they don't."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from support.harness import Box, by_subject, make_box, text
from support.mail import NOW, days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def sent(box: Box, mid: str, subject: str, days: float, to: str = "Bob Smith <bob@client.example>",
         **kw) -> None:  # type: ignore[no-untyped-def]
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to=to, subject=subject,
                             date=days_ago(days), **kw))


def test_unanswered_message_gets_one_threaded_draft(box: Box) -> None:
    sent(box, "p1@example.com", "Proposal", 6, references=["older@client.example"])
    decisions = box.run()
    assert box.last_code == 0
    assert by_subject(decisions)["Proposal"]["action"] == "appended"
    [draft] = box.drafts()
    assert draft["From"].addresses[0].addr_spec == box.user
    assert [a.addr_spec for a in draft["To"].addresses] == ["bob@client.example"]
    assert draft["Subject"] == "Re: Proposal"
    assert draft["In-Reply-To"] == "<p1@example.com>"
    assert draft["References"] == "<older@client.example> <p1@example.com>"
    assert draft["Message-ID"].startswith("<nudger.")
    assert "stage=1" in draft["X-Nudger-For"]
    body = text(draft)
    assert body.startswith("Hi Bob,")
    assert "Mia Example wrote:\n> Hello," in body
    flags = [f for _, f in box.raw("Drafts").values()][0]
    assert b"\\Draft" in flags and b"\\Seen" in flags


def test_reply_in_inbox_means_no_draft(box: Box) -> None:
    sent(box, "p2@example.com", "Quote", 6)
    box.seed("INBOX", message("r2@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Quote", date=days_ago(5), reply_to="p2@example.com"))
    d = by_subject(box.run())["Quote"]
    assert d["status"] == "replied" and "bob@client.example" in d["reason"] and "INBOX" in d["reason"]
    assert box.drafts() == []


def test_reply_filed_in_another_folder_counts(box: Box) -> None:
    sent(box, "p3@example.com", "Contract", 6)
    box.seed("Archive", message("r3@client.example", sender="bob@client.example", to=box.user,
                                subject="RE: Contract", date=days_ago(5), reply_to="p3@example.com"))
    d = by_subject(box.run())["Contract"]
    assert d["status"] == "replied" and "Archive" in d["reason"]
    assert box.drafts() == []


def test_reply_linked_only_by_references(box: Box) -> None:
    sent(box, "p4@example.com", "Budget", 6)
    box.seed("INBOX", message("r4@client.example", sender="bob@client.example", to=box.user,
                              subject="Budget numbers", date=days_ago(5),
                              references=["p4@example.com"]))
    assert by_subject(box.run())["Budget"]["status"] == "replied"
    assert box.drafts() == []


def test_reply_with_a_skewed_clock_still_counts(box: Box) -> None:
    sent(box, "p5@example.com", "Delivery date", 6)
    # Their clock is two days behind: the Date says before our message, the link says after.
    box.seed("INBOX", message("r5@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Delivery date", date=days_ago(8),
                              reply_to="p5@example.com"))
    assert by_subject(box.run())["Delivery date"]["status"] == "replied"
    assert box.drafts() == []


@pytest.mark.parametrize("headers,subject", [
    ({"Auto-Submitted": "auto-replied"}, "Out of office: Proposal"),  # RFC 3834
    ({"X-MS-Exchange-Generated-Message-Source": "x"}, "Automatic reply: Proposal"),  # Exchange
    ({"X-Autoreply": "yes"}, "Re: Proposal"),
    ({"Precedence": "auto_reply"}, "Re: Proposal"),
])
def test_out_of_office_is_not_a_reply(box: Box, headers: dict[str, str], subject: str) -> None:
    sent(box, "p6@example.com", "Proposal", 6)
    box.seed("INBOX", message("ooo@client.example", sender="bob@client.example", to=box.user,
                              subject=subject, date=days_ago(6), reply_to="p6@example.com",
                              headers=headers))
    d = by_subject(box.run())["Proposal"]
    assert d["action"] == "appended", d
    assert "auto-reply" in d["reason"]
    assert len(box.drafts()) == 1


def test_read_receipt_is_not_a_reply(box: Box, corpus: Path) -> None:
    sent(box, "p7@example.com", "Agenda", 6)
    receipt = message("mdn@client.example", sender="bob@client.example", to=box.user,
                      subject="Read: Agenda", date=days_ago(5), reply_to="p7@example.com")
    receipt = receipt.replace(b"Content-Type: text/plain; charset=\"utf-8\"",
                              b"Content-Type: multipart/report; report-type=disposition-notification;"
                              b" boundary=\"b\"")
    box.seed("INBOX", receipt)
    d = by_subject(box.run())["Agenda"]
    assert d["action"] == "appended" and "read receipt" in d["reason"]


def test_bounce_of_the_only_recipient_excludes_the_thread(box: Box, corpus: Path) -> None:
    # A real Postfix DSN from the corpus; our message carries the Message-ID it reports on.
    dsn = (corpus / "bounces" / "postfix_dsn.eml").read_bytes()
    from nudger.core.parse import parse_record

    record = parse_record(dsn, folder="x", uid=1, report_bytes=dsn)
    failed = record.failed_recipients[0]
    original = "p8@example.com"
    sent(box, original, "Hello there", 6, to=failed)
    dsn = dsn.replace(b"Subject:", f"In-Reply-To: <{original}>\r\nSubject:".encode(), 1)
    box.seed("INBOX", dsn)
    d = by_subject(box.run())["Hello there"]
    assert d["status"] == "bounced" and d["reason"] == f"every recipient bounced ({failed})"
    assert box.drafts() == []


def test_bounce_found_only_inside_the_report(box: Box) -> None:
    sent(box, "p9@example.com", "Invitation", 6, to="gone@nowhere.example")
    report = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {box.user}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <dsn9@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <p9@example.com>\r\n"
        "Subject: Invitation\r\n\r\n--B--\r\n"
    ).encode()
    box.seed("INBOX", report)
    d = by_subject(box.run())["Invitation"]
    assert d["status"] == "bounced" and "gone@nowhere.example" in d["reason"]


def test_one_bounced_recipient_of_two_is_left_out_of_the_draft(box: Box) -> None:
    sent(box, "p10@example.com", "Team lunch", 6, to="ann@client.example, gone@client.example")
    box.seed("INBOX", message("b10@mx.example", sender="MAILER-DAEMON@mx.example",
                              to=box.user, subject="Delivery Status Notification (Failure)",
                              date=days_ago(6), reply_to="p10@example.com",
                              headers={"X-Failed-Recipients": "gone@client.example"}))
    box.run()
    [draft] = box.drafts()
    assert [a.addr_spec for a in draft["To"].addresses] == ["ann@client.example"]


@pytest.mark.parametrize("to,why", [
    ("noreply@service.example", "no-reply"),
    ("Do Not Reply <do-not-reply@bank.example>", "no-reply"),
])
def test_no_reply_recipient_is_never_nudged(box: Box, to: str, why: str) -> None:
    sent(box, "p11@example.com", "Cancel subscription", 6, to=to)
    d = by_subject(box.run())["Cancel subscription"]
    assert d["status"] == "excluded" and why in d["reason"]
    assert box.drafts() == []


def test_note_to_self_is_not_nudged(box: Box) -> None:
    sent(box, "p12@example.com", "Reminder", 6, to=box.user)
    d = by_subject(box.run())["Reminder"]
    assert d["status"] == "excluded" and "note to self" in d["reason"]


def test_mailing_list_post_is_not_nudged(box: Box) -> None:
    sent(box, "p13@example.com", "[dev] Release plan", 6, to="dev@lists.project.example",
         headers={"List-Id": "<dev.lists.project.example>"})
    d = by_subject(box.run())["[dev] Release plan"]
    assert d["status"] == "excluded" and "list" in d["reason"]
    sent(box, "p13b@example.com", "Question", 6, to="users@googlegroups.com")
    assert by_subject(box.run())["Question"]["status"] == "excluded"
    assert box.drafts() == []


def test_nonudge_keyword_from_any_client_excludes(box: Box) -> None:
    box.seed("Sent", message("p14@example.com", sender=box.user, subject="Private",
                             date=days_ago(6)), flags=("\\Seen", "$NoNudge"))
    d = by_subject(box.run())["Private"]
    assert d["status"] == "excluded" and "$NoNudge" in d["reason"]
    assert box.drafts() == []


def test_keyword_set_after_the_sync_is_honoured_before_writing(box: Box) -> None:
    sent(box, "p15@example.com", "Offer", 1)
    assert by_subject(box.run())["Offer"]["status"] == "waiting"
    client = box.dovecot.client(box.user)
    client.select_folder("Sent")
    client.add_flags(client.search(["ALL"]), [b"$NoNudge"])
    client.logout()
    box.run(now=days_ago(-5))
    assert box.drafts() == []


def test_alias_identity_is_the_sender_of_its_draft(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                   monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                   identities=[imap_user, "Mia.Alias@Example.org"])
    box.seed("Sent", message("p16@example.org", sender="Mia <mia.alias@example.org>",
                             to="bob@client.example, Mia.Alias@example.org", subject="From my alias",
                             date=days_ago(6)))
    box.run()
    [draft] = box.drafts()
    assert draft["From"].addresses[0].addr_spec == "mia.alias@example.org"
    assert [a.addr_spec for a in draft["To"].addresses] == ["bob@client.example"]


def test_non_ascii_subject_and_names_are_encoded(box: Box) -> None:
    sent(box, "p17@example.com", "Angebot für Müller – Übersicht", 6,
         to="Jörg Müller <joerg@kunde.example>")
    box.run()
    [draft] = box.drafts()
    assert draft["Subject"] == "Re: Angebot für Müller – Übersicht"
    assert text(draft).startswith("Hi Jörg,")
    raw = list(box.raw("Drafts").values())[0][0]
    head = raw.split(b"\r\n\r\n")[0]
    assert head.isascii() and b"=?utf-8?" in head  # RFC 2047, never raw 8-bit


@pytest.mark.parametrize("subject", ["Re: Proposal", "RE: Proposal", "AW: Proposal", "Re: Re: Proposal"])
def test_re_is_never_doubled(box: Box, subject: str) -> None:
    sent(box, "p18@example.com", subject, 6)
    box.run()
    [draft] = box.drafts()
    assert draft["Subject"] == "Re: Proposal"


def test_business_days_skip_the_weekend(box: Box) -> None:
    from datetime import datetime

    friday = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    box.seed("Sent", message("p19@example.com", sender=box.user, subject="Friday mail", date=friday))
    # 3 business days after Friday is Wednesday, not Monday.
    tuesday = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    d = by_subject(box.run(now=tuesday))["Friday mail"]
    assert d["status"] == "waiting" and d["due_at"].startswith("2026-11-25T16:00")
    assert box.drafts() == []
    assert by_subject(box.run(now=datetime(2026, 11, 25, 15, 1, tzinfo=UTC)))[
        "Friday mail"]["action"] == "appended"


def test_outside_the_lookback_window_is_left_alone(box: Box) -> None:
    sent(box, "p20@example.com", "Ancient", 45)
    decisions = box.run()
    assert "Ancient" not in by_subject(decisions) or by_subject(decisions)["Ancient"]["status"] != "due"
    assert box.drafts() == []


def test_two_stages_follow_each_other(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rules = '''[[rules]]
name = "clients"
stages = [ { after = "2d", template = "gentle" }, { after = "4d", template = "gentle" } ]'''
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    sent(box, "p21@example.com", "Two stages", 3)
    assert by_subject(box.run())["Two stages"]["stage"] == 1
    [first] = box.drafts()
    # The user sends the first follow-up as it is: it lands in Sent with its Message-ID.
    box.seed("Sent", bytes(first).replace(b"Date:", b"X-Sent: yes\r\nDate:", 1))
    box.delete_drafts()
    d = by_subject(box.run(now=days_ago(-3)))["Two stages"]
    assert d["status"] == "waiting" and d["stage"] == 2  # 4 days after the first follow-up
    d = by_subject(box.run(now=days_ago(-5)))["Two stages"]
    assert d["action"] == "appended" and d["stage"] == 2
    [second] = box.drafts()
    assert second["In-Reply-To"] == first["Message-ID"]
    assert "stage=2" in second["X-Nudger-For"]
    # The second one sent too: the rule's two stages are used up.
    box.seed("Sent", bytes(second))
    d = by_subject(box.run(now=days_ago(-20)))["Two stages"]
    assert d["status"] == "limit"


def test_deleting_the_draft_dismisses_the_thread(box: Box) -> None:
    sent(box, "p22@example.com", "Dismiss me", 6)
    box.run()
    box.delete_drafts()
    d = by_subject(box.run(now=days_ago(-1)))["Dismiss me"]
    assert d["status"] == "dismissed"
    assert box.drafts() == []


def test_running_twice_adds_nothing_and_touches_nothing(box: Box) -> None:
    sent(box, "p23@example.com", "Once", 6)
    sent(box, "p24@example.com", "Twice", 5, cc="carol@client.example")
    box.seed("INBOX", message("r24@client.example", sender="dave@else.example", to=box.user,
                              subject="Unrelated", date=days_ago(2)), flags=())
    box.seed("Drafts", message("mine@example.com", sender=box.user, subject="My own draft"),
             flags=("\\Draft",))
    before = box.snapshot()
    box.run()
    after_first = box.snapshot()
    assert len(after_first["Drafts"]) == len(before["Drafts"]) + 2
    box.run()
    assert box.snapshot() == after_first
    # Every message of the user's is byte-identical and keeps its flags.
    for folder, messages in before.items():
        for uid, content in messages.items():
            assert after_first[folder][uid] == content, (folder, uid)


def test_lost_state_does_not_duplicate(box: Box, tmp_path: Path) -> None:
    import shutil

    sent(box, "p25@example.com", "Crash", 6)
    box.run()
    shutil.rmtree(tmp_path / "state")  # as if we crashed after APPEND, before the state write
    decisions = box.run()
    assert by_subject(decisions)["Crash"]["status"] == "drafted"
    assert len(box.drafts()) == 1
    shutil.rmtree(tmp_path / "state")
    box.run(now=days_ago(-10))
    assert len(box.drafts()) == 1


def test_dry_run_writes_nothing_anywhere(box: Box, tmp_path: Path) -> None:
    sent(box, "p26@example.com", "Preview", 6)
    d = by_subject(box.run("--dry-run"))["Preview"]
    assert d["action"] == "append-draft"
    assert box.drafts() == []
    d = by_subject(box.run())["Preview"]
    assert d["action"] == "appended"  # the state did not remember the dry run


def test_hostile_messages_are_skipped_with_a_warning_and_the_cycle_goes_on(box: Box) -> None:
    sent(box, "p27@example.com", "Still works", 6)
    hostile = [
        b"From: bob@client.example\r\nSubject: no id\r\nIn-Reply-To: <p27@example.com>\r\n\r\nx",
        b"Message-ID: <8bit@client.example>\r\nFrom: \xff\xfe J\xf6rg <j@x.example>\r\n"
        b"Subject: \xe4\xf6\xfc \xc3\xa4\r\nDate: yesterday-ish\r\n\r\nbody",
        b"Message-ID: <long@client.example>\r\nFrom: z@x.example\r\nSubject: " + b"A" * 5000
        + b"\r\n\r\nbody",
        b"\x00\x01\x02 garbage \xff\r\n\r\n\xff",
        b"Message-ID: <<<broken@@@>\r\nReferences: <<<>>> <\r\nFrom: @@@\r\nTo: ,,,\r\n"
        b"Content-Type: multipart/report; boundary=\r\n\r\n",
    ]
    box.seed("INBOX", *hostile)
    decisions = box.run()
    assert box.last_code == 0
    d = by_subject(decisions)["Still works"]
    # The message without Message-ID answers ours by In-Reply-To: it still counts as a reply.
    assert d["status"] == "replied"
    assert "INBOX UID" in box.last_err and "Traceback" not in box.last_err


def test_draft_headers_never_carry_encoded_words_in_references(box: Box) -> None:
    long_id = "AM6PR04MB" + "1234567890ABCDEF" * 5 + "@AM6PR04MB1234.eurprd04.prod.outlook.com"
    sent(box, long_id, "Long ids", 6, references=[long_id.replace("AM6", "XX6")])
    box.run()
    raw = list(box.raw("Drafts").values())[0][0]
    head = raw.split(b"\r\n\r\n")[0].decode()
    refs = [line for line in head.split("\r\n") if line.startswith(("References:", "In-Reply-To:"))]
    assert refs and all("=?" not in line for line in refs)
    assert f"<{long_id}>" in head  # as written, case kept


def test_status_lists_what_you_are_waiting_on(box: Box) -> None:
    sent(box, "p28@example.com", "Waiting one", 1)
    box.run()
    code, out, _ = box.cli("status", "--now", NOW.isoformat())
    assert code == 0 and "Waiting one" in out and "bob@client.example" in out
    code, out, _ = box.cli("explain", "p28@example.com", "--now", NOW.isoformat())
    assert code == 0 and "Decision: waiting   'Waiting one'" in out and "Rule: default" in out


def test_a_busy_mailbox_gets_a_bounded_number_of_drafts_per_cycle(box: Box) -> None:
    box.config.write_text(box.config.read_text().replace('lookback = "30d"',
                                                          'lookback = "30d"\nmax_new_drafts = 3'))
    for i in range(5):
        sent(box, f"many{i}@example.com", f"Many {i}", 10 - i)
    box.run()
    assert sorted(d["Subject"] for d in box.drafts()) == ["Re: Many 0", "Re: Many 1", "Re: Many 2"]
    box.run()
    assert len(box.drafts()) == 5
