"""A real SMTP server for the suite: aiosmtpd on 127.0.0.1, STARTTLS (or implicit TLS)
with a self-signed certificate made at test time by openssl, AUTH PLAIN/LOGIN checked
against the users given, and an ``auth_XOAUTH2`` hook for OAuth2 accounts. It records
every message it accepted, so a test asserts what was sent: envelope, headers, body."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support.dovecot import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str

    @property
    def message(self) -> EmailMessage:
        msg = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg


class Recorder:
    """The server's handler: keeps what it accepted; ``refuse`` answers DATA instead."""

    def __init__(self, tokens: dict[str, str]):
        self.received: list[Received] = []
        self.refuse: str | None = None  # e.g. "554 5.7.1 Message rejected"
        self.tokens = tokens  # XOAUTH2: user -> the one access token it takes
        self.check_token: Callable[[str, str], bool] | None = None  # or ask an identity provider

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse is not None:
            return self.refuse
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else \
            str(session.auth_data or "")
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content), login))
        return "250 2.0.0 OK: queued"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        """AUTH XOAUTH2 base64("user=U\\x01auth=Bearer T\\x01\\x01") (Google's and Microsoft's)."""
        blob = args[1] if len(args) > 1 else ""
        try:
            fields = dict(p.split("=", 1) for p in base64.b64decode(blob).decode().split("\x01") if p)
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(token) and (self.check_token(user, token) if self.check_token is not None
                              else self.tokens.get(user) == token)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class SmtpServer:
    def __init__(self, directory: Path, users: dict[str, str], tls: str = "starttls",
                 smtputf8: bool = True):
        if shutil.which("openssl") is None:
            pytest.skip("openssl is not installed: the SMTP tests need it for a certificate")
        self.dir, self.users, self.tls = directory, users, tls
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "smtp-cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.dir / "smtp-key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.dir / "smtp-key.pem")
        self.handler = Recorder({})
        self.port = free_port()
        tls_args: dict[str, Any] = ({"ssl_context": context} if tls == "implicit" else
                                    {"tls_context": context, "require_starttls": True})
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, authenticator=self._check,
            auth_required=True, auth_require_tls=tls == "starttls", enable_SMTPUTF8=smtputf8,
            **tls_args)
        self.controller.start()

    def _check(self, server: Any, session: Any, envelope: Any, mechanism: str,
               auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=self.users.get(login) == password, handled=False,
                          auth_data=auth_data)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def config(self, **extra: str) -> str:
        """The [accounts.test.smtp] table for this server (credentials: the IMAP ones)."""
        lines = ["[accounts.test.smtp]", 'host = "127.0.0.1"', f"port = {self.port}",
                 f'tls = "{self.tls}"', f'ca_file = "{self.cert}"']
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self.controller.stop()
