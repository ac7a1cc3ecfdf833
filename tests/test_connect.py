"""The first account's mailbox opened while nudger loads (app/connect.py)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from nudger.app import connect
from nudger.config.load import load_config
from nudger.errors import AuthError, ServerConfigError, TemporaryError
from support.dovecot import Dovecot
from support.mail import config_text
from support.proxy import FaultyProxy


def _account(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(config_text(1, "me@example.org", tmp_path / "s"))
    return load_config(path).accounts[0]


def test_what_opening_raised_is_raised_where_the_mailbox_is_taken(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refused = AuthError("the server refused the login for me@example.org")
    where: list[str] = []

    def log_in(account: object, dialled: object = None) -> object:
        where.append(threading.current_thread().name)
        raise refused

    monkeypatch.setattr(connect, "_logged_in", log_in)
    early = connect.Early(_account(tmp_path))
    with pytest.raises(AuthError) as caught:
        early.take()
    assert caught.value is refused and where != [threading.main_thread().name]


@pytest.mark.imap
def test_what_listing_raised_is_raised_where_the_mailbox_is_taken_and_it_is_logged_out(
        dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No such Sent folder: what run_cycle would have said, said by take(); the server sees
    # the login, the listing and a LOGOUT, and no folder opened.
    user = dovecot.take_user()
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", dovecot.users[user])
    proxy = FaultyProxy(dovecot.port)
    try:
        path = tmp_path / "c.toml"
        path.write_text(config_text(proxy.port, user, tmp_path / "s", extra_account='sent_folder = "Nowhere"'))
        with pytest.raises(ServerConfigError) as caught:
            connect.Early(load_config(path).accounts[0]).take()
        assert "sent_folder: no folder named 'Nowhere' on the server" in str(caught.value)
        deadline = time.monotonic() + 10
        while not any(b" LOGOUT" in line for line in proxy.commands()) and time.monotonic() < deadline:
            time.sleep(0.02)
        said = [line.split(b" ", 2)[1] for line in proxy.commands()]
        assert said[0] == b"LOGIN" and b"LIST" in said and said[-1] == b"LOGOUT"
        assert b"EXAMINE" not in said and b"SELECT" not in said
    finally:
        proxy.close()


def test_a_connection_still_being_made_does_not_hold_up_an_interrupt(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(connect, "_logged_in", lambda account, dialled=None: release.wait(30))
    monkeypatch.setattr(connect, "DISCARD_WAIT", 0.2)
    early = connect.Early(_account(tmp_path))
    started = time.monotonic()
    early.discard()
    assert time.monotonic() - started < 5  # (the server's 30 s are not waited out)
    release.set()


def test_the_server_is_dialled_while_what_logging_in_runs_is_still_loading(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The TCP handshake (and the greeting, and TLS's) is under way during the imports.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    loading, dialled = threading.Event(), []

    def load(account: object) -> None:
        loading.set()
        conn, _ = listener.accept()  # (within the loading: else this waits out its 10 s)
        dialled.append(conn)

    monkeypatch.setattr(connect, "_load_login", load)
    monkeypatch.setattr(connect, "_logged_in", lambda account, dialled=None: dialled())
    monkeypatch.setattr(connect, "_mailbox_of", lambda account, logged_in: logged_in)
    monkeypatch.setattr(connect, "_head_start", lambda mailbox, account: "head")
    account = _account(tmp_path)
    account = replace(account, port=listener.getsockname()[1])
    early = connect.Early(account)
    taken, head = early.take()
    assert loading.is_set() and dialled, "not dialled while loading"
    assert dialled[0].getpeername() == taken.getsockname()  # (the login is given that connection)
    assert head == "head"
    taken.close()
    for s in (dialled[0], listener):
        s.close()


def test_a_server_refusing_the_connection_is_reported_as_without_dialling_early(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", "secret")
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # (nothing listens there now)
    account = _account(tmp_path)
    account = replace(account, port=port)
    with pytest.raises(TemporaryError) as early:
        connect.Early(account).take()
    with pytest.raises(TemporaryError) as late:
        connect.open_mailbox(account)
    assert str(early.value) == str(late.value)
    assert f"127.0.0.1:{port}" in str(early.value) and "refused" in str(early.value)


def test_imapclient_loads_with_its_own_version_but_without_the_metadata_machinery() -> None:
    # (A fresh interpreter: this one imported imapclient long ago.) What a login imports
    # must not load importlib.metadata, which imapclient's version module would (about
    # 20 ms before the first command); imapclient still tells its true version.
    import subprocess
    import sys

    code = ("import sys, nudger.mail.imap_login\n"
            "print('importlib.metadata' in sys.modules)\n"
            "import imapclient, importlib.metadata\n"
            "print(imapclient.__version__ == importlib.metadata.version('imapclient'),"
            " imapclient.version_info[:3] == tuple(map(int, imapclient.__version__.split('.'))))\n"
            # (a name only imapclient's own version module has: that module, imported after all)
            "from imapclient.version import metadata\n"
            "print(metadata is importlib.metadata)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "True"]
