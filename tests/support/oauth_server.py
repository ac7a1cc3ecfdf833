"""A fake OAuth2 authorization server on 127.0.0.1 (stdlib http.server, in a thread).

It speaks what nudger and Dovecot need: ``/authorize`` (the browser's step: redirects
to the loopback ``redirect_uri`` with ``code`` and ``state``), ``/token`` (checks the
PKCE verifier; ``authorization_code``, ``refresh_token`` with rotation, the device
code with scripted ``authorization_pending`` / ``slow_down``), ``/device`` and
``/introspect`` (RFC 7662, asked by Dovecot's oauth2 passdb). A test plays the user
and the provider's operator: who signs in, revoking a grant, expiring tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class _Grant:
    user: str
    scope: str
    refresh: str
    live: bool = True


@dataclass
class FakeOAuth:
    """The server's state; ``user`` is who signs in at /authorize or approves a device code."""

    user: str = ""
    expires_in: int = 3600
    rotate: bool = True  # Microsoft: a new refresh token with every refresh; Google: none
    device_script: list[str] = field(default_factory=list)  # errors before the device code is granted
    token_status: int = 200  # e.g. 503: the token endpoint is down
    client_secret: str = ""  # when set, /token wants it (as Google does)
    user_code: str = ""  # the code /device hands out, when set (else eight random digits)
    log: list[str] = field(default_factory=list)  # "grant_type" of each /token call, in order
    codes: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)  # by refresh token
    access: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # token -> user, scope, until
    issued: list[str] = field(default_factory=list)  # every token and code handed out (for leak checks)

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke(self, user: str) -> None:
        """The user (or an admin) revoked consent: every refresh token of theirs is dead."""
        for grant in self.grants.values():
            if grant.user == user:
                grant.live = False

    def expire_access(self) -> None:
        """Every access token handed out is now expired (as if an hour had passed)."""
        self.access = {t: (u, s, 0.0) for t, (u, s, _) in self.access.items()}

    def _new(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(12)}"
        self.issued.append(value)
        return value

    def tokens_for(self, user: str, scope: str, grant: _Grant | None = None) -> dict[str, Any]:
        access = self._new("at")
        self.access[access] = (user, scope, time.monotonic() + self.expires_in)
        got = {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in,
               "scope": scope}
        if grant is None or self.rotate:
            if grant is not None:
                grant.live = False  # rotated: the old refresh token is spent
            grant = _Grant(user, scope, self._new("rt"))
            self.grants[grant.refresh] = grant
            got["refresh_token"] = grant.refresh
        return got


def _pkce_ok(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeOAuth
    protocol_version = "HTTP/1.1"  # keep-alive, as Dovecot's HTTP client expects

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: str, status: int = 400, description: str = "") -> None:
        self._json(status, {"error": error, **({"error_description": description} if description else {})})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._error("not_found", 404)
            return
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        fake = self.server_state
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
            self._error("invalid_request")
            return
        code = fake._new("code")
        fake.codes[code] = (q["code_challenge"], q["redirect_uri"], fake.user, q.get("scope", ""))
        self.send_response(302)
        self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        path = urlsplit(self.path).path
        fake = self.server_state
        if path == "/introspect":
            user, scope, until = fake.access.get(form.get("token", ""), ("", "", 0.0))
            if user and until > time.monotonic():
                self._json(200, {"active": "true", "username": user, "scope": scope})
            else:
                self._json(200, {"active": "false"})
        elif path == "/device":
            device = fake._new("dc")
            user_code = fake.user_code or f"{secrets.randbelow(10**8):08d}"
            fake.devices[device] = (fake.user, form.get("scope", ""))
            self._json(200, {"device_code": device, "user_code": user_code,
                             "verification_uri": f"{fake.url}/devicelogin", "expires_in": 900,
                             "interval": 1})
        elif path == "/token":
            self._token(fake, form)
        else:
            self._error("not_found", 404)

    def _token(self, fake: FakeOAuth, form: dict[str, str]) -> None:
        kind = form.get("grant_type", "")
        fake.log.append(kind)
        if fake.token_status != 200:
            self._json(fake.token_status, {"error": "temporarily_unavailable"})
            return
        if fake.client_secret and form.get("client_secret") != fake.client_secret:
            self._error("invalid_client", 401, "Unauthorized")
            return
        if kind == "authorization_code":
            got = fake.codes.pop(form.get("code", ""), None)
            if got is None or got[1] != form.get("redirect_uri"):
                self._error("invalid_grant", description="unknown code or redirect_uri")
            elif not _pkce_ok(form.get("code_verifier", ""), got[0]):
                self._error("invalid_grant", description="PKCE verification failed")
            else:
                self._json(200, fake.tokens_for(got[2], got[3]))
        elif kind == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") not in fake.devices:
                self._error("expired_token")
            elif fake.device_script:
                self._error(fake.device_script.pop(0))
            else:
                user, scope = fake.devices.pop(form["device_code"])
                self._json(200, fake.tokens_for(user, scope))
        elif kind == "refresh_token":
            grant = fake.grants.get(form.get("refresh_token", ""))
            if grant is None or not grant.live:
                self._error("invalid_grant", description="AADSTS70000: The provided grant has "
                            "expired due to it being revoked")
            else:
                self._json(200, fake.tokens_for(grant.user, grant.scope, grant))
        else:
            self._error("unsupported_grant_type")
