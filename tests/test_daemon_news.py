"""The service between polls: what it sends when nothing changed, and what wakes it.

The suite's Dovecot offers NOTIFY (RFC 5465): the service is told of every folder, so a
poll with nothing changed costs no command, and news in any watched folder (not only
INBOX) starts a cycle at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_service import Daemon

from nudger.cycle.cycle import CycleResult
from nudger.mail.mailbox import FolderInfo
from nudger.mail.notify import Told
from support.harness import Box, fast_worker, make_box
from support.mail import NOW, days_ago, message
from support.proxy import FaultyProxy

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def test_polls_with_nothing_changed_send_at_most_one_command_each(box: Box, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = box.dovecot.client(box.user)
    for i in range(12):  # folders of clients and projects: each once a STATUS per poll before
        client.create_folder(f"Clients/C{i}")
    client.logout()
    for i in range(12):
        box.seed(f"Clients/C{i}", message(f"c{i}@example.com", sender="ann@client.example",
                                          to=box.user, date=days_ago(40)))
    box.seed("Sent", message("p1@example.com", sender=box.user, subject="Waiting", date=days_ago(1)))
    proxy = FaultyProxy(box.dovecot.port)
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", box.dovecot.users[box.user])
    box.config.write_text(box.config.read_text().replace(f"port = {box.dovecot.port}",
                                                         f"port = {proxy.port}"))
    cycles: list[CycleResult] = []
    try:
        with fast_worker(box.config, lambda _name, result: cycles.append(result)):
            deadline = time.monotonic() + 30
            while len(cycles) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)  # the first cycle, then the first wait and poll
            before, polls = len(proxy.commands()), len(cycles)
            time.sleep(4)
            sent, polled = proxy.commands()[before:], len(cycles) - polls
    finally:
        proxy.close()
    assert polled >= 3, f"only {polled} poll(s) in 4 s at one a second"
    assert all(not c.written and not c.decisions for c in cycles[1:])  # nothing changed indeed
    assert len(sent) <= polled, sent


def test_news_in_a_folder_other_than_inbox_wakes_the_service_at_once(box: Box, tmp_path: Path) -> None:
    # The poll interval is 5 minutes: only being told of the news explains a draft within seconds.
    daemon = Daemon(box, tmp_path)
    try:
        daemon.wait_for("READY=1")
        assert box.drafts() == []
        # Sent from another client, six days ago: due now, and it lands in Sent, not INBOX.
        date = days_ago(6, now=NOW)
        box.seed("Sent", message("n1@example.com", sender=f"Mia Example <{box.user}>",
                                 to="Bob <bob@client.example>", subject="Told at once", date=date),
                 when=date)
        written = daemon.wait_for("wrote 1 draft", timeout=20)
        assert "1 awaiting a reply (1 in Drafts)" in written
        assert [d["Subject"] for d in box.drafts()] == ["Re: Told at once"]
        # A reply filed straight into Archive by a rule: the draft goes at once as well.
        box.seed("Archive", message("re-n1@client.example", sender="bob@client.example", to=box.user,
                                    subject="Re: Told at once", date=NOW, reply_to="n1@example.com"),
                 when=NOW)
        daemon.wait_for("removed 1 after a reply", timeout=20)
        assert box.drafts() == []
    finally:
        assert daemon.stop() == 0
    assert "Traceback" not in daemon.output()


def test_without_notify_inbox_still_wakes_the_service(weak, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = make_box(weak, weak.take_user(), tmp_path, capsys, monkeypatch)
    date = days_ago(6, now=NOW)
    box.seed("Sent", message("w1@example.com", sender=f"Mia Example <{box.user}>",
                             to="Bob <bob@client.example>", subject="Idle on inbox", date=date), when=date)
    daemon = Daemon(box, tmp_path)
    try:
        daemon.wait_for("READY=1")
        assert [d["Subject"] for d in box.drafts()] == ["Re: Idle on inbox"]
        box.seed("INBOX", message("re-w1@client.example", sender="bob@client.example", to=box.user,
                                  subject="Re: Idle on inbox", date=NOW, reply_to="w1@example.com"),
                 when=NOW)
        daemon.wait_for("removed 1 after a reply", timeout=20)
    finally:
        assert daemon.stop() == 0


def test_a_server_refusing_idle_is_polled_at_each_interval(weak, tmp_path, capsys, monkeypatch,  # type: ignore[no-untyped-def]
                                                          caplog) -> None:
    box = make_box(weak, weak.take_user(), tmp_path, capsys, monkeypatch)
    date = days_ago(6, now=NOW)
    box.seed("Sent", message("i1@example.com", sender=f"Mia Example <{box.user}>",
                             to="Bob <bob@client.example>", subject="No idle", date=date), when=date)
    proxy = FaultyProxy(weak.port)
    proxy.rewrite = (b" IDLE\r\n", b" XIDLE\r\n")  # Dovecot answers BAD, as a proxy in front may
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", weak.users[box.user])
    box.config.write_text(box.config.read_text().replace(f"port = {weak.port}", f"port = {proxy.port}"))
    cycles: list[CycleResult] = []
    caplog.set_level("INFO", logger="nudger")
    try:
        with fast_worker(box.config, lambda _name, result: cycles.append(result)):
            deadline = time.monotonic() + 30
            while len(cycles) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [d["Subject"] for d in box.drafts()] == ["Re: No idle"]
            box.seed("INBOX", message("re-i1@client.example", sender="bob@client.example", to=box.user,
                                      subject="Re: No idle", date=NOW, reply_to="i1@example.com"),
                     when=NOW)
            deadline = time.monotonic() + 10  # (a failed cycle would wait 30 s and more to retry)
            while box.drafts() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert box.drafts() == []
    finally:
        proxy.close()
    assert "the server refused IDLE" in caplog.text
    assert "cycle failed" not in caplog.text


def test_the_service_raises_its_open_files_limit_for_many_accounts() -> None:
    import resource

    from nudger.app.daemon import allow_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2000:
        pytest.skip(f"the hard limit of open files here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # as systemd's 1024, only lower
    try:
        allow_open_files(400)  # three files each: a connection, a database, its journal
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 3 * 400
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_server_refusing_notify_is_waited_on_in_inbox(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conftest import _need_dovecot

    from support.dovecot import Dovecot

    # Offered but refused: Dovecot answers NO without its folder index.
    server = Dovecot(_need_dovecot())  # (in a directory its auth worker can read)
    conf = server.dir / "dovecot.conf"
    conf.write_text(conf.read_text() + "mailbox_list_index = no\nimap_capability = +NOTIFY\n")
    user = server.add_user("refused@example.com")
    server.start()
    try:
        box = make_box(server, user, tmp_path, capsys, monkeypatch)
        date = days_ago(6, now=NOW)
        box.seed("Sent", message("x1@example.com", sender=f"Mia Example <{user}>",
                                 to="Bob <bob@client.example>", subject="Refused", date=date), when=date)
        daemon = Daemon(box, tmp_path)
        try:
            daemon.wait_for("READY=1")
            box.seed("INBOX", message("re-x1@client.example", sender="bob@client.example", to=user,
                                      subject="Re: Refused", date=NOW, reply_to="x1@example.com"),
                     when=NOW)
            daemon.wait_for("removed 1 after a reply", timeout=20)
            assert "refused NOTIFY; waiting on INBOX only" in daemon.output()
        finally:
            assert daemon.stop() == 0
        assert "Traceback" not in daemon.output()
    finally:
        server.cleanup()


def test_a_server_that_stops_telling_ends_the_wait_and_is_asked_again(box: Box, tmp_path: Path) -> None:
    import threading

    from nudger.config.load import parse_config
    from nudger.mail.imap import connect
    from support.mail import config_text

    proxy = FaultyProxy(box.dovecot.port)
    text = config_text(proxy.port, box.user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, box.dovecot.users[box.user])
    try:
        mailbox.list_folders()
        mailbox.status("Archive")
        assert mailbox.wait_for_news(["Archive"], 0.5, threading.Event()) == set()
        before = len(proxy.commands())
        assert mailbox.status("Archive").messages == 0  # what it was told: nothing sent
        assert len(proxy.commands()) == before
        # RFC 5465: a server may stop telling, and says so; what was told no longer holds.
        # Here it says so before telling of a message in INBOX (a folder not waited on).
        proxy.arm(inject=(0, b"* OK [NOTIFICATIONOVERFLOW] too many changes\r\n"))
        box.seed("INBOX", message("inbox@example.com"))
        started = time.monotonic()
        assert mailbox.wait_for_news(["Archive"], 30, threading.Event()) == {"Archive"}
        assert time.monotonic() - started < 10
        box.seed("Archive", message("late@example.com"))
        assert mailbox.status("Archive").messages == 1  # asked, not taken from before
    finally:
        mailbox.close()
        proxy.close()


def test_notices_amid_pipelined_answers_are_kept_as_told_never_read_as_answers(
        box: Box, tmp_path: Path) -> None:
    # Once told, a STATUS may come amid any answer, and carry only what changed (RFC 5465
    # 5.2): amid a LIST-STATUS it is no garbled status, amid a FETCH no garbled FETCH.
    import threading

    from nudger.config.load import parse_config
    from nudger.mail.imap import connect
    from support.mail import config_text

    box.seed("Archive", message("a1@example.com"), message("a2@example.com"))
    proxy = FaultyProxy(box.dovecot.port)
    text = config_text(proxy.port, box.user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, box.dovecot.users[box.user])
    try:
        mailbox.list_folders()
        asked = mailbox.status_many(["INBOX", "Archive"])
        assert mailbox.wait_for_news(["INBOX", "Archive"], 0.3, threading.Event()) == set()
        # The IDLE left going ends first, also for FETCHes sent ahead (past _call).
        assert [f.uid for _, got in mailbox.fetch_headers_many([("Archive", [1, 2])]) for f in got] == [1, 2]
        assert mailbox.wait_for_news(["INBOX", "Archive"], 0.3, threading.Event()) == set()
        mailbox.examine("Archive")  # (open: asked again, not taken from what was told)
        proxy.arm(inject=(0, b"* STATUS Archive (MESSAGES 5 UIDNEXT 6)\r\n"))
        assert mailbox.status_many(["Archive", "INBOX"]) == asked
        assert mailbox.examine("Archive").messages == 2
        proxy.arm(inject=(0, b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)\r\n'))
        [(folder, fetched)] = list(mailbox.fetch_headers_many([("Archive", [1, 2])]))
        assert folder == "Archive" and [f.uid for f in fetched] == [1, 2]
        proxy.arm(inject=(0, b"* STATUS Archive (MESSAGES 2)\r\n"))
        found = mailbox.search_many([("Archive", 0), ("INBOX", 0)], None)
        assert found["Archive"][1] == [1, 2] and found["INBOX"][1] == []
    finally:
        mailbox.close()
        proxy.close()


def _statuses(told: Told, names: list[str]) -> None:
    for name in names:
        told.hear_status_line(f'"{name}" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)'.encode(), None)


def test_statuses_told_of_folders_never_listed_are_not_kept() -> None:
    # A hostile server can stream STATUS lines for invented names all through a wait.
    listed = [FolderInfo("INBOX"), FolderInfo("Sent")]
    told = Told(condstore=False, folders=listed)
    _statuses(told, [f"Invented {i}" for i in range(500)] + ["INBOX"])
    assert set(told.status) == {"INBOX"}
    # Before the folders are known every name is kept; the next LIST keeps only its own.
    told = Told(condstore=False)
    _statuses(told, [f"Invented {i}" for i in range(500)] + ["INBOX", "Sent"])
    told.relisted(listed)
    assert set(told.status) == {"INBOX", "Sent"}
    _statuses(told, ["Invented again"])
    assert set(told.status) == {"INBOX", "Sent"}
