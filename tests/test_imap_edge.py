"""The IMAP edge against real Dovecot servers: folders, logins, TLS, weaker servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import private_server

from nudger.config.load import load_config
from nudger.errors import EX_CONFIG, EX_NOPERM, EX_OK, EX_TEMPFAIL
from nudger.mail.imap import connect
from nudger.mail.layout import Layout, discover
from nudger.mail.mailbox import Mark
from support.dovecot import WEAK_CAPABILITY, Dovecot
from support.harness import by_subject, make_box
from support.mail import config_text, days_ago, message

pytestmark = pytest.mark.imap


@pytest.fixture(scope="module")
def plain_names() -> Iterator[Dovecot]:
    """A server whose folders carry no SPECIAL-USE flags, only usual names."""
    with private_server(folders={"Sent Items": "", "Drafts": "", "Deleted Items": "", "Spam": "",
                                 "Projects": ""}) as server:
        yield server


@pytest.fixture(scope="module")
def gmail_like() -> Iterator[Dovecot]:
    with private_server(folders={"[Gmail]/Sent Mail": "\\Sent", "[Gmail]/Drafts": "\\Drafts",
                                 "[Gmail]/All Mail": "\\All", "[Gmail]/Trash": "\\Trash",
                                 "Work": ""}) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server() -> Iterator[Dovecot]:
    with private_server(tls=True) as server:
        yield server


def _layout(server: Dovecot, tmp_path: Path) -> Layout:
    """Log in as a fresh user of ``server`` and discover its folders, as a cycle does."""
    user = server.take_user()
    path = tmp_path / "c.toml"
    path.write_text(config_text(server.port, user, tmp_path / "s"))
    box = connect(load_config(path).accounts[0], server.users[user])
    try:
        return discover(box.list_folders())
    finally:
        box.close()


def test_folders_found_by_special_use(dovecot: Dovecot, tmp_path: Path) -> None:
    layout = _layout(dovecot, tmp_path)
    assert (layout.sent, layout.drafts) == ("Sent", "Drafts")
    assert layout.how["sent"] == "SPECIAL-USE \\Sent"
    assert set(layout.watched) == {"INBOX", "Sent", "Archive"}


def test_folders_found_by_usual_names(plain_names: Dovecot, tmp_path: Path) -> None:
    layout = _layout(plain_names, tmp_path)
    assert (layout.sent, layout.drafts) == ("Sent Items", "Drafts")
    assert layout.how["sent"] == "common name"
    assert set(layout.watched) == {"INBOX", "Sent Items", "Projects"}


def test_gmail_layout_watches_all_mail_and_sent(gmail_like: Dovecot, tmp_path: Path) -> None:
    layout = _layout(gmail_like, tmp_path)
    assert (layout.sent, layout.drafts) == ("[Gmail]/Sent Mail", "[Gmail]/Drafts")
    assert set(layout.watched) == {"[Gmail]/All Mail", "[Gmail]/Sent Mail"}


def test_a_configured_folder_that_does_not_exist_is_named(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                          monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch,
                   extra_account='sent_folder = "Sent Mail"')
    box.run()
    assert box.last_code == EX_CONFIG
    assert "sent_folder: no folder named 'Sent Mail' on the server" in box.last_err


def test_refused_login_exits_77_with_one_line_and_no_secret(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                            capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", "wrong-Pa55word!")
    decisions = box.run("-vv")
    assert box.last_code == EX_NOPERM
    assert decisions == []
    assert f"the server refused the login for {imap_user}" in box.last_err
    assert "wrong-Pa55word!" not in box.last_err and "Traceback" not in box.last_err


def test_unreachable_server_is_a_temporary_failure(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                   monkeypatch) -> None:
    from support.dovecot import free_port

    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.config.write_text(box.config.read_text().replace(f"port = {dovecot.port}",
                                                          f"port = {free_port()}"))
    box.run()
    assert box.last_code == EX_TEMPFAIL and "connection failed while logging in" in box.last_err


def test_tls_with_the_servers_ca_works_and_without_it_is_refused(tls_server, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                                 monkeypatch) -> None:
    user = tls_server.take_user()
    box = make_box(tls_server, user, tmp_path, capsys, monkeypatch)
    plain = box.config.read_text()
    box.seed("Sent", message("t1@example.com", sender=user, subject="Over TLS", date=days_ago(6)))
    implicit = plain.replace(f"port = {tls_server.port}", f"port = {tls_server.tls_port}").replace(
        'tls = "none"', 'tls = "implicit"')
    box.config.write_text(implicit)
    box.run()
    # Retrying cannot make a certificate verify: a configuration error, with what to set.
    assert box.last_code == EX_CONFIG, box.last_err
    assert "the TLS certificate of 127.0.0.1 did not verify (self-signed certificate)" in box.last_err
    assert "accounts.test.ca_file" in box.last_err and "accounts.test.tls" in box.last_err
    box.config.write_text(implicit.replace('tls = "implicit"',
                                           f'tls = "implicit"\nca_file = "{tls_server.cert_path}"'))
    assert by_subject(box.run("--dry-run"))["Over TLS"]["status"] == "due"
    assert box.last_code == 0
    starttls = plain.replace('tls = "none"', f'tls = "starttls"\nca_file = "{tls_server.cert_path}"')
    box.config.write_text(starttls)
    assert by_subject(box.run())["Over TLS"]["action"] == "appended"


def test_server_without_condstore_or_special_use_gives_the_same_drafts(weak, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                                      monkeypatch) -> None:
    user = weak.take_user()
    box = make_box(weak, user, tmp_path, capsys, monkeypatch)
    box.seed("Sent", message("w1@example.com", sender=user, subject="Weak server", date=days_ago(6)))
    box.seed("INBOX", message("w2r@client.example", sender="bob@client.example", to=user,
                              subject="Re: other", date=days_ago(5), reply_to="w2@example.com"))
    box.seed("Sent", message("w2@example.com", sender=user, subject="other", date=days_ago(6)))
    decisions = by_subject(box.run())
    assert decisions["Weak server"]["action"] == "appended"
    assert decisions["other"]["status"] == "replied"
    assert [d["Subject"] for d in box.drafts()] == ["Re: Weak server"]


def test_first_sync_on_a_server_allowing_one_connection(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A first sync needs one connection (its folders' searches share one round trip): a
    # server that allows no second one serves it alike.
    results = []
    for limit in (1, 10):
        with private_server(users=1, max_connections=limit) as server:
            (tmp_path / str(limit)).mkdir()
            box = make_box(server, server.take_user(), tmp_path / str(limit), capsys, monkeypatch)
            box.seed("Sent", *[message(f"one{i}@example.com", sender=box.user, to=f"p{i}@client.example",
                                       subject=f"One {i}", date=days_ago(6)) for i in range(4)])
            box.seed("Archive", message("r1@client.example", sender="p1@client.example", to=box.user,
                                        subject="Re: One 1", date=days_ago(5), reply_to="one1@example.com"))
            box.seed("INBOX", message("r2@client.example", sender="p2@client.example", to=box.user,
                                      subject="Re: One 2", date=days_ago(5), reply_to="one2@example.com"))
            time.sleep(0.3)  # the seeding sessions are logged
            seeded = len(server.sessions(box.user))
            decisions = box.run()
            assert box.last_code == 0, box.last_err
            results.append(sorted((d["subject"], d["status"], d.get("action")) for d in decisions))
            deadline = time.monotonic() + 5  # sessions are logged a moment after logout
            while len(server.sessions(box.user)) < seeded + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            assert len(server.sessions(box.user)) - seeded == 1
    assert results[0] == results[1]
    statuses = {subject: (status, action) for subject, status, action in results[0]}
    assert statuses["One 1"][0] == statuses["One 2"][0] == "replied"  # answers in Archive, INBOX
    assert statuses["One 0"][1] == statuses["One 3"][1] == "appended", statuses


def test_the_daemon_stops_with_78_on_a_certificate_that_does_not_verify(tls_server, tmp_path,  # type: ignore[no-untyped-def]
                                                                       capsys, monkeypatch) -> None:
    box = make_box(tls_server, tls_server.take_user(), tmp_path, capsys, monkeypatch)
    box.config.write_text(box.config.read_text().replace(
        f"port = {tls_server.port}", f"port = {tls_server.tls_port}").replace('tls = "none"', 'tls = "implicit"'))
    env = {**os.environ, "NUDGER_TEST_PASSWORD": tls_server.users[box.user]}
    done = subprocess.run([sys.executable, "-m", "nudger", "--config", str(box.config), "run"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == EX_CONFIG, done.stderr  # no retry loop: systemd shows why
    assert "did not verify" in done.stderr and "ca_file" in done.stderr


def test_starttls_required_but_not_offered_is_a_configuration_error(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                    capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.config.write_text(box.config.read_text().replace('tls = "none"', 'tls = "starttls"'))
    box.run()
    assert box.last_code == EX_CONFIG, box.last_err
    assert "127.0.0.1" in box.last_err and "does not offer STARTTLS" in box.last_err
    assert 'accounts.test.tls = "starttls"' in box.last_err


def test_a_ca_file_that_is_not_a_certificate_fails_check_config(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                               capsys, monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    bogus = tmp_path / "ca.pem"
    bogus.write_text("this is my password, not a certificate\n")
    box.config.write_text(box.config.read_text().replace(
        'tls = "none"', f'tls = "implicit"\nca_file = "{bogus}"'))
    code, _out, err = box.cli("check-config")
    assert code == EX_CONFIG
    assert f"accounts.test.ca_file: {bogus} is not a certificate in PEM form" in err
    box.run()
    assert box.last_code == EX_CONFIG and "internal error" not in box.last_err
    # Certificate-shaped but not one: what only TLS itself can tell is still a sentence.
    bogus.write_text("-----BEGIN CERTIFICATE-----\nMANhYmM=\n-----END CERTIFICATE-----\n")
    box.run()
    assert box.last_code == EX_CONFIG, box.last_err
    assert "accounts.test.ca_file: cannot use" in box.last_err


# LOGIN carries ASCII as a quoted string, the folder listing in its write (a quote or
# backslash left bare would end the string early); other characters go as AUTHENTICATE PLAIN.
@pytest.mark.parametrize("password", ['say "hi" \\ back\\slash {12} ~', "Pässwörd-€-ß"],
                         ids=["quoted", "non-ascii"])
def test_a_password_logs_in_whatever_its_characters(password, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                    monkeypatch) -> None:
    from conftest import _need_dovecot

    server = Dovecot(_need_dovecot())
    user = server.add_user("someone@example.com", password)
    server.start()
    try:
        box = make_box(server, user, tmp_path, capsys, monkeypatch)
        box.seed("Sent", message("u1@example.com", sender=user, subject="Grüße", date=days_ago(6)))
        assert by_subject(box.run())["Grüße"]["action"] == "appended", box.last_err
        assert box.last_code == EX_OK
    finally:
        server.cleanup()


def test_a_non_ascii_password_without_authenticate_plain_is_refused_clearly(tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                                             monkeypatch) -> None:
    from conftest import _need_dovecot

    server = Dovecot(_need_dovecot(), auth_mechanisms="login")
    user = server.add_user("umlaut@example.com", "Pässwörd")
    server.start()
    try:
        box = make_box(server, user, tmp_path, capsys, monkeypatch)
        box.run()
        assert box.last_code == EX_NOPERM, box.last_err  # retrying cannot help
        assert "non-ASCII characters, which IMAP LOGIN cannot carry" in box.last_err
        assert "Pässwörd" not in box.last_err
    finally:
        server.cleanup()


def test_a_certificate_for_another_name_is_named_as_such(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with private_server(users=1, tls=True, cert_names="DNS:mail.example.org") as server:
        box = make_box(server, server.take_user(), tmp_path, capsys, monkeypatch)
        box.config.write_text(box.config.read_text().replace(
            f"port = {server.port}", f"port = {server.tls_port}").replace(
            'tls = "none"', f'tls = "implicit"\nca_file = "{server.cert_path}"'))
        box.run()
        assert box.last_code == EX_CONFIG, box.last_err
        assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in box.last_err
        assert "accounts.test.host must be a name the certificate is for" in box.last_err


@pytest.fixture(scope="module")
def no_unselect() -> Iterator[Dovecot]:
    """A server without UNSELECT (RFC 3691): a SELECTed folder is left by EXAMINE."""
    with private_server(capability=WEAK_CAPABILITY.replace(" UNSELECT", "")) as server:
        yield server


def test_without_unselect_a_follow_up_is_withdrawn_and_the_users_deleted_draft_kept(  # type: ignore[no-untyped-def]
        no_unselect, tmp_path, capsys, monkeypatch) -> None:
    user = no_unselect.take_user()
    box = make_box(no_unselect, user, tmp_path, capsys, monkeypatch)
    box.seed("Drafts", message("half@example.com", sender=user, subject="Half written"),
             flags=("\\Draft", "\\Deleted"))
    box.seed("Sent", message("u1@example.com", sender=user, subject="Quote", date=days_ago(6)))
    assert by_subject(box.run())["Quote"]["action"] == "appended"
    box.seed("INBOX", message("u1r@client.example", sender="bob@client.example", to=user,
                              subject="Re: Quote", date=days_ago(0.1), reply_to="u1@example.com"))
    decisions = by_subject(box.run())
    assert box.last_code == EX_OK, box.last_err
    assert decisions["Quote"]["action"] == "withdrawn"
    [(_, flags)] = box.raw("Drafts").values()  # only the user's, still marked deleted
    assert b"\\Deleted" in flags
    assert [d["Subject"] for d in box.drafts()] == ["Half written"]


def test_without_unselect_our_draft_is_marked_and_the_connection_goes_on(  # type: ignore[no-untyped-def]
        no_unselect, tmp_path) -> None:
    user = no_unselect.take_user()
    ours = "<nudger.0123abcd.s1@example.com>"
    [theirs, uid] = no_unselect.seed(user, "Drafts", [
        (message("half@example.com", sender=user), ("\\Draft", "\\Deleted"), None),
        (message(ours, sender=user), ("\\Draft",), None)])
    path = tmp_path / "c.toml"
    path.write_text(config_text(no_unselect.port, user, tmp_path / "s"))
    box = connect(load_config(path).accounts[0], no_unselect.users[user])
    try:
        assert box.mark_own_draft("Drafts", uid, ours, "$NudgerSending") == Mark.SET
        flags = {k: set(v) for k, v in box.fetch_flags("Drafts", [theirs, uid]).items()}
        assert flags == {theirs: {"\\Deleted", "\\Draft"}, uid: {"$NudgerSending", "\\Draft"}}
        assert box.find_message_id("Drafts", ours) == [uid]
    finally:
        box.close()


def _logouts(server: Dovecot, user: str) -> list[str]:
    lines = server.log_path.read_text(errors="replace").splitlines() if server.log_path.exists() else []
    return [line for line in lines if f"imap({user})" in line and "Disconnected" in line]


def test_a_run_that_finds_its_state_in_use_logs_out_of_the_server(dovecot, imap_user, tmp_path,  # type: ignore[no-untyped-def]
                                                                   capsys, monkeypatch) -> None:
    """`run --once` logs in while it loads (app/connect.py): when another instance holds
    the state, it says so and logs out, leaving no connection open behind it."""
    from nudger.cycle.lock import lock_state_dir

    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    before = len(_logouts(dovecot, imap_user))
    held = lock_state_dir(tmp_path / "state")
    try:
        box.run()
    finally:
        os.close(held)
    assert box.last_code != EX_OK and "already using" in box.last_err
    deadline = time.monotonic() + 10
    while len(_logouts(dovecot, imap_user)) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # (Dovecot writes the line as the session ends)
    new = _logouts(dovecot, imap_user)[before:]
    assert len(new) == 1 and "Logged out" in new[0], new
