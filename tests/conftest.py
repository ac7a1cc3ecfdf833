"""Shared fixtures: a private Dovecot for everything that touches IMAP, and the corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.dovecot import Dovecot, find_dovecot

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def _need_dovecot() -> str:
    binary = find_dovecot()
    if binary is None:
        reason = ("Dovecot is not installed (apt-get install dovecot-imapd): "
                  "the IMAP tests cannot run")
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- and CI=true requires them", pytrace=False)
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(_need_dovecot())
    server.free_users = server.pool(400)  # type: ignore[attr-defined]
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A fresh, empty mailbox on the shared server for each test."""
    return dovecot.free_users.pop(0)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        reason = f"the shared corpus is not at {CORPUS} (it lives beside the project checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- and CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return CORPUS
