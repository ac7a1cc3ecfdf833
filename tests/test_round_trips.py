"""Round trips over a distant server: a poll of an account with many folders must not
wait for the server once per folder. Counted at a proxy between nudger and Dovecot
(the turns nudger waits for the server), never timed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nudger.config.load import parse_config
from nudger.cycle.cycle import CycleResult
from nudger.mail.imap import connect
from support.dovecot import WEAK_CAPABILITY, Dovecot
from support.harness import Box, fast_worker
from support.mail import config_text, days_ago, message
from support.proxy import LatencyProxy

pytestmark = pytest.mark.imap

FOLDERS = 50
# Dovecot's capabilities without NOTIFY: IDLE on INBOX between polls, LIST-STATUS to poll.
NO_NOTIFY = ("IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS MOVE CHILDREN NAMESPACE UNSELECT "
             "CONDSTORE SPECIAL-USE LIST-EXTENDED LIST-STATUS")


# Dovecot 2.3's own capabilities but LIST-STATUS: SEARCHRES without a listing's sizes.
UNLISTED = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
            "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
            "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
            "WITHIN CONTEXT=SEARCH BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE "
            "SAVEDATE LITERAL+ NOTIFY SPECIAL-USE")


@pytest.fixture(scope="module")
def listing() -> Iterator[Dovecot]:
    from conftest import private_server

    with private_server(capability=NO_NOTIFY) as server:
        yield server


@pytest.fixture(scope="module")
def unlisted() -> Iterator[Dovecot]:
    from conftest import private_server

    with private_server(capability=UNLISTED) as server:
        yield server


def _many_folders(server: Dovecot, user: str) -> list[str]:
    client = server.client(user)
    try:
        names = [f"Client {i:02d}" for i in range(FOLDERS)]
        for name in names:
            client.create_folder(name)
    finally:
        client.logout()
    for i, name in enumerate(names[::10]):
        server.seed(user, name, [message(f"c{i}@them.example", sender="ann@them.example",
                                         to=user, subject=f"Project {i}", date=days_ago(3))])
    server.seed(user, "Sent", [message("s1@example.com", sender=user, date=days_ago(6))])
    return names


@pytest.fixture
def proxy(request: pytest.FixtureRequest) -> Iterator[tuple[LatencyProxy, Dovecot]]:
    server: Dovecot = request.getfixturevalue(request.param)
    # A delay orders what the proxy sees (a write after an answer is a new turn), even
    # on a busy machine.
    proxy = LatencyProxy(server.port, rtt=0.04)
    try:
        yield proxy, server
    finally:
        proxy.close()


def _box(proxy: LatencyProxy, server: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Box:
    user = server.take_user()
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", server.users[user])
    path = tmp_path / "config.toml"
    path.write_text(config_text(proxy.port, user, tmp_path / "state"))
    return Box(server, user, path, capsys)


def _after_login(proxy: LatencyProxy, since: int) -> list[list[bytes]]:
    """The commands (without tags) of each turn from LOGIN's, up to LOGOUT, of the events
    after ``since``: first what went in LOGIN's write besides LOGIN."""
    with proxy.lock:
        proxy.events[:since] = []
    # nudger does not wait for LOGOUT's answer: the proxy forwards it (RTT/2 later) after
    # the run has returned, so it is waited for here.
    deadline = time.monotonic() + 10
    while not any(c and b" LOGOUT" in d for c, d in list(proxy.events)) and time.monotonic() < deadline:
        time.sleep(0.02)
    turns = [[line.split(b" ", 1)[1] for line in turn] for turn in proxy.turns()]
    login = next(i for i, t in enumerate(turns) if t[0].startswith(b"LOGIN"))
    logout = next(i for i, t in enumerate(turns) if t[0].startswith(b"LOGOUT"))
    return [turns[login][1:], *turns[login + 1 : logout]]


@pytest.mark.parametrize("proxy", ["dovecot", "weak"], indirect=True)
def test_a_quiet_poll_of_fifty_folders_waits_for_the_server_once_for_them_all(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    _many_folders(server, box.user)
    box.run()
    box.run()  # (reads back the draft the first run wrote)
    mark = len(link.events)
    box.run()
    assert box.last_code == 0
    login, *turns = _after_login(link, mark)
    # The folders are listed in the login's write (whether the server has LIST-STATUS is
    # known only once logged in).
    assert login == [b'LIST "" "*"']
    if server.capability is None:  # Dovecot's own capabilities: LIST-STATUS among them
        # One write: ENABLE CONDSTORE and a LIST that brings every folder's status.
        assert len(turns) == 1 and [c.split(b" ")[0] for c in turns[0]] == [b"ENABLE", b"LIST"]
        assert b" STATUS (UIDVALIDITY" in turns[0][1]
    else:
        # Then every STATUS in one write: 50 folders, Sent, INBOX, Archive, Drafts.
        assert [len(t) for t in turns] == [FOLDERS + 4]
        assert all(c.startswith(b"STATUS ") for c in turns[0])


@pytest.mark.parametrize("proxy", ["dovecot", "weak"], indirect=True)
def test_news_in_one_of_fifty_folders_is_found_through_the_shared_poll(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    names = _many_folders(server, box.user)
    box.run()
    box.seed(names[37], message("late@them.example", sender="bob@client.example", to=box.user,
                                subject="Re: Proposal", reply_to="s1@example.com", date=days_ago(1)))
    (decision,) = box.run("--dry-run")
    assert decision["status"] == "replied"


@pytest.mark.parametrize("server", ["dovecot", "weak"])
def test_the_status_of_many_folders_is_what_status_answers_each(
        server: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dovecot: Dovecot = request.getfixturevalue(server)
    user = dovecot.take_user()
    names = _many_folders(dovecot, user)
    text = config_text(dovecot.port, user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, dovecot.users[user])
    try:
        folders = [*names, "INBOX", "Sent", "Drafts"]
        many = mailbox.status_many([*folders, "Nowhere"])
        assert many == {f: mailbox.status(f) for f in folders}
        assert many["Client 10"].messages == 1 and many["Client 11"].messages == 0
        # The next poll (the folders' STATUS sent with the LIST, without LIST-STATUS) sees
        # what changed meanwhile, and leaves out a folder deleted since.
        dovecot.seed(user, "Client 11", [message("n1@them.example", sender="ann@them.example",
                                                 to=user, date=days_ago(1))])
        other = dovecot.client(user)
        other.delete_folder("Client 20")
        other.logout()
        listed = {f.name for f in mailbox.list_folders()}
        again = mailbox.status_many(folders)
        assert "Client 20" not in listed and "Client 20" not in again
        assert again["Client 11"].messages == 1 and again["Client 11"].uidnext > many["Client 11"].uidnext
        assert again == {f: mailbox.status(f) for f in folders if f != "Client 20"}
    finally:
        mailbox.close()



@pytest.mark.parametrize("proxy", ["dovecot", "unlisted", "weak"], indirect=True)
def test_a_first_cycle_opens_searches_and_reads_fifty_folders_together(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    _many_folders(server, box.user)
    mark = len(link.events)
    (decision,) = box.run("--dry-run")
    assert decision["status"] == "due"
    login, *turns = _after_login(link, mark)
    assert login == [b'LIST "" "*"']
    if server.capability != WEAK_CAPABILITY:
        # SEARCHRES keeps each search's result for the FETCH that follows it (RFC 5182),
        # for a folder whose size LIST-STATUS told (without it, a STATUS of every folder,
        # in the write that asks Drafts'). ENABLE and LIST with statuses (without
        # LIST-STATUS: ENABLE and the STATUS of every folder listed with the login); every
        # folder's EXAMINE, SEARCH and header FETCH, with Drafts' and Trash's searches, in
        # one write. (The due message's flags were read in it: not asked again.)
        first = 2 if server.capability is None else 1 + FOLDERS + 4
        assert [len(t) for t in turns] == [first, 3 * (FOLDERS + 3) + 4], [t[0] for t in turns]
        assert turns[0][0] == b"ENABLE CONDSTORE"
        together = turns[-1]
        watched = together[: 3 * (FOLDERS + 3)]
        assert [c.split(b" ")[0] for c in watched[::3]] == [b"EXAMINE"] * (FOLDERS + 3)
        assert all(c.startswith(b"UID SEARCH RETURN (SAVE ALL) UID 1:*") for c in watched[1::3])
        assert all(c.startswith(b"UID FETCH $ (BODY.PEEK[HEADER.FIELDS") for c in watched[2::3])
        assert [c.split(b" ", 1)[1] for c in together[-4::2]] == [b'"Drafts"', b'"Trash"']
        return
    # (After the LIST sent with the login: every folder's STATUS, the searches with
    # Drafts' and Trash's, the FETCHes with the due message's flags)
    assert len(turns) <= 3, [t[0] for t in turns]
    searched = next(t for t in turns if t[1:2] and t[1].startswith(b"UID SEARCH UID 1:*"))
    fetched = next(t for t in turns if t[1:2] and t[1].startswith(b"UID FETCH"))
    examined = [c.split(b" ", 1)[1] for c in searched if c.startswith(b"EXAMINE")]
    assert len(examined) == FOLDERS + 5  # and INBOX, Sent, Archive; then Drafts, Trash
    assert examined[-2:] == [b'"Drafts"', b'"Trash"'] and searched[-1].startswith(b"UID SEARCH OR")
    assert sum(c.startswith(b"UID FETCH") for c in fetched) == FOLDERS // 10 + 1  # those with mail


@pytest.mark.parametrize("proxy", ["weak", "listing"], indirect=True)
def test_a_quiet_daemon_poll_without_notify_waits_for_the_server_at_most_twice(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Between polls the service idles on INBOX; a poll ends the IDLE, asks every folder
    # and idles again: DONE goes out with the poll's commands, whose answers come together.
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    _many_folders(server, box.user)
    cycles: list[CycleResult] = []
    marks: list[int] = []  # where each cycle ended, in what the proxy saw

    def ended(_name: str, result: CycleResult) -> None:
        marks.append(len(link.events))
        cycles.append(result)

    with fast_worker(box.config, ended):
        deadline = time.monotonic() + 60
        while len(cycles) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(cycles) >= 6, f"only {len(cycles)} cycle(s) in 60 s at one a second"
    # (The first cycle writes a draft, the second reads it back; then nothing changes.)
    assert all(not c.written and not c.decisions for c in cycles[2:])
    # The turns from the end of one cycle to the end of the next: the wait, then the poll.
    per_poll = [len(link.turns(a)) - len(link.turns(b)) for a, b in zip(marks[2:-1], marks[3:], strict=True)]
    assert per_poll and all(n <= 2 for n in per_poll), per_poll


def _bounce(user: str, i: int) -> bytes:
    """A bounce naming its original only inside the report: its body is read."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {user}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Date: Mon, 23 Nov 2026 10:{i % 60:02d}:00 +0000\r\nMessage-ID: <dsn{i}@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; gone{i}@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <s{i}@example.com>\r\n"
        f"Subject: Offer {i}\r\n\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize("proxy", ["dovecot"], indirect=True)
@pytest.mark.parametrize(("at_once", "reads"), [(None, 1), (2, 3)])
def test_the_bounces_of_a_big_folder_are_read_in_one_go_at_its_end(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, at_once: int | None, reads: int) -> None:
    # A first sync reads a big folder's headers a chunk at a time (patched to 2 here);
    # its bounces' bodies are read once the folder's headers are, not one FETCH per
    # chunk: over a distant server each would stop the header stream for a round trip.
    # Bounces waiting are held as headers, so at most BODIES_AT_ONCE (memory stays flat).
    monkeypatch.setattr("nudger.cycle.sync.CHUNK", 2)
    if at_once is not None:
        monkeypatch.setattr("nudger.cycle.sync.BODIES_AT_ONCE", at_once)
        monkeypatch.setattr("nudger.cycle.records.BODIES_AT_ONCE", at_once)
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    sent = [message(f"s{i}@example.com", sender=box.user, to=f"gone{i}@nowhere.example",
                    subject=f"Offer {i}", date=days_ago(8)) for i in range(5)]
    server.seed(box.user, "Sent", sent)
    inbox = []
    for i in range(5):
        inbox += [_bounce(box.user, i), message(f"n{i}@them.example", sender="ann@them.example",
                                                to=box.user, subject=f"News {i}", date=days_ago(3))]
    server.seed(box.user, "INBOX", inbox)
    mark = len(link.events)
    decided = {d["subject"]: d["status"] for d in box.run("--dry-run")}
    assert decided == {f"Offer {i}": "bounced" for i in range(5)}
    bodies = [c for t in _after_login(link, mark) for c in t if b"BODY.PEEK[]<0." in c]
    assert len(bodies) == reads, bodies


@pytest.mark.parametrize("proxy", ["dovecot"], indirect=True)
def test_the_bodies_of_many_bounces_are_asked_in_one_write(
        proxy: tuple[LatencyProxy, Dovecot], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Bodies are asked a hundred a command (each may be a report's 256 KiB); the commands
    # go out together, not one round trip each.
    link, server = proxy
    box = _box(link, server, tmp_path, capsys, monkeypatch)
    count = 230
    server.seed(box.user, "Sent", [message(f"s{i}@example.com", sender=box.user,
                                           to=f"gone{i}@nowhere.example", subject=f"Offer {i}",
                                           date=days_ago(8)) for i in range(count)])
    server.seed(box.user, "INBOX", [_bounce(box.user, i) for i in range(count)])
    mark = len(link.events)
    decided = {d["subject"]: d["status"] for d in box.run("--dry-run")}
    assert decided == {f"Offer {i}": "bounced" for i in range(count)}, box.last_err
    asking = [[c for c in t if b"BODY.PEEK[]<0." in c] for t in _after_login(link, mark)]
    assert [len(t) for t in asking if t] == [3]
