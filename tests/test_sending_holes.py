"""At most once where nothing on the server would show a send, where the draft changes
in the seconds before SMTP, and where a state rebuilt from the server meets a send or a
digest that already went. Real Dovecot, real aiosmtpd."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from test_digest import RULES as DIGEST_RULES
from test_digest import SATURDAY, _digests, _three_drafts
from test_sending import MONDAY, RULES, _Crashing, _cycle_until_killed, _drafted, _messages

from support.harness import Box, by_subject, make_box
from support.smtpd import SmtpServer

pytestmark = pytest.mark.imap

NO_COPY = ("accounts.test.smtp.save_sent is false, so nothing on the server would show it went "
           "out (a lost state could send it twice): nudger leaves it for you to send")


@pytest.fixture
def box(sending_box: Box) -> Box:  # (conftest: this module's RULES, sending through ``smtp``)
    return sending_box


def _cycle(box: Box, sender_wrap=None) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """One real cycle at MONDAY, its sender wrapped: the Message-IDs it sent, what it logged."""
    from nudger.app.daemon import open_mailbox, open_sender
    from nudger.config.load import load_config
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    config = load_config(box.config)
    account = config.accounts[0]
    state, sender, mailbox = State.open(config.daemon.state_dir), open_sender(account), open_mailbox(account)
    assert sender is not None
    said: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("nudger")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = run_cycle(config, account, mailbox, state, MONDAY,
                           sender=sender_wrap(sender) if sender_wrap else sender)
    finally:
        mailbox.close()
        state.close()
        sender.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
    return [str(d) for d in result.sent], "\n".join(said)


class _OnOpen:
    """A real sender; ``act`` is done to the mailbox as the SMTP connection opens, the
    seconds before the message would be handed over."""

    def __init__(self, inner, act):  # type: ignore[no-untyped-def]
        self.inner, self.act = inner, act

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def open(self) -> None:
        self.inner.open()
        self.act()


def test_without_a_sent_copy_nothing_is_sent_even_after_the_state_is_lost(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, smtp) -> None:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES,
                   extra_account=smtp.config(save_sent="false"))
    _drafted(box)
    dry = by_subject(box.run("--dry-run", now=MONDAY))["Offer"]
    assert dry["action"] is None and NO_COPY in dry["reason"] and "would send" not in box.last_err
    code, out, _ = box.cli("explain", "offer@example.com", "--now", MONDAY.isoformat())
    assert code == 0 and NO_COPY in " ".join(out.split())
    assert NO_COPY in by_subject(box.run(now=MONDAY))["Offer"]["reason"]
    shutil.rmtree(tmp_path / "state")
    box.run(now=MONDAY + timedelta(hours=1))
    box.run(now=MONDAY + timedelta(days=1))
    assert smtp.received == [] and len(box.drafts()) == 1  # left for the user


def test_a_draft_deleted_after_the_server_took_it_still_gets_its_sent_copy(
        box: Box, smtp: SmtpServer) -> None:
    nudge_id = _drafted(box)
    _cycle_until_killed(box, mailbox_crash=lambda m: _Crashing(m, "append", "before", folder="Sent"))
    assert len(smtp.received) == 1 and len(box.drafts()) == 1
    box.delete_drafts()  # the user, meanwhile
    box.run(now=MONDAY + timedelta(hours=1))
    assert box.last_code == 0 and "cannot put a copy" not in box.last_err
    (copy,) = [data for data, _ in box.raw("Sent").values() if nudge_id.encode() in data]
    assert copy.replace(b"\r\n", b"\n") == smtp.received[0].data.replace(b"\r\n", b"\n")
    assert len(smtp.received) == 1 and box.drafts() == []


def test_a_draft_deleted_just_before_smtp_is_not_sent(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    sent, said = _cycle(box, lambda s: _OnOpen(s, box.delete_drafts))
    assert sent == [] and smtp.received == [] and box.drafts() == []
    assert "you changed or deleted follow-up 1 for 'Offer' just now; nudger does not send it" in said


def test_a_draft_already_in_sent_is_not_sent_again(box: Box, smtp: SmtpServer) -> None:
    nudge_id = _drafted(box)
    ((data, _),) = box.raw("Drafts").values()
    sent, said = _cycle(box, lambda s: _OnOpen(s, lambda: box.seed("Sent", data)))
    assert sent == [] and smtp.received == [] and "not sending follow-up 1 for 'Offer'" in said
    box.run(now=MONDAY + timedelta(days=1))
    assert smtp.received == []
    assert [str(m["Message-ID"]) for m in _messages(box, "Sent") if m["In-Reply-To"]] == [nudge_id]


def test_a_draft_marked_as_being_sent_is_held_and_listed(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)

    def mark() -> None:  # as a run that stopped right after setting it
        with box.dovecot.client(box.user) as client:
            client.select_folder("Drafts")
            client.add_flags(client.search("ALL"), [b"$NudgerSending"])

    sent, said = _cycle(box, lambda s: _OnOpen(s, mark))
    assert sent == [] and smtp.received == [] and "its draft is marked as being sent" in said
    code, out, _ = box.cli("status", "--now", MONDAY.isoformat())
    assert code == 0 and "not sent: 'Offer'" in out
    box.run(now=MONDAY + timedelta(days=1))
    assert smtp.received == [] and len(box.drafts()) == 1


def test_a_draft_saved_again_by_a_client_is_not_sent(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    ((uid, (data, _)),) = box.raw("Drafts").items()
    box.seed("Drafts", data, flags=("\\Draft", "\\Seen"))  # a client's recall and postpone
    box.delete_drafts([uid])
    box.run(now=MONDAY - timedelta(days=1))  # seen saved again: still nudger's, to withdraw
    decision = by_subject(box.run(now=MONDAY))["Offer"]
    assert decision["action"] is None and "not written by this state" in decision["reason"]
    assert smtp.received == [] and len(box.drafts()) == 1


def test_a_lost_state_leaves_a_sent_follow_up_draft_you_changed_since(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    _drafted(box)
    _cycle_until_killed(box, mailbox_crash=lambda m: _Crashing(m, "append", "after", folder="Sent"))
    ((uid, (data, flags)),) = box.raw("Drafts").items()
    assert b"$NudgerSending" in flags
    edited = data.replace(b"Happy to help", b"Glad to help")
    assert edited != data
    box.seed("Drafts", edited, flags=("\\Draft", "\\Seen", "$NudgerSending"))
    box.delete_drafts([uid])
    shutil.rmtree(tmp_path / "state")
    box.run(now=MONDAY + timedelta(hours=1))
    assert box.last_code == 0 and [m for m, _ in box.raw("Drafts").values()] == [edited]
    assert len(smtp.received) == 1


def test_a_digest_sent_before_the_state_was_lost_is_not_sent_again(
        dovecot, imap_user, tmp_path, capsys, monkeypatch, smtp) -> None:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=DIGEST_RULES,
                   extra_account=smtp.config())
    _three_drafts(box)
    box.run(now=SATURDAY)
    (digest,) = _digests(smtp)
    box.seed("INBOX", digest.data)  # delivered to you
    shutil.rmtree(tmp_path / "state")
    box.run("-v", now=SATURDAY + timedelta(hours=1))
    assert len(_digests(smtp)) == 1
    assert box.last_code == 0 and "the digest of 2026-11-28 was sent already" in box.last_err
    box.run(now=SATURDAY + timedelta(hours=2))
    assert len(_digests(smtp)) == 1


def test_a_state_of_schema_4_finishes_a_send_from_its_draft(
        box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    import contextlib
    import sqlite3

    from nudger.cycle.statefile import SCHEMA_VERSION

    nudge_id = _drafted(box)
    _cycle_until_killed(box, mailbox_crash=lambda m: _Crashing(m, "append", "before", folder="Sent"))
    path = tmp_path / "state" / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as nudger before it kept the bytes
        conn.execute("ALTER TABLE outbox DROP COLUMN data")
        conn.execute("PRAGMA user_version=4")
        conn.commit()
    box.run(now=MONDAY + timedelta(hours=1))
    assert box.last_code == 0 and len(smtp.received) == 1 and box.drafts() == []
    assert [str(m["Message-ID"]) for m in _messages(box, "Sent") if m["In-Reply-To"]] == [nudge_id]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
