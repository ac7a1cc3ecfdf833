"""Each OAuth2 account's tokens, in ``state_dir/tokens/ACCOUNT.json`` (0600 in a 0700
directory), and the access token handed to the IMAP login.

Every read-refresh-write happens under an exclusive lock on ``ACCOUNT.lock``, so the
service, a `run --once` beside it and ``nudger auth`` never spend one refresh token twice.
A rotated refresh token (Microsoft sends a new one with every refresh) is written,
atomically, before the new access token is used: a crash after the refresh can lose
an access token, never the grant.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nudger.config.model import Account, OAuth2
from nudger.errors import AuthError, DeadGrant, StateReadOnly
from nudger.oauth import endpoint
from nudger.oauth.grants import (
    CLIENT_ERRORS,
    client_problem,
    dead_grant_sentence,
    is_dead_grant,
    needs_refresh,
)


class Tokens:
    """The tokens of one account; ``secret`` is the app's client secret ("" for none)."""

    def __init__(self, account: Account, secret: str = "", clock: Callable[[], float] = time.time):
        assert account.oauth2 is not None
        self.account, self.oauth2, self.secret, self.clock = account, account.oauth2, secret, clock
        self.path = self.oauth2.token_file

    @property
    def mechanism(self) -> str:
        return self.oauth2.sasl.upper()

    @contextmanager
    def locked(self) -> Iterator[None]:
        self._make_dir()
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # (closing releases the lock)

    def access_token(self, refused: str = "") -> str:
        """A valid access token: the kept one, or a fresh one when it is due, or when the
        server just ``refused`` it (unless another process refreshed it meanwhile)."""
        with self.locked():
            data = self.read()
            stale = needs_refresh(float(data.get("expires_at", 0)), self.clock(),
                                  float(data.get("lifetime", 3600)))
            if not stale and data["access_token"] != refused:
                return str(data["access_token"])
            return str(self._refresh(data)["access_token"])

    def refresh(self) -> dict[str, Any]:
        """A fresh access token now, whatever the kept one's age (``nudger auth --check``)."""
        with self.locked():
            return self._refresh(self.read())

    def read(self) -> dict[str, Any]:
        name = self.account.name
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeadGrant(f"{name}: not signed in yet; run: nudger auth {name}", self.path) from None
        except (OSError, ValueError) as exc:
            raise DeadGrant(f"{name}: cannot read its tokens in {self.path} "
                            f"({getattr(exc, 'strerror', None) or 'not JSON'}); run: nudger auth {name}",
                            self.path) from None
        if not isinstance(data, dict) or not data.get("access_token") or not data.get("refresh_token"):
            raise DeadGrant(f"{name}: its tokens in {self.path} are incomplete; run: nudger auth {name}",
                            self.path)
        return data

    def _refresh(self, data: dict[str, Any]) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": str(data["refresh_token"]),
                "client_id": self.oauth2.client_id, "scope": " ".join(self.oauth2.scopes)}
        got = self.request(form, f"{self.account.name}: refreshing the access token")
        got.setdefault("refresh_token", data["refresh_token"])  # kept unless rotated
        return self.save(got)

    def request(self, form: dict[str, str], doing: str) -> dict[str, Any]:
        """A token endpoint call; its refusals as sentences a person can act on."""
        if self.secret:
            form = {**form, "client_secret": self.secret}
        try:
            return endpoint.post(self.oauth2.token_url, form, doing)
        except endpoint.Refused as exc:
            raise refusal(self.account, self.oauth2, exc, self.path) from None

    def keep(self, got: dict[str, Any]) -> None:
        """Keep a new sign-in, under the lock: never interleaved with a refresh of the
        grant it replaces (a running service's)."""
        with self.locked():
            self.save(got)

    def save(self, got: dict[str, Any]) -> dict[str, Any]:
        """Keep a token endpoint's answer (atomically, 0600; the caller holds the lock);
        returns what was kept."""
        if not got.get("access_token") or not got.get("refresh_token"):
            raise AuthError(f"{self.account.name}: the provider gave no refresh token; the "
                            "scopes must include offline access (see the README)")
        lifetime = float(got.get("expires_in") or 3600)
        data = {"access_token": got["access_token"], "refresh_token": got["refresh_token"],
                "expires_at": self.clock() + lifetime, "lifetime": lifetime,
                "scope": got.get("scope", " ".join(self.oauth2.scopes)),
                "token_type": got.get("token_type", "Bearer"), "client_id": self.oauth2.client_id}
        self._make_dir()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateReadOnly(f"{self.account.name}: cannot write its tokens to {self.path}: "
                                f"{exc.strerror}") from None
        return data

    def _make_dir(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if directory.stat().st_mode & 0o077:
                directory.chmod(0o700)
        except OSError as exc:
            raise StateReadOnly(f"{self.account.name}: cannot use {directory} for its tokens: "
                                f"{exc.strerror}") from None


def refusal(account: Account, oauth2: OAuth2, exc: endpoint.Refused, watch: Path) -> AuthError:
    """The token endpoint's refusal as the error a person acts on (never with the form)."""
    if is_dead_grant(exc.error, exc.description):
        return DeadGrant(dead_grant_sentence(account.name, oauth2.provider, exc.error,
                                             exc.description), watch)
    if exc.error in CLIENT_ERRORS:
        return AuthError(client_problem(account.name, exc.error, exc.description))
    return AuthError(f"{account.name}: the provider refused the sign-in ({exc.error}); "
                     f"run: nudger auth {account.name}")
