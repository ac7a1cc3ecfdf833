"""One contract for every ``Mailbox``: the same assertions against the in-memory twin and
against ``ImapMailbox`` on the suite's Dovecot (vdirsyncer's StorageTests are the model).

Each store seeds the same messages its own way (``MemoryMailbox.add``, an APPEND from a
separate client) and reads them back from outside the mailbox under test, so a read that
changed a message would show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nudger.config.load import parse_config
from nudger.mail.imap import connect
from nudger.mail.mailbox import Mailbox
from nudger.mail.memory import MemoryMailbox
from support.dovecot import Dovecot
from support.mail import config_text, message

Seed = tuple[bytes, tuple[str, ...], datetime]


def _flags(flags: Iterable[str | bytes]) -> frozenset[str]:
    """Flags as a set, without \\Recent: a flag of the session, not of the message."""
    text = (f.decode() if isinstance(f, bytes) else f for f in flags)
    return frozenset(f for f in text if f.lower() != "\\recent")


@dataclass
class MemoryStore:
    mailbox: MemoryMailbox

    def seed(self, folder: str, items: Iterable[Seed]) -> list[int]:
        return [self.mailbox.add(folder, data, flags, when) for data, flags, when in items]

    def stored(self, folder: str) -> dict[int, tuple[bytes, frozenset[str]]]:
        return {uid: (m.data, _flags(m.flags)) for uid, m in self.mailbox.folders[folder].messages.items()}


@dataclass
class DovecotStore:
    mailbox: Mailbox
    dovecot: Dovecot
    user: str

    def seed(self, folder: str, items: Iterable[Seed]) -> list[int]:
        return self.dovecot.seed(self.user, folder, list(items))

    def stored(self, folder: str) -> dict[int, tuple[bytes, frozenset[str]]]:
        client = self.dovecot.client(self.user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            got = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return {uid: (d[b"BODY[]"], _flags(d[b"FLAGS"])) for uid, d in got.items()}
        finally:
            client.logout()


Store = MemoryStore | DovecotStore


@pytest.fixture(params=["memory", "dovecot"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(MemoryMailbox())
        return
    dovecot: Dovecot = request.getfixturevalue("dovecot")
    user = dovecot.take_user()
    text = config_text(dovecot.port, user, tmp_path / "state")
    account = parse_config(text.encode(), tmp_path / "config.toml").accounts[0]
    mailbox = connect(account, dovecot.users[user])
    try:
        yield DovecotStore(mailbox, dovecot, user)
    finally:
        mailbox.close()


def _later(seconds: float, fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), fn(*args)))
    thread.start()
    return thread


WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _crlf(data: bytes) -> bytes:
    """Line ends as on the wire: a server stores and counts them so."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class TestMailboxContract:
    def test_waiting_without_news_answers_no_news(self, store: Store) -> None:
        assert store.mailbox.wait_for_news("INBOX", 0.5, threading.Event()) is False

    def test_a_message_arriving_while_waiting_is_news(self, store: Store) -> None:
        arriving = _later(0.3, store.seed, "INBOX", [(_crlf(message("new@example.com")), (), WHEN)])
        try:
            assert store.mailbox.wait_for_news("INBOX", 1.5, threading.Event()) is True
        finally:
            arriving.join()

    def test_a_wait_ends_soon_once_told_to_stop(self, store: Store) -> None:
        stop = threading.Event()
        stop.set()
        started = time.monotonic()
        assert store.mailbox.wait_for_news("INBOX", 30, stop) is False
        assert time.monotonic() - started < 5
