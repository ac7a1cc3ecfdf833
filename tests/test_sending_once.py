"""At most once even when the state is lost or a second nudger watches the same mailbox:
only the state whose own APPEND wrote a draft sends it, and a draft marked as being sent
is never sent again by a state rebuilt from the server. Real Dovecot, real aiosmtpd."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from test_sending import (
    MONDAY,
    RULES,  # noqa: F401 - the rules sending_box (conftest) reads here
    _Crashing,
    _cycle_until_killed,
    _drafted,
    _messages,
)

from support.harness import Box, by_subject
from support.mail import message
from support.smtpd import SmtpServer

pytestmark = pytest.mark.imap

LEFT = "found in Drafts, not written by this state: nudger leaves it for you to send"


@pytest.fixture
def box(sending_box: Box) -> Box:  # (conftest: this module's RULES, sending through ``smtp``)
    return sending_box


def _lose_state(box: Box, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "state")


def test_a_crash_after_the_server_took_it_then_a_lost_state_never_sends_it_again(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    nudge_id = _drafted(box)
    _cycle_until_killed(box, sender_crash=lambda s: _Crashing(s, "send", "after"))
    assert len(smtp.received) == 1
    _lose_state(box, tmp_path)
    box.run(now=MONDAY + timedelta(hours=1))  # rebuilt from the server
    assert ("follow-up 'Offer' was being sent when nudger's state was lost, and it is not in "
            "Sent; nudger cannot tell whether it went out and will not send it") in box.last_err
    decision = by_subject(box.run(now=MONDAY + timedelta(days=1)))["Offer"]
    assert len(smtp.received) == 1 and decision["action"] is None
    assert [str(d["Message-ID"]) for d in box.drafts()] == [nudge_id]  # left for the user
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(days=1)).isoformat())
    assert code == 0 and "not sent: 'Offer'" in out and "cannot tell whether it went out" in out
    code, out, _ = box.cli("explain", "offer@example.com", "--now", (MONDAY + timedelta(days=1)).isoformat())
    assert code == 0 and LEFT in out


def test_a_lost_state_that_finds_it_in_sent_removes_the_draft_and_sends_nothing(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    # Stopped right after the copy went into Sent: the draft, marked, is still in Drafts.
    nudge_id = _drafted(box)
    _cycle_until_killed(box, mailbox_crash=lambda m: _Crashing(m, "append", "after", folder="Sent"))
    assert len(smtp.received) == 1 and len(box.drafts()) == 1
    _lose_state(box, tmp_path)
    before = box.snapshot()
    box.run("--dry-run", now=MONDAY + timedelta(hours=1))
    assert box.last_code == 0 and box.snapshot() == before  # a dry run removes nothing
    decision = by_subject(box.run(now=MONDAY + timedelta(hours=1)))["Offer"]
    assert box.last_code == 0 and decision["follow_ups_sent"] == 1
    assert len(smtp.received) == 1 and box.drafts() == []
    assert [str(m["Message-ID"]) for m in _messages(box, "Sent") if m["In-Reply-To"]] == [nudge_id]
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(hours=1)).isoformat())
    assert code == 0 and "not sent" not in out


def test_a_second_nudger_with_its_own_state_never_sends_the_first_ones_draft(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    nudge_id = _drafted(box)  # nudger A wrote it
    other = tmp_path / "config-b.toml"
    other.write_text(box.config.read_text().replace(str(tmp_path / "state"), str(tmp_path / "state-b")))
    b = Box(box.dovecot, box.user, other, box.capsys)
    decision = by_subject(b.run(now=MONDAY))["Offer"]
    assert b.last_code == 0 and decision["action"] is None and LEFT in decision["reason"]
    assert smtp.received == [] and [str(d["Message-ID"]) for d in box.drafts()] == [nudge_id]
    dry = by_subject(b.run("--dry-run", now=MONDAY))["Offer"]
    assert dry["action"] is None and LEFT in dry["reason"] and "would send" not in b.last_err
    code, out, _ = b.cli("explain", "offer@example.com", "--now", MONDAY.isoformat())
    assert code == 0 and LEFT in out and smtp.received == []
    assert by_subject(box.run(now=MONDAY))["Offer"]["action"] == "sent"  # A sends it, once
    b.run(now=MONDAY + timedelta(hours=1))
    box.run(now=MONDAY + timedelta(hours=1))
    assert len(smtp.received) == 1 and box.drafts() == []


def test_a_state_of_schema_3_opens_and_sends_none_of_its_drafts(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    import contextlib
    import sqlite3

    from nudger.cycle.statefile import SCHEMA_VERSION

    nudge_id = _drafted(box)
    path = tmp_path / "state" / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as nudger before the mark of its own
        conn.execute("ALTER TABLE nudges DROP COLUMN own")
        conn.execute("PRAGMA user_version=3")
        conn.commit()
    code, out, _ = box.cli("explain", "offer@example.com", "--now", MONDAY.isoformat())
    assert code == 0 and LEFT in out  # read as it is
    decision = by_subject(box.run(now=MONDAY))["Offer"]
    assert box.last_code == 0 and decision["action"] is None and LEFT in decision["reason"]
    assert smtp.received == [] and [str(d["Message-ID"]) for d in box.drafts()] == [nudge_id]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- a follow-up held back is listed until the user has acted on it ------------------------------


def test_a_refused_follow_up_is_no_longer_listed_once_you_delete_its_draft(
        box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    smtp.handler.refuse = "554 5.7.1 Message rejected as spam"
    box.run(now=MONDAY)
    box.run(now=MONDAY + timedelta(hours=1))
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(hours=1)).isoformat())
    assert code == 0 and "not sent: 'Offer'" in out  # still yours to look at
    box.delete_drafts()
    box.run("-v", now=MONDAY + timedelta(hours=2))
    assert ("follow-up 'Offer', which nudger did not send, is settled (you deleted it): no longer "
            "listed") in box.last_err
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(hours=2)).isoformat())
    assert code == 0 and "not sent" not in out
    box.run("-v", now=MONDAY + timedelta(hours=3))
    assert "settled" not in box.last_err and smtp.received == []


@pytest.mark.parametrize("answers", ["your message", "the follow-up"])
def test_a_follow_up_in_doubt_is_no_longer_listed_once_someone_answers(
        box: Box, smtp: SmtpServer, answers: str) -> None:
    nudge_id = _drafted(box)
    _cycle_until_killed(box, sender_crash=lambda s: _Crashing(s, "send", "before"))
    box.run(now=MONDAY + timedelta(hours=1))  # in doubt (nothing went out, but nudger cannot know)
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(hours=1)).isoformat())
    assert code == 0 and "not sent: 'Offer'" in out and "cannot tell whether it went out" in out
    parent = "offer@example.com" if answers == "your message" else nudge_id.strip("<>")
    box.seed("INBOX", message("re-offer@client.example", sender="Bob <bob@client.example>",
                              to=box.user, subject="Re: Offer", date=MONDAY + timedelta(hours=2),
                              reply_to=parent))
    box.run("-v", now=MONDAY + timedelta(hours=3))
    why = "a reply came" if answers == "your message" else "its thread was answered"
    assert f"is settled ({why}): no longer listed" in box.last_err
    code, out, _ = box.cli("status", "--now", (MONDAY + timedelta(hours=3)).isoformat())
    assert code == 0 and "not sent" not in out
    # Settled is never a reason to send it after all: withdrawn, or left for you.
    box.run(now=MONDAY + timedelta(days=1))
    assert smtp.received == []
    left = [nudge_id] if answers == "the follow-up" else []
    assert [str(d["Message-ID"]) for d in box.drafts()] == left
