"""A small folder's headers fetched in the write that opens and searches it, where the
server keeps a search's result (SEARCHRES, RFC 5182): the same drafts and decisions as
searching first and fetching after, and a folder the server refuses or lost is skipped
alone, as before."""

from __future__ import annotations

import io
import json
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nudger.config.load import parse_config
from nudger.cycle import cycle
from nudger.errors import EX_OK, FolderUnavailable, printable
from nudger.mail import imap_saved
from nudger.mail.imap import connect
from nudger.mail.imap_pipeline import Answer
from nudger.mail.imap_saved import esearch_uids, read_in_order, small_folders
from nudger.mail.imap_wire import Garbled
from nudger.mail.mailbox import FolderStatus
from support.dovecot import Dovecot
from support.harness import Box, by_subject
from support.mail import config_text, days_ago, message
from support.proxy import FaultyProxy

pytestmark = pytest.mark.imap

# Dovecot 2.3's own capabilities but SEARCHRES: the search first, the FETCHes after.
NO_SEARCHRES = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
                "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "
                "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE "
                "QRESYNC ESEARCH ESORT WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "
                "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE")
FETCH_SAVED = b" UID FETCH $ ("


@pytest.fixture(scope="module")
def no_searchres() -> Iterator[Dovecot]:
    from conftest import private_server

    with private_server(capability=NO_SEARCHRES) as server:
        yield server


@contextmanager
def _proxied(server: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FaultyProxy, Box]]:
    """A user's Box on ``server``, reached through a proxy that counts its commands."""
    user = server.take_user()
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", server.users[user])
    (tmp_path / server.dir.name).mkdir()
    path = tmp_path / server.dir.name / "config.toml"
    proxy = FaultyProxy(server.port)
    try:
        path.write_text(config_text(proxy.port, user, path.parent / "state"))
        yield proxy, Box(server, user, path, capsys)
    finally:
        proxy.close()


def _report(user: str) -> bytes:
    """A bounce naming its original only inside the report: its body is read."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {user}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <dsn2@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <s3@example.com>\r\n"
        "Subject: Invitation\r\n\r\n--B--\r\n"
    ).encode()


def _seed(box: Box) -> None:
    """Alpha (small) answers one message; Beta is big (above SMALL, patched to 3) and
    holds an out-of-office; Gamma is empty; INBOX has a bounce read by its body."""
    client = box.dovecot.client(box.user)
    try:
        for name in ("Alpha", "Beta", "Gamma"):
            client.create_folder(name)
    finally:
        client.logout()
    box.seed("Sent", *[message(f"s{i}@example.com", sender=box.user, to=to, subject=subject,
                               date=days_ago(8 - i))
                       for i, (to, subject) in enumerate([
                           ("ann@client.example", "Offer"), ("bob@client.example", "Lunch"),
                           ("gone@nowhere.example", "Invitation"), ("cy@client.example", "Terms"),
                           ("dee@client.example", "Quote")], start=1)])
    box.seed("Alpha", message("r1@client.example", sender="ann@client.example", to=box.user,
                              subject="Re: Offer", date=days_ago(2), reply_to="s1@example.com"),
             message("x1@client.example", sender="ann@client.example", to=box.user,
                     subject="Other", date=days_ago(2)))
    box.seed("Beta", *[message(f"b{i}@client.example", sender="eve@client.example", to=box.user,
                               subject=f"Note {i}", date=days_ago(3)) for i in range(4)],
             message("ooo@client.example", sender="cy@client.example", to=box.user,
                     subject="Automatic reply: Terms", date=days_ago(4), reply_to="s4@example.com",
                     headers={"Auto-Submitted": "auto-replied"},
                     body="I am out of the office until 30 November 2026.\n"))
    box.seed("INBOX", _report(box.user))


def _decisions(box: Box, *args: str) -> list[str]:
    got = box.run(*args)
    assert box.last_code == EX_OK, box.last_err
    return sorted(json.dumps(d, sort_keys=True) for d in got)


def _drafts(box: Box) -> list[tuple[Any, ...]]:
    return sorted((d["Subject"], d["To"], d["In-Reply-To"], d["References"]) for d in box.drafts())


def _cycles(box: Box) -> tuple[Any, ...]:
    """A dry run, a run, and one with news; what each decided, and the drafts."""
    first = _decisions(box, "--dry-run")
    decided = {d["subject"]: d["status"] for d in map(json.loads, first)}
    assert decided["Offer"] == "replied" and decided["Invitation"] == "bounced"
    assert decided["Lunch"] == decided["Quote"] == "due"
    written = _decisions(box)
    # News: an answer in a small folder read before, another in the big one.
    box.seed("Alpha", message("r2@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Lunch", date=days_ago(1), reply_to="s2@example.com"))
    box.seed("Beta", message("r5@client.example", sender="dee@client.example", to=box.user,
                             subject="Re: Quote", date=days_ago(1), reply_to="s5@example.com"))
    news = _decisions(box)
    assert {by_subject(map(json.loads, news))[s]["status"] for s in ("Lunch", "Quote")} == {"replied"}
    return first, written, news, _drafts(box)


def test_the_same_drafts_and_decisions_with_and_without_searchres(
        dovecot: Dovecot, no_searchres: Dovecot, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_saved, "SMALL", 3)  # (Beta, of 5 messages, is big)
    seen = []
    for server in (dovecot, no_searchres):
        with _proxied(server, tmp_path, capsys, monkeypatch) as (proxy, box):
            _seed(box)
            seen.append(_cycles(box))
            # With SEARCHRES the small folders' FETCH $ went with their searches; else none.
            saved = [line for line in proxy.commands() if FETCH_SAVED in line]
            assert bool(saved) == (server is dovecot)
    assert seen[0] == seen[1]


def _mailbox(server: Dovecot, user: str, port: int, tmp_path: Path) -> Any:
    text = config_text(port, user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    return connect(account, server.users[user])


def test_a_folder_gone_between_the_list_and_the_write_is_left_out_alone(
        dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _proxied(dovecot, tmp_path, capsys, monkeypatch) as (proxy, box):
        _seed(box)
        mailbox = _mailbox(dovecot, box.user, proxy.port, tmp_path)
        try:
            mailbox.list_folders()  # (LIST-STATUS: each folder's size, as a cycle asks it)
            mailbox.status_many(["Sent", "Alpha", "Gamma", "INBOX"])
            other = dovecot.client(box.user)
            other.delete_folder("Alpha")
            other.logout()
            asks = [("Sent", 0), ("Alpha", 0), ("Gamma", 0), ("INBOX", 0)]
            mark = len(proxy.commands())
            found = dict(mailbox.search_many(asks, None))
            wrote = proxy.commands()[mark:]
            assert sum(FETCH_SAVED in line for line in wrote) == 4  # one write for all
            assert set(found) == {"Sent", "Gamma", "INBOX"}
            assert [len(found[f][1]) for f in ("Sent", "Gamma", "INBOX")] == [5, 0, 1]
            got = list(mailbox.fetch_headers_many([(f, found[f][1]) for f in ("Sent", "INBOX")]))
            assert not any(b"UID FETCH" in line for line in proxy.commands()[mark + len(wrote):])
            assert [(f, [m.uid for m in items]) for f, items in got] == [
                ("Sent", [1, 2, 3, 4, 5]), ("INBOX", [1])]
            assert [m.header for _, items in got for m in items] == [
                m.header for f in ("Sent", "INBOX") for m in mailbox.fetch_headers(f, found[f][1])]
            with pytest.raises(FolderUnavailable) as refused:
                mailbox.examine("Alpha")
            assert refused.value.folder == "Alpha"
        finally:
            mailbox.close()


def test_a_cycle_skips_a_folder_refused_in_the_shared_write_and_serves_the_rest(
        dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _proxied(dovecot, tmp_path, capsys, monkeypatch) as (proxy, box):
        _seed(box)
        proxy.rewrite = (b'EXAMINE "Alpha"', b'EXAMINE "Alpha gone"')  # as if deleted
        decided = by_subject(box.run())
        assert box.last_code == EX_OK, box.last_err
        warnings = [line for line in box.last_err.splitlines() if "'Alpha'" in line]
        assert len(warnings) == 1 and "skipped" in warnings[0], box.last_err
        assert decided["Offer"]["status"] == "due"  # (its answer is in the folder skipped)
        assert decided["Invitation"]["status"] == "bounced" and decided["Lunch"]["status"] == "due"
        assert any(FETCH_SAVED in line for line in proxy.commands())
        proxy.rewrite = None
        assert by_subject(box.run())["Offer"]["status"] == "replied"  # read next cycle
        assert box.last_code == EX_OK and "skipped" not in box.last_err



def test_a_servers_refusal_reaches_the_terminal_without_its_control_characters(
        dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's words in a warning (or the journal): an escape sequence in them would
    # retitle or clear the terminal. (A line break would end the IMAP line itself.)
    with _proxied(dovecot, tmp_path, capsys, monkeypatch) as (proxy, box):
        _seed(box)
        proxy.rewrite = (b'EXAMINE "Alpha"', b'EXAMINE "Alpha gone"')
        proxy.rewrite_answers = (b"Mailbox doesn't", b"Mailbox\x1b]0;owned\x07\x1b[2J\x08\x08 doesn't")
        box.run()
        assert box.last_code == EX_OK, box.last_err
        (warning,) = [line for line in box.last_err.splitlines() if "'Alpha'" in line]
        assert "Mailbox\\x1b]0;owned\\x07\\x1b[2J\\x08\\x08 doesn't exist: Alpha gone" in warning
        assert not any(ch in box.last_err for ch in "\x1b\x07\x08")


def test_printable_text_shows_each_unprintable_character_as_its_escape() -> None:
    assert printable("Mailbox doesn't exist: Ärger — 日本") == "Mailbox doesn't exist: Ärger — 日本"
    assert printable("a\x1b[2Jb\x07\tc\nd\u202ee\x85f") == "a\\x1b[2Jb\\x07\\tc\\nd\\u202ee\\x85f"

def test_an_esearch_answer_names_its_own_commands_uids() -> None:
    def answer(*lines: bytes) -> Answer:
        return Answer(b"a5", b"OK", "a5 OK", [[b"ESEARCH " + line] for line in lines])

    assert esearch_uids(answer(b'(TAG "a5") UID ALL 2:3,7,10:9'), 10) == [2, 3, 7, 9, 10]
    assert esearch_uids(answer(b'(TAG "a4") UID ALL 1', b'(TAG "a5") UID'), 10) == []
    assert esearch_uids(answer(b'(TAG "a4") UID ALL 1'), 10) is None  # (another command's)
    assert esearch_uids(Answer(b"a5", b"OK", "a5 OK", []), 10) is None
    # Thirty bytes naming four billion UIDs are not taken apart (a hostile or broken server).
    with pytest.raises(Garbled, match="more messages than the folder holds"):
        esearch_uids(answer(b'(TAG "a5") UID ALL 1:4294967295'), 5500)


def test_a_folder_is_small_by_its_messages_or_by_the_uids_above_the_last_read() -> None:
    known = {"Big": FolderStatus(1, 20_001, None, 20_000), "Few": FolderStatus(1, 40, None, 30)}
    assert small_folders([("Big", 0), ("Few", 0), ("Unknown", 0)], known, 5000) == {"Few"}
    assert small_folders([("Big", 19_990)], known, 5000) == {"Big"}  # (ten new at most)
    assert small_folders([("Few", 0), ("Big", 19_990)], known, 35) == {"Few"}  # (the window)


def test_an_esearch_answer_read_amid_another_commands_goes_to_its_own() -> None:
    # Dovecot runs a SEARCH beside the FETCH before it in the same folder: its ESEARCH
    # may come before that FETCH ends (then read_answers files it with the FETCH).
    wire = (b'* 1 FETCH (UID 1 FLAGS ())\r\n* ESEARCH (TAG "a2") UID ALL 1:3\r\n'
            b"a1 OK Fetch completed\r\na2 OK Search completed\r\n")
    stream = io.BytesIO(wire)
    imap = types.SimpleNamespace(readline=stream.readline, read=stream.read)
    fetched, searched = read_in_order(imap, [b"a1", b"a2"], {0}, None)
    assert fetched == [b"1 (UID 1 FLAGS ())"]
    assert isinstance(searched, Answer) and esearch_uids(searched, 10) == [1, 2, 3]


@pytest.mark.parametrize("fresh", [60.0, 0.0])
def test_a_due_messages_flags_read_by_this_cycles_sync_are_not_asked_again_while_fresh(
        dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, fresh: float) -> None:
    monkeypatch.setattr(cycle, "READ_FRESH", fresh)
    with _proxied(dovecot, tmp_path, capsys, monkeypatch) as (proxy, box):
        box.seed("Sent", message("due@example.com", sender=box.user, subject="Due", date=days_ago(8)))
        assert by_subject(box.run("--dry-run"))["Due"]["status"] == "due"
        asked = [line for line in proxy.commands() if line.endswith(b" (FLAGS)")]
        assert len(asked) == (0 if fresh else 1), asked  # (read with its headers, a moment ago)


def test_a_notice_told_amid_a_saved_fetch_is_passed_over_once_heard() -> None:
    # With NOTIFY on, news of another folder may come whole amid the FETCH $ answer: it
    # was heard (and kept) as it was read, and the headers are read all the same.
    wire = (b'* ESEARCH (TAG "a1") UID ALL 1:2\r\na1 OK Search completed\r\n'
            b"* 1 FETCH (UID 1 FLAGS ())\r\n* STATUS INBOX (MESSAGES 4 UIDNEXT 9 UIDVALIDITY 7)\r\n"
            b"* 2 FETCH (UID 2 FLAGS ())\r\na2 OK Fetch completed\r\n")
    heard: list[bytes] = []

    def hear(word: bytes, parts: Any) -> bool:
        heard.append(word)
        return True  # (kept in the answer: as Waiting._heard_piped keeps a whole STATUS)

    for told, expected in ((hear, [b"1 (UID 1 FLAGS ())", b"2 (UID 2 FLAGS ())"]), (None, Garbled)):
        stream = io.BytesIO(wire)
        imap = types.SimpleNamespace(readline=stream.readline, read=stream.read)
        searched, fetched = read_in_order(imap, [b"a1", b"a2"], {1}, told)
        assert isinstance(searched, Answer) and esearch_uids(searched, 10) == [1, 2]
        if expected is Garbled:  # without NOTIFY a STATUS nobody asked is a garbled answer
            assert isinstance(fetched, Garbled)
        else:
            assert fetched == expected
    assert b"STATUS" in heard
