"""A user's mailbox on the private Dovecot, plus nudger pointed at it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from nudger.app.worker import Clock, Home, Worker, open_mailbox
from nudger.cli import main
from nudger.config.load import load_config
from nudger.cycle.cycle import CycleResult
from support.dovecot import Dovecot
from support.mail import NOW, config_text


@dataclass
class Box:
    dovecot: Dovecot
    user: str
    config: Path
    capsys: pytest.CaptureFixture[str]
    last_err: str = ""
    last_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def seed(self, folder: str, *messages: bytes, flags: Iterable[str] = ("\\Seen",),
             when: datetime | None = None) -> list[int]:
        return self.dovecot.seed(self.user, folder, [(m, tuple(flags), when) for m in messages])

    def run(self, *args: str, now: datetime = NOW) -> list[dict[str, Any]]:
        """`nudger run --once --json --all --now NOW`; returns the JSON decisions."""
        self.capsys.readouterr()
        self.last_code = main(["--config", str(self.config), "run", "--once", "--json",
                               "--all", "--now", now.isoformat(), *args])
        out, self.last_err = self.capsys.readouterr()
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def cli(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def raw(self, folder: str) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
        """Every message of a folder, bytes and flags, read without changing anything."""
        client = self.dovecot.client(self.user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            got = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
            return {uid: (d[b"BODY[]"], tuple(sorted(d[b"FLAGS"]))) for uid, d in got.items()}
        finally:
            client.logout()

    def delete_drafts(self, uids: list[int] | None = None) -> None:
        """What a user's client does when they delete drafts (all, or these UIDs)."""
        self.dovecot.clear_folder(self.user, "Drafts", uids)

    def drafts(self) -> list[EmailMessage]:
        return [BytesParser(policy=policy.default).parsebytes(data)  # type: ignore[misc]
                for data, _ in self.raw("Drafts").values()]

    def snapshot(self) -> dict[str, dict[int, tuple[bytes, tuple[bytes, ...]]]]:
        client = self.dovecot.client(self.user)
        try:
            names = [name for _, _, name in client.list_folders()]
        finally:
            client.logout()
        return {name: self.raw(name) for name in names}


def make_box(dovecot: Dovecot, user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch, **config: Any) -> Box:
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", dovecot.users[user])
    path = tmp_path / "config.toml"
    path.write_text(config_text(dovecot.port, user, tmp_path / "state", **config))
    return Box(dovecot, user, path, capsys)


def text(draft: EmailMessage) -> str:
    """The draft's text as its user reads it."""
    return draft.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def by_subject(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["subject"]: d for d in decisions}


@contextmanager
def fast_worker(config_path: Path, on_cycle: Callable[[str, CycleResult], None]) -> Iterator[Worker]:
    """The service's worker for the configuration's first account, started, its clock at
    NOW and its polls a second apart (the configuration allows 10 s at least: too slow for
    a test); stopped, and its state directory let go, afterwards."""
    config = load_config(config_path)
    config = replace(config, daemon=replace(config.daemon, poll_interval=timedelta(seconds=1)))
    home = Home(config.daemon.state_dir)
    worker = Worker(config, config.accounts[0], on_cycle, open_mailbox, home=home, clock=Clock(NOW))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        worker.join(10)
        home.close()
