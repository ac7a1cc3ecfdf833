"""What the user did to a draft, and what nudger then says and does (issue 15, items 10,
11, 12, 15), against a real Dovecot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from support.harness import Box, by_subject, make_box
from support.mail import NOW, config_text, days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def sent(box: Box, mid: str, subject: str, days: float) -> None:
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", subject=subject,
                             to="Bob Smith <bob@client.example>", date=days_ago(days)))


def mutt_postpones_again(data: bytes, edit: Callable[[str], str] = lambda text: text) -> bytes:
    """What mutt and neomutt write when a postponed message is recalled and postponed
    again (send.c, mutt_write_fcc with post set; sendlib.c mutt_write_rfc822_header in
    mode -1): no Date, their own header order, References before the MIME headers and
    In-Reply-To after them, the body re-encoded as 8bit with Content-Disposition, the
    user-defined headers kept, X-Mutt-Fcc and X-Mutt-References added."""
    old = BytesParser(policy=policy.default).parsebytes(data)
    text = old.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    new = EmailMessage(policy=policy.SMTP)
    for name in ("From", "To", "Cc", "Subject", "Message-ID", "References"):
        if old[name] is not None:
            new[name] = str(old[name])
    new.set_content(edit(text), cte="8bit", disposition="inline")
    for name in ("In-Reply-To", "X-Nudger-For", "X-Nudger-Digest"):  # (mutt keeps the X- ones)
        if old[name] is not None:
            new[name] = str(old[name])
    if old["In-Reply-To"] is not None:
        new["X-Mutt-References"] = str(old["In-Reply-To"])
    new["X-Mutt-Fcc"] = "=Sent"
    return bytes(new)


def resave(box: Box, edit: Callable[[str], str] = lambda text: text) -> None:
    """The recall deletes the draft, the postpone appends the new copy (a new UID)."""
    [(uid, (data, _))] = box.raw("Drafts").items()
    again = mutt_postpones_again(data, edit)
    assert again != data
    box.seed("Drafts", again, flags=("\\Draft", "\\Seen"))
    box.delete_drafts([uid])


def answered(box: Box, mid: str, subject: str) -> None:
    box.seed("INBOX", message(f"r-{mid}", sender="Bob Smith <bob@client.example>", to=box.user,
                              subject=f"Re: {subject}", date=days_ago(0.5), reply_to=mid), flags=())


def test_a_draft_recalled_and_postponed_unchanged_in_mutt_is_still_ours(box: Box) -> None:
    """Item 10: only a change of the text makes the draft the user's; then a reply withdraws it."""
    sent(box, "m1@example.com", "Recalled", 6)
    box.run()
    resave(box)
    d = by_subject(box.run(now=NOW + timedelta(hours=1)))["Recalled"]
    assert d["status"] == "drafted" and "you edited it" not in d["reason"]
    answered(box, "m1@example.com", "Recalled")
    d = by_subject(box.run(now=NOW + timedelta(hours=2)))["Recalled"]
    assert (d["status"], d["action"]) == ("replied", "withdrawn")
    assert box.drafts() == []


def test_an_edited_draft_stays_after_a_reply_and_status_and_the_log_say_so(box: Box) -> None:
    """Items 10 and 11: a changed word makes it the user's: never removed, but said."""
    sent(box, "m2@example.com", "Edited", 6)
    box.run()
    resave(box, lambda text: text.replace("Hi Bob,", "Dear Bob,"))
    assert "you edited it" in by_subject(box.run(now=NOW + timedelta(hours=1)))["Edited"]["reason"]
    answered(box, "m2@example.com", "Edited")
    d = by_subject(box.run(now=NOW + timedelta(hours=2)))["Edited"]
    assert d["status"] == "replied" and d["action"] is None
    assert "your edited follow-up 1 is still in Drafts" in d["reason"]
    assert "'Edited' was answered; your edited follow-up 1 is still in Drafts: send or delete it " \
           "yourself" in box.last_err
    [draft] = box.drafts()
    assert "Dear Bob," in draft.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    code, out, _ = box.cli("status", "--now", (NOW + timedelta(hours=3)).isoformat())
    assert code == 0
    assert "answered - your edited follow-up to bob@client.example ('Edited') is still in " \
           "Drafts" in " ".join(out.split())
    # Said once, when the answer came: the next cycles are quiet about it.
    box.run(now=NOW + timedelta(hours=4))
    assert "still in Drafts" not in box.last_err


def test_a_draft_waiting_in_drafts_is_drafted_after_the_look_back_window(box: Box) -> None:
    """Item 15: its message ages out of the 30-day window; its draft still waits."""
    sent(box, "m3@example.com", "Aged out", 25)
    assert by_subject(box.run())["Aged out"]["action"] == "appended"
    later = NOW + timedelta(days=10)
    d = by_subject(box.run(now=later))["Aged out"]
    assert d["status"] == "drafted" and "is in Drafts since" in d["reason"]
    code, out, _ = box.cli("status", "--now", later.isoformat())
    assert code == 0 and "Aged out" in out and "drafted" in out
    code, out, _ = box.cli("explain", "m3@example.com", "--now", later.isoformat())
    assert "follow-up 1 is in Drafts since" in out and "look-back" not in out


def test_subject_threading_switched_off_undoes_its_links(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    """Item 12: once it is off, the verdict is the one a fresh state gives."""
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    sent(box, "m4@example.com", "Kickoff", 6)
    box.seed("INBOX", message("m4r@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Kickoff", date=days_ago(5)))  # no In-Reply-To
    assert by_subject(box.run())["Kickoff"]["status"] == "replied"  # linked by its subject
    fresh = tmp_path / "fresh.toml"
    fresh.write_text(config_text(dovecot.port, imap_user, tmp_path / "fresh-state",
                                 extra_account="subject_threading = false"))
    later = NOW + timedelta(minutes=5)
    expected = by_subject(Box(dovecot, imap_user, fresh, capsys).run("--dry-run", now=later))
    assert expected["Kickoff"]["status"] == "due"
    off = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                   extra_account="subject_threading = false")
    assert by_subject(off.run("--dry-run", now=later))["Kickoff"]["status"] == "due"
    assert by_subject(off.run(now=later))["Kickoff"]["action"] == "appended"
    code, out, _ = off.cli("status", "--now", (later + timedelta(minutes=1)).isoformat())
    assert code == 0 and "Kickoff" in out and "drafted" in out


def test_the_text_digest_sees_what_a_reader_sees() -> None:
    from nudger.core.drafttext import text_digest

    draft = message("<nudger.1.s1@example.com>", subject="Re: Offer", body="Hi Bob,\n\njust checking.\n")
    assert text_digest(mutt_postpones_again(draft)) == text_digest(draft)
    assert text_digest(draft.replace(b"\r\n", b"\n")) == text_digest(draft)
    assert text_digest(mutt_postpones_again(draft, lambda t: t.replace("Bob", "Rob"))) != \
        text_digest(draft)
    assert text_digest(draft.replace(b"To: bob@", b"To: carol@")) != text_digest(draft)
    assert text_digest(draft.replace(b"Subject: Re: Offer", b"Subject: Re: Offer (2)")) != \
        text_digest(draft)


def test_a_draft_waiting_longer_than_the_state_keeps_mail_is_still_drafted(box: Box) -> None:
    """Item 15, further: the state forgets mail after twice the look-back window, but not
    the message whose follow-up waits in Drafts, nor that draft (else it reads as deleted)."""
    sent(box, "m5@example.com", "Long wait", 25)
    box.run()
    box.run(now=NOW + timedelta(days=70))  # the day's pruning
    box.seed("INBOX", message("other@else.example", sender="dave@else.example", to=box.user,
                              subject="Something else", date=NOW + timedelta(days=70)), flags=())
    later = NOW + timedelta(days=71)
    d = by_subject(box.run(now=later))["Long wait"]
    assert d["status"] == "drafted"
    assert len(box.drafts()) == 1
    code, out, _ = box.cli("status", "--now", later.isoformat())
    assert "Long wait" in out and "drafted" in out
