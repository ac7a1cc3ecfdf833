"""The first account's mailbox opened while nudger loads (app/connect.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nudger.app import connect
from nudger.config.load import load_config
from nudger.errors import AuthError
from support.mail import config_text


def _account(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(config_text(1, "me@example.org", tmp_path / "s"))
    return load_config(path).accounts[0]


def test_what_opening_raised_is_raised_where_the_mailbox_is_taken(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    refused = AuthError("the server refused the login for me@example.org")
    where: list[str] = []

    def opener(account: object) -> object:
        where.append(threading.current_thread().name)
        raise refused

    monkeypatch.setattr(connect, "open_mailbox", opener)
    early = connect.Early(_account(tmp_path))
    with pytest.raises(AuthError) as caught:
        early.take()
    assert caught.value is refused and where != [threading.main_thread().name]


def test_a_connection_still_being_made_does_not_hold_up_an_interrupt(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(connect, "open_mailbox", lambda account: release.wait(30))
    monkeypatch.setattr(connect, "DISCARD_WAIT", 0.2)
    early = connect.Early(_account(tmp_path))
    started = time.monotonic()
    early.discard()
    assert time.monotonic() - started < 5  # (the server's 30 s are not waited out)
    release.set()
