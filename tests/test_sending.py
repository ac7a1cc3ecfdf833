"""Opt-in sending: an untouched follow-up of ours goes out by itself after send_after, at
most once, through a real SMTP server (aiosmtpd, STARTTLS, AUTH) and a real Dovecot."""

from __future__ import annotations

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
def box(sending_box: Box) -> Box:  # (conftest: this module's RULES, sending through ``smtp``)
    return sending_box


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


def test_dry_run_and_explain_say_what_would_be_sent_and_when(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    code, out, _ = box.cli("explain", "offer@example.com", "--now", (NOW + timedelta(days=1)).isoformat())
    assert code == 0 and "nudger sends it Mon 2026-11-30 10:00 unless you edit or delete it" in out
    before = box.snapshot()
    decision = by_subject(box.run("--dry-run", now=MONDAY))["Offer"]
    assert decision["action"] == "send-draft" and "nudger sends it now" in decision["reason"]
    assert "would send 1 follow-up for you" in box.last_err
    assert smtp.received == [] and box.snapshot() == before


class _ReplyBeforeSend:
    """The real mailbox, but a reply lands in INBOX just as nudger reads its draft to send it."""

    def __init__(self, inner, box: Box):  # type: ignore[no-untyped-def]
        self.inner, self.box, self.done = inner, box, False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def fetch_message(self, folder: str, uid: int, limit: int):  # type: ignore[no-untyped-def]
        if folder == "Drafts" and not self.done:
            self.done = True
            self.box.seed("INBOX", message("re-offer@client.example", sender="bob@client.example",
                                           to=self.box.user, subject="Re: Offer", date=MONDAY,
                                           reply_to="offer@example.com"))
        return self.inner.fetch_message(folder, uid, limit)


def test_a_reply_that_arrives_between_the_plan_and_the_send_cancels_it(box: Box, smtp: SmtpServer) -> None:
    from nudger.app.worker import open_mailbox, open_sender
    from nudger.config.load import load_config
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    _drafted(box)
    config = load_config(box.config)
    account = config.accounts[0]
    state, sender = State.open(config.daemon.state_dir), open_sender(account)
    mailbox = _ReplyBeforeSend(open_mailbox(account), box)
    try:
        result = run_cycle(config, account, mailbox, state, MONDAY, sender=sender)  # type: ignore[arg-type]
    finally:
        mailbox.inner.close()
        state.close()
        assert sender is not None
        sender.close()
    assert mailbox.done and smtp.received == [] and result.sent == []
    assert box.drafts() == []  # our draft withdrawn: the reply made it unneeded
    assert by_subject(box.run(now=MONDAY))["Offer"]["status"] == "replied"
    assert smtp.received == []


def test_a_draft_the_user_edited_is_never_sent(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    ((uid, (data, _)),) = box.raw("Drafts").items()
    edited = data.replace(b"Happy to help", b"Glad to help")
    assert edited != data
    box.seed("Drafts", edited, flags=("\\Draft", "\\Seen"))  # what a client's save does
    box.delete_drafts([uid])
    decision = by_subject(box.run(now=MONDAY))["Offer"]
    assert decision["status"] == "drafted" and "it is yours now, so nudger will not send it" in decision["reason"]
    assert smtp.received == []
    assert [m for m, _ in box.raw("Drafts").values()] == [edited]


def test_a_refused_login_leaves_the_draft_and_says_what_to_fix(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    smtp = SmtpServer(tmp_path / "smtp", {imap_user: "not-the-password"})
    try:
        box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES,
                       extra_account=smtp.config())
        _drafted(box)
        before = box.raw("Drafts")
        box.run(now=MONDAY)
        assert box.last_code == 77, box.last_err
        assert (f"test (SMTP 127.0.0.1:{smtp.port}): the server refused the login for {imap_user} "
                "(535); check accounts.test.smtp.username and the password source") in box.last_err
        assert dovecot.users[imap_user] not in box.last_err
        assert smtp.received == [] and box.raw("Drafts") == before
        code, out, _ = box.cli("status", "--now", MONDAY.isoformat())
        assert code == 0 and "not sent" not in out  # nothing went out, so nothing is held
    finally:
        smtp.stop()


def test_a_5xx_from_the_server_leaves_the_draft_and_is_never_retried(box: Box, smtp: SmtpServer) -> None:
    _drafted(box)
    before = _kept(box)
    smtp.handler.refuse = "554 5.7.1 Message rejected as spam"
    decision = by_subject(box.run(now=MONDAY))["Offer"]
    assert box.last_code == 0 and decision["action"] == "not-sent"
    assert ("the server refused the message (554 5.7.1 Message rejected as spam); follow-up 1 for "
            "'Offer' was not sent and stays in Drafts for you") in box.last_err
    assert _kept(box) == before and smtp.received == []  # its bytes and flags, mark taken off
    smtp.handler.refuse = None
    again = by_subject(box.run(now=MONDAY + timedelta(hours=1)))["Offer"]
    assert smtp.received == [] and "not sent: the mail server refused it" in again["reason"]
    code, out, _ = box.cli("status", "--now", MONDAY.isoformat())
    assert code == 0 and "not sent: 'Offer'" in out and "554 5.7.1" in out


def test_sent_at_most_once_under_kill_9_at_random_points(box: Box, smtp: SmtpServer) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from collections import Counter

    env = {**os.environ, "NUDGER_TEST_PASSWORD": box.dovecot.users[box.user]}
    cmd = [sys.executable, "-m", "nudger", "--config", str(box.config), "run", "--once"]
    rng = random.Random(13)
    subjects = []
    span = 0.0
    for n in range(8):
        for i in range(2):
            subjects.append(f"Kill {n}.{i}")
            box.seed("Sent", message(f"kill{n}-{i}@example.com", sender=box.user, subject=subjects[-1],
                                     date=days_ago(6)))
        subprocess.run(cmd + ["--now", NOW.isoformat()], env=env, capture_output=True, check=True)
        started = time.monotonic()
        proc = subprocess.Popen(cmd + ["--now", MONDAY.isoformat()], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not span:  # the first run sends its two in full: how long a sending run takes
            proc.wait()
            span = time.monotonic() - started
            continue
        time.sleep(rng.uniform(0.4 * span, 1.05 * span))  # the sends come last
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        received = Counter(r.message["Message-ID"] for r in smtp.received)
        assert all(v == 1 for v in received.values()), received
    done = subprocess.run(cmd + ["--now", (MONDAY + timedelta(hours=1)).isoformat()], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    received = Counter(str(r.message["Message-ID"]) for r in smtp.received)
    assert all(v == 1 for v in received.values()), received
    in_sent = Counter(str(m["Message-ID"]) for m in _messages(box, "Sent") if m["In-Reply-To"])
    drafts = {str(d["Message-ID"]) for d in box.drafts()}
    code, out, _ = box.cli("status", "--json", "--now", (MONDAY + timedelta(hours=1)).isoformat())
    import json

    doubts = {t["draft"] for a in json.loads(out)["accounts"] for t in a["not_sent"]}
    assert all(v == 1 for v in in_sent.values()), in_sent
    for nudge_id in set(received) | drafts | doubts:
        if nudge_id in doubts:  # stopped mid-send: never resent, the draft is left, status says so
            assert nudge_id in drafts and received[nudge_id] <= 1
        else:  # sent exactly once, its copy in Sent once, its draft gone
            assert received[nudge_id] == 1 and in_sent[nudge_id] == 1 and nudge_id not in drafts
    assert len(received) + len(doubts - set(received)) == len(subjects)


def _kept(box: Box) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
    """Drafts as a user's client keeps it: \\Recent is the session's (any SELECT clears it)."""
    return {uid: (data, tuple(f for f in flags if f != b"\\Recent"))
            for uid, (data, flags) in box.raw("Drafts").items()}


def _messages(box: Box, folder: str):  # type: ignore[no-untyped-def]
    from email import policy
    from email.parser import BytesParser

    return [BytesParser(policy=policy.default).parsebytes(data) for data, _ in box.raw(folder).values()]


class Killed(BaseException):
    """What kill -9 does to a run, at one chosen instant (nothing after it runs)."""


class _Crashing:
    """A real sender or mailbox that stops the run at one call: ``when`` "before" the
    call reaches the server, or "after" it did."""

    def __init__(self, inner, call: str, when: str, folder: str | None = None):  # type: ignore[no-untyped-def]
        self.inner, self.call, self.when, self.folder = inner, call, when, folder

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        attr = getattr(self.inner, name)
        if name != self.call:
            return attr

        def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
            if self.folder is not None and args[0] != self.folder:
                return attr(*args, **kwargs)
            if self.when == "before":
                raise Killed
            attr(*args, **kwargs)
            raise Killed

        return crashing


def _cycle_until_killed(box: Box, sender_crash=None, mailbox_crash=None, now=MONDAY) -> None:  # type: ignore[no-untyped-def]
    from nudger.app.worker import open_mailbox, open_sender
    from nudger.config.load import load_config
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    config = load_config(box.config)
    account = config.accounts[0]
    state, sender, mailbox = State.open(config.daemon.state_dir), open_sender(account), open_mailbox(account)
    try:
        with pytest.raises(Killed):
            run_cycle(config, account, mailbox_crash(mailbox) if mailbox_crash else mailbox, state,
                      now, sender=sender_crash(sender) if sender_crash else sender)
    finally:
        mailbox.close()
        state.close()
        assert sender is not None
        sender.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_stopped_while_handing_the_message_over_never_sends_it_again(
        box: Box, smtp: SmtpServer, when: str) -> None:
    nudge_id = _drafted(box)
    _cycle_until_killed(box, sender_crash=lambda s: _Crashing(s, "send", when))
    assert len(smtp.received) == (1 if when == "after" else 0)
    box.run(now=MONDAY + timedelta(hours=1))
    assert ("nudger stopped while sending follow-up 'Offer' and cannot tell whether it went out "
            "(it is not in Sent); it will not send it again") in box.last_err
    box.run(now=MONDAY + timedelta(days=1))
    assert len(smtp.received) == (1 if when == "after" else 0)  # in doubt: never resent
    assert [str(d["Message-ID"]) for d in box.drafts()] == [nudge_id]  # left for the user
    code, out, _ = box.cli("status", "--now", MONDAY.isoformat())
    assert code == 0 and "not sent: 'Offer'" in out and "cannot tell whether it went out" in out


def test_a_run_stopped_after_the_server_took_it_files_it_once_and_removes_the_draft(
        box: Box, smtp: SmtpServer) -> None:
    nudge_id = _drafted(box)
    _cycle_until_killed(box, mailbox_crash=lambda m: _Crashing(m, "append", "after", folder="Sent"))
    assert len(smtp.received) == 1 and len(box.drafts()) == 1
    box.run(now=MONDAY + timedelta(hours=1))
    assert len(smtp.received) == 1 and box.drafts() == []
    assert [str(m["Message-ID"]) for m in _messages(box, "Sent") if m["In-Reply-To"]] == [nudge_id]


def test_the_service_sends_a_due_follow_up_by_itself(box: Box, smtp: SmtpServer, tmp_path: Path) -> None:
    from test_service import Daemon

    nudge_id = _drafted(box)
    daemon = Daemon(box, tmp_path, "--now", MONDAY.isoformat())
    try:
        daemon.wait_for("READY=1")
        daemon.wait_log("sent follow-up 1 for 'Offer' to bob@client.example (rule recruiters)")
        assert [str(r.message["Message-ID"]) for r in smtp.received] == [nudge_id]
        assert box.drafts() == []
        assert box.dovecot.users[box.user] not in daemon.output()  # the password is never logged
    finally:
        assert daemon.stop() == 0


def test_an_unverified_certificate_sends_nothing_and_names_ca_file(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    smtp = SmtpServer(tmp_path / "smtp", {imap_user: dovecot.users[imap_user]})
    try:
        table = "\n".join(line for line in smtp.config().splitlines() if not line.startswith("ca_file"))
        box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES, extra_account=table)
        _drafted(box)
        box.run(now=MONDAY)
        assert box.last_code == 78 and "did not verify" in box.last_err
        assert "set accounts.test.smtp.ca_file to its certificate" in box.last_err
        assert smtp.received == [] and len(box.drafts()) == 1
    finally:
        smtp.stop()


# aiosmtpd counts only STARTTLS as TLS; implicit TLS is TLS from the first byte.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_sends_too(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    smtp = SmtpServer(tmp_path / "smtp", {imap_user: dovecot.users[imap_user]}, tls="implicit")
    try:
        box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES,
                       extra_account=smtp.config())
        nudge_id = _drafted(box)
        box.run(now=MONDAY)
        assert [str(r.message["Message-ID"]) for r in smtp.received] == [nudge_id], box.last_err
    finally:
        smtp.stop()


def test_a_server_without_smtputf8_refuses_an_eai_recipient_and_the_draft_stays(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from test_eai import utf8_message

    smtp = SmtpServer(tmp_path / "smtp", {imap_user: dovecot.users[imap_user]}, smtputf8=False)
    try:
        box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES,
                       extra_account=smtp.config())
        box.seed("Sent", utf8_message("eai@example.com", f"Mia Example <{box.user}>",
                                      "Jörg <jörg@example.de>", "Angebot", days_ago(6)))
        assert by_subject(box.run())["Angebot"]["status"] == "due"
        before = _kept(box)
        decision = by_subject(box.run(now=MONDAY))["Angebot"]
        assert box.last_code == 0 and decision["action"] == "not-sent", box.last_err
        assert "SMTPUTF8" in box.last_err and "stays in Drafts for you" in box.last_err
        assert "may or may not have gone out" not in box.last_err  # nothing was handed over
        assert _kept(box) == before and smtp.received == []
    finally:
        smtp.stop()


def test_the_journal_keeps_no_bytes_of_a_finished_send_and_forgets_it_after_a_year(
        box: Box, smtp: SmtpServer) -> None:
    import contextlib
    import sqlite3

    nudge_id = _drafted(box)
    assert by_subject(box.run(now=MONDAY))["Offer"]["action"] == "sent", box.last_err
    database = box.config.parent / "state" / "state.sqlite3"

    def journal() -> list[tuple[str, bool]]:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            return [(step, data is not None) for step, data in
                    conn.execute("SELECT step, data FROM outbox WHERE message_id=?", (nudge_id,))]

    assert journal() == [("done", False)]  # filed in Sent: the state need not keep a copy
    box.run(now=MONDAY + timedelta(days=200))
    assert journal() == [("done", False)]
    box.run(now=MONDAY + timedelta(days=370))
    assert journal() == [] and len(smtp.received) == 1


class _LineDropsAfterOne:
    """The real sender, whose server cannot be reached again once one message went out."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner, self.sends = inner, 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def open(self) -> None:
        from nudger.errors import TemporaryError

        if self.sends:
            self.inner.close()
            raise TemporaryError(f"{self.inner.where}: connection failed while logging in: "
                                 "[Errno 111] Connection refused")
        self.inner.open()

    def send(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.sends += 1
        return self.inner.send(*args, **kwargs)


def test_a_send_that_fails_after_another_went_out_still_reports_the_one_sent(
        box: Box, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from nudger.app import daemon

    ids = {"Offer": _drafted(box), "Invoice": _drafted(box, "Invoice", "invoice@example.com")}
    opener = daemon.open_sender
    monkeypatch.setattr(daemon, "open_sender", lambda account: _LineDropsAfterOne(opener(account)))
    decisions = by_subject(box.run(now=MONDAY))
    assert "connection failed while logging in" in box.last_err
    (got,) = smtp.received
    first = next(s for s, mid in ids.items() if mid == got.message["Message-ID"])
    other = next(s for s in ids if s != first)
    assert decisions[first]["action"] == "sent" and decisions[other]["action"] != "sent"
    assert [d["Subject"] for d in box.drafts()] == [f"Re: {other}"]
    monkeypatch.setattr(daemon, "open_sender", opener)
    later = by_subject(box.run(now=MONDAY + timedelta(hours=1)))
    assert box.last_code == 0, box.last_err
    assert later[first]["follow_ups_sent"] == 1 and later[other]["action"] == "sent"
    assert sorted(str(r.message["Message-ID"]) for r in smtp.received) == sorted(ids.values())
