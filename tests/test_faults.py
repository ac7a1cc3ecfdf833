"""Failures in their scope, against a real Dovecot behind a loopback proxy: a refused
folder is skipped, a garbled answer fails its cycle and loses nothing, a command and a
cycle have deadlines."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time

import pytest

from nudger.errors import EX_OK, EX_TEMPFAIL
from nudger.mail import imap_login, imap_saved
from support.harness import by_subject, make_box
from support.mail import NOW, days_ago, message
from support.proxy import FaultyProxy

pytestmark = pytest.mark.imap


def test_an_unreadable_folder_is_skipped_and_the_rest_is_served(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.seed("Archive", message("old@client.example", sender="eve@client.example", to=box.user,
                                subject="Old news", date=days_ago(20)))
    box.seed("Sent", message("s1@example.com", sender=box.user, subject="Served", date=days_ago(6)))
    archive = dovecot.dir / "home" / box.user / "Maildir" / ".Archive"
    mode = archive.stat().st_mode
    archive.chmod(0)  # the server answers NO to STATUS and EXAMINE of this folder
    try:
        decisions = by_subject(box.run())
        assert box.last_code == EX_OK, box.last_err
        assert decisions["Served"]["action"] == "appended"
        warnings = [line for line in box.last_err.splitlines() if "'Archive'" in line]
        assert len(warnings) == 1 and "skipped" in warnings[0], box.last_err
    finally:
        archive.chmod(mode)
    # Readable again: the next cycle reads it (an answer filed there counts).
    box.seed("Archive", message("r-s1@client.example", sender="bob@client.example", to=box.user,
                                subject="Re: Served", date=days_ago(1), reply_to="s1@example.com"))
    assert by_subject(box.run())["Served"]["status"] == "replied"
    assert box.last_code == EX_OK and "'Archive'" not in box.last_err
    assert box.drafts() == []


def _garble_box(dovecot, user, tmp_path, capsys, monkeypatch, proxy):  # type: ignore[no-untyped-def]
    box = make_box(dovecot, user, tmp_path, capsys, monkeypatch)
    box.seed("Sent", *[message(f"g{i}@example.com", sender=user, to=f"p{i}@client.example",
                               subject=f"Garble {i}", date=days_ago(6)) for i in (1, 2, 3)])
    box.config.write_text(box.config.read_text().replace(
        f"port = {dovecot.port}", f"port = {proxy.port}\ntimeout = \"2s\""))
    return box


def test_a_garbled_fetch_answer_fails_the_cycle_and_loses_no_thread(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                    capsys, monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        rng = random.Random(17)
        noise = bytes(rng.choice([b for b in range(256) if b not in b"\r\n"]) for _ in range(64))
        proxy.arm(inject=(b"* 2 FE", noise))  # inside the second message's FETCH line
        box.run()
        assert box.last_code == EX_TEMPFAIL, box.last_err
        assert "an answer nudger cannot read while reading headers in 'Sent'" in box.last_err
        assert "internal error" not in box.last_err
        proxy.arm()
        decisions = by_subject(box.run())
        assert box.last_code == EX_OK
        assert {s: d["action"] for s, d in decisions.items()} == {
            "Garble 1": "appended", "Garble 2": "appended", "Garble 3": "appended"}
    finally:
        proxy.close()


def test_garbage_in_flags_is_a_garbled_answer_not_an_internal_error(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                   capsys, monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        proxy.arm(inject=(b"FLAGS (\\Seen", b" \xff\xfe\x80junk"))  # (a FETCH's, not EXAMINE's)
        box.run()
        assert box.last_code == EX_TEMPFAIL and "cannot read" in box.last_err, box.last_err
        proxy.arm()
        assert len(box.run()) == 3 and len(box.drafts()) == 3
    finally:
        proxy.close()


def test_random_garbage_anywhere_in_fetch_answers_never_loses_a_thread(dovecot, imap_user,  # type: ignore[no-untyped-def]
                                                                       tmp_path, capsys,
                                                                       monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    markers = [b"* 1 FE", b"* 2 FETCH (", b"* 3 FETCH (UID", b"UID 2", b"RFC822.SIZE ", b"FLAGS (",
               b"INTERNALDATE \"", b"Subject: ", b"Message-ID: <g2", b"]", b"{", b"\r\n)", b"OK F"]
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        rng = random.Random(5)
        for marker in markers:
            proxy.arm(inject=(marker, rng.randbytes(64)))
            box.run("--dry-run")
            assert box.last_code in (EX_OK, EX_TEMPFAIL), (marker, box.last_err)
            assert "internal error" not in box.last_err and "Traceback" not in box.last_err
        proxy.arm()
        decisions = by_subject(box.run())
        assert box.last_code == EX_OK
        assert sorted(s for s, d in decisions.items() if d["action"] == "appended") == [
            "Garble 1", "Garble 2", "Garble 3"]
    finally:
        proxy.close()


def test_a_server_that_trickles_bytes_is_timed_out_per_command(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                              capsys, monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        box.config.write_text(box.config.read_text().replace('timeout = "2s"', 'timeout = "1s"'))
        proxy.arm()
        box.run("--dry-run")
        total = proxy.sent
        # One byte every 0.3 s: never a second of silence, yet no answer ever completes.
        proxy.arm(trickle_at=total // 2, every=0.3)
        env = {**os.environ, "NUDGER_TEST_PASSWORD": dovecot.users[box.user]}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "nudger", "--config", str(box.config), "run",
                               "--once", "--now", NOW.isoformat()],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == EX_TEMPFAIL, done.stderr
        assert "no complete answer within 1s (accounts.test.timeout)" in done.stderr
        assert time.monotonic() - started < 20
    finally:
        proxy.close()


def test_a_cycle_has_a_deadline_of_its_own(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                           monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        monkeypatch.setattr(imap_login, "CYCLE_TIMEOUTS", 2)  # 2 x 2 s: a slow line's many commands
        proxy.arm(delay=0.3)  # every command is answered well within its 2 s
        box.run()
        assert box.last_code == EX_TEMPFAIL, box.last_err
        assert "the cycle took longer than 4s (2 times accounts.test.timeout)" in box.last_err
        proxy.arm()
        box.run()
        assert box.last_code == EX_OK and len(box.drafts()) == 3
    finally:
        proxy.close()


def test_an_unreadable_drafts_folder_stops_the_cycle_and_says_why(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                  capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.seed("Drafts", message("mine@example.com", sender=box.user, subject="My own draft"))
    box.seed("Sent", message("s2@example.com", sender=box.user, subject="Unwritten", date=days_ago(6)))
    drafts = dovecot.dir / "home" / box.user / "Maildir" / ".Drafts"
    mode = drafts.stat().st_mode
    drafts.chmod(0)
    try:
        box.run()
    finally:
        drafts.chmod(mode)
    assert box.last_code == EX_TEMPFAIL
    assert "'Drafts'" in box.last_err and "without its Drafts folder" in box.last_err
    assert [d["Subject"] for d in box.drafts()] == ["My own draft"]


def test_a_folder_gone_between_list_and_examine_is_skipped(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                           capsys, monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        # The folder list names one more folder than the server has by the time it is opened.
        # (Every listing: the one sent with the login and the one with statuses alike.)
        proxy.rewrite_answers = (b'"/" INBOX\r\n', b'"/" INBOX\r\n* LIST (\\HasNoChildren) "/" Gone\r\n')
        decisions = box.run()
        assert box.last_code == EX_OK, box.last_err
        assert len(decisions) == 3 and len(box.drafts()) == 3
        assert "skipped 'Gone' this cycle" in box.last_err
    finally:
        proxy.close()


def test_a_made_up_uid_in_a_search_answer_does_not_hide_later_mail(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                capsys, monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        proxy.arm(inject=(b"* SEARCH 1 2 3", b" 99999"))  # Sent's search names a UID it has not
        assert len(box.run()) == 3 and box.last_code == EX_OK
        proxy.arm()
        box.seed("Sent", message("g4@example.com", sender=box.user, to="p4@client.example",
                                 subject="Garble 4", date=days_ago(6)))
        assert by_subject(box.run())["Garble 4"]["action"] == "appended", box.last_err
    finally:
        proxy.close()


def test_garbage_inside_an_item_name_is_a_garbled_answer(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        # Found by fuzzing: inside "BODY[HEADER.FIELDS (...)]" this leaves an answer the
        # general parser reads, with a header of one byte and the real one under a key "]".
        noise = (b"\x1823\x83\xe8\xca#\xcf\x8f}\x16!\x99\x19\xc8\x84i\x80\x03\xc7,&\xb5\x8f\x90"
                 b"\xae\x9a4[G\x14mW\xcd \xf3\xba\x18^\x0e\x0b}){L\xfc\xb8\xdelW_]\xfay\xeb\x91\x96<"
                 b"\xed\x8d\x08\xad(3")
        proxy.arm(inject=(b"X-AUTORESPOND", noise))  # in the first message's FETCH of Sent
        box.run()
        assert box.last_code == EX_TEMPFAIL and "cannot read" in box.last_err, box.last_err
        proxy.arm()
        box.run()
        assert box.last_code == EX_OK
        assert sorted(d["Subject"] for d in box.drafts()) == ["Re: Garble 1", "Re: Garble 2",
                                                               "Re: Garble 3"]
    finally:
        proxy.close()


def test_an_unreadable_trash_does_not_stop_a_new_state_from_working(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                    capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.seed("Sent", message("t1@example.com", sender=box.user, subject="Locked away", date=days_ago(6)))
    client = box.dovecot.client(box.user)
    client.select_folder("Trash")  # (Dovecot makes an auto folder's directory when it is used)
    client.logout()
    trash = dovecot.dir / "home" / box.user / "Maildir" / ".Trash"
    mode = trash.stat().st_mode
    trash.chmod(0)  # the server answers NO to opening Trash
    try:
        decisions = by_subject(box.run())
    finally:
        trash.chmod(mode)
    assert box.last_code == EX_OK, box.last_err
    assert decisions["Locked away"]["action"] == "appended"
    warnings = [line for line in box.last_err.splitlines() if "Trash" in line]
    assert len(warnings) == 1 and "cannot search Trash" in warnings[0], box.last_err
    box.run()  # readable again: searched once, and no warning
    assert box.last_code == EX_OK and "Trash" not in box.last_err
    assert len(box.drafts()) == 1


@pytest.mark.parametrize("small", [500, 0], ids=["searched-and-fetched", "searched"])
def test_a_garbled_search_answer_is_not_an_empty_folder(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                        monkeypatch, small) -> None:
    # "* SEA<junk>RCH 1 2 3": no SEARCH answer at all, which imaplib files under another
    # name; taken as "nothing matched", the folder was marked read and its mail never seen.
    # The same for "* ESEARCH (TAG ...) UID ALL 1:3", a small folder's search whose result
    # its FETCH takes (SEARCHRES); a folder above ``small`` messages is searched alone.
    monkeypatch.setattr(imap_saved, "SMALL", small)
    proxy = FaultyProxy(dovecot.port)
    try:
        box = _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy)
        proxy.arm(inject=(b"* ESEA" if small else b"* SEA", b"\x93junk"))
        box.run()
        assert box.last_code == EX_TEMPFAIL and "SEARCH" in box.last_err, box.last_err
        proxy.arm()
        assert len(box.run()) == 3 and len(box.drafts()) == 3
    finally:
        proxy.close()


@pytest.fixture
def behind_proxy(dovecot, imap_user, tmp_path, capsys, monkeypatch):  # type: ignore[no-untyped-def]
    """A box with three sent messages, its nudger reaching the server through a proxy."""
    proxy = FaultyProxy(dovecot.port)
    try:
        yield _garble_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, proxy), proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("small", [500, 0], ids=["fetched-with-its-search", "fetched-after"])
def test_a_folder_refused_while_the_one_before_is_read_keeps_its_progress(behind_proxy, small,  # type: ignore[no-untyped-def]
                                                                          monkeypatch) -> None:
    box, proxy = behind_proxy
    box.seed("INBOX", *[message(f"in{i}@client.example", sender="eve@client.example", to=box.user,
                                subject=f"News {i}", date=days_ago(3)) for i in (1, 2)])
    # INBOX's header FETCH (after Sent's, in the same write) is refused: its turn comes
    # as Sent's last batch is read, and Sent's progress must be saved all the same. A
    # small folder's FETCH goes with its EXAMINE and SEARCH (SEARCHRES); above ``small``
    # messages, in the header FETCHes after the searches.
    monkeypatch.setattr(imap_saved, "SMALL", small)
    proxy.rewrite = ((re.compile(rb'(EXAMINE "INBOX"\r\n\S+ UID SEARCH [^\r]*\r\n\S+ UID FETCH \$ \()'),
                      rb"\1XBOGUS ") if small else (b"UID FETCH 1:2 (", b"UID FETCH 1:2 (XBOGUS "))
    decisions = by_subject(box.run())
    assert box.last_code == EX_OK, box.last_err
    # A FETCH $ refused (a proxy may not know it) is asked again by UID, as without
    # SEARCHRES: nothing is skipped. A FETCH by UID refused skips its folder.
    assert ("skipped 'INBOX' this cycle" in box.last_err) == (not small), box.last_err
    assert [decisions[f"Garble {i}"]["action"] for i in (1, 2, 3)] == ["appended"] * 3
    proxy.rewrite, proxy.written = None, bytearray()
    box.run()
    assert box.last_code == EX_OK and "skipped" not in box.last_err, box.last_err
    # INBOX is read again if it was skipped; Sent's progress was kept: not even opened
    # (Drafts is, for the drafts of the first run).
    lines = bytes(proxy.written).split(b"\r\n")
    opened = {line.split(b" ", 2)[2] for line in lines if b" EXAMINE " in line}
    assert opened == ({b'"Drafts"'} if small else {b'"INBOX"', b'"Drafts"'}), lines


def _garbled_once(box, proxy: FaultyProxy, inject: tuple[bytes, bytes], says: str,  # type: ignore[no-untyped-def]
                  never: str = "internal error") -> None:
    """A run with ``inject`` in what the server sends fails as temporary (75), saying
    ``says`` (and not ``never``); the next, clean, loses nothing: every draft is written."""
    proxy.arm(inject=inject)
    box.run()
    assert box.last_code == EX_TEMPFAIL and says in box.last_err, box.last_err
    assert never not in box.last_err
    proxy.arm()
    assert len(box.run()) == 3 and box.last_code == EX_OK and len(box.drafts()) == 3


def test_an_unreadable_internaldate_on_the_wire_names_its_folder(behind_proxy) -> None:  # type: ignore[no-untyped-def]
    box, proxy = behind_proxy
    _garbled_once(box, proxy, (b'INTERNALDATE "', b"99-Foo-"),  # in Sent's first message
                  "an answer nudger cannot read while reading headers in 'Sent'")


def test_a_header_fetch_answered_without_the_header_is_a_garbled_answer(behind_proxy) -> None:  # type: ignore[no-untyped-def]
    box, proxy = behind_proxy
    # The server answers another part's header fields than asked (rewritten on the way).
    proxy.rewrite = (b"BODY.PEEK[HEADER.FIELDS (", b"BODY.PEEK[1.HEADER.FIELDS (")
    box.run()
    assert box.last_code == EX_TEMPFAIL and "without BODY[HEADER" in box.last_err, box.last_err
    proxy.rewrite = None
    assert len(box.run()) == 3 and box.last_code == EX_OK and len(box.drafts()) == 3


def test_a_flag_change_told_amid_the_header_fetch_loses_nothing(behind_proxy) -> None:  # type: ignore[no-untyped-def]
    box, proxy = behind_proxy
    box.seed("Sent", message("old@example.com", sender=box.user, subject="Long ago",
                             date=days_ago(400)), when=days_ago(400))  # (not read: too old)
    # After the first header: another client flagged the old message 4 meanwhile.
    proxy.arm(inject=(b"\r\n\r\n)\r\n", b"* 4 FETCH (FLAGS (\\Seen \\Flagged))\r\n"))
    decisions = by_subject(box.run())
    assert box.last_code == EX_OK, box.last_err
    assert [decisions[f"Garble {i}"]["action"] for i in (1, 2, 3)] == ["appended"] * 3


@pytest.mark.parametrize("noise", [b"\x93", b"LIST"])
def test_a_garbled_folder_list_that_loses_drafts_is_retried_not_a_setting(behind_proxy, noise) -> None:  # type: ignore[no-untyped-def]
    box, proxy = behind_proxy
    # Drafts' line, after Sent's STATUS (3 messages: HIGHESTMODSEQ 4), becomes
    # "* <noise>LIST ...": no LIST response, so Drafts would seem not to exist.
    _garbled_once(box, proxy, (b"HIGHESTMODSEQ 4)\r\n* ", noise), "cannot read while listing folders",
                  never="drafts_folder")
