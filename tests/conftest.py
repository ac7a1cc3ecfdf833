"""Shared fixtures: a private Dovecot for everything that touches IMAP, and the corpus."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.dovecot import WEAK_CAPABILITY, Dovecot, find_dovecot
from support.harness import Box, make_box
from support.smtpd import SmtpServer

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def pytest_configure(config: pytest.Config) -> None:
    """Under plain ``faketime DATE`` (libfaketime fakes, or freezes, the monotonic clock
    too) every timed wait in Python blocks forever: the suite runs itself again with the
    monotonic clock real and the wall clock as faked (scripts/test-dates does the same)."""
    if "faketime" not in os.environ.get("LD_PRELOAD", "") or os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC"):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # (the run again writes to the terminal)
    mend = str(Path(__file__).resolve().parents[1] / "scripts" / "faketime")  # (time.sleep)
    path = os.pathsep.join(p for p in (mend, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "PYTHONPATH": path}
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *config.invocation_params.args], env)


def _need_dovecot() -> str:
    binary = find_dovecot()
    if binary is None:
        reason = ("Dovecot is not installed (apt-get install dovecot-imapd): "
                  "the IMAP tests cannot run")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- and CI=true requires them", pytrace=False)
        pytest.skip(reason)
    return binary


@contextmanager
def private_server(users: int = 20, **options: Any) -> Iterator[Dovecot]:
    """Another private Dovecot (other folders, capabilities, TLS), stopped afterwards."""
    server = Dovecot(_need_dovecot(), **options)
    server.pool(users)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with private_server(400) as server:
        yield server


@pytest.fixture(scope="session")
def weak() -> Iterator[Dovecot]:
    """Like Office 365: no CONDSTORE, ENABLE or SPECIAL-USE capability."""
    with private_server(capability=WEAK_CAPABILITY) as server:
        yield server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A fresh, empty mailbox on the shared server for each test."""
    return dovecot.take_user()


@pytest.fixture
def smtp(tmp_path: Path, dovecot: Dovecot, imap_user: str) -> Iterator[SmtpServer]:
    """An SMTP server of the test's own (aiosmtpd: STARTTLS, AUTH) taking the user's login."""
    server = SmtpServer(tmp_path / "smtp", {imap_user: dovecot.users[imap_user]})
    yield server
    server.stop()


@pytest.fixture
def sending_box(request: pytest.FixtureRequest, dovecot: Dovecot, imap_user: str, tmp_path: Path,
                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                smtp: SmtpServer) -> Box:
    """The user's mailbox, its account sending through ``smtp``, with the module's RULES."""
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=request.module.RULES,
                    extra_account=smtp.config())


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        reason = f"the shared corpus is not at {CORPUS} (it lives beside the project checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- and CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return CORPUS


# A test that needs a server carries the imap mark, whatever its file says: the mark
# follows the fixtures (`-m "not imap"` then runs without Dovecot, e.g. under faketime).
SERVER_FIXTURES = {"dovecot", "weak", "imap_user"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.imap)
