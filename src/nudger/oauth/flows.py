"""Signing in: the device authorization grant (RFC 8628) and the authorization code
grant with PKCE (RFC 7636, S256) on a loopback redirect (RFC 8252).

The browser flow listens on 127.0.0.1 for the redirect, and at the same time reads a
pasted redirected URL from stdin (for a browser on another machine, e.g. over SSH).
The ``state`` sent is checked on the way back: a pasted address that was not ours ends
the sign-in; a request to the loopback that was not ours (a stray tab, a prefetch, a
forgery) is answered 400 and the wait goes on, until BROWSER_WAIT.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from nudger.errors import AuthError, UsageError, printable
from nudger.oauth import endpoint
from nudger.oauth.tokens import Tokens, refusal

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5.0  # seconds added to the polling interval at each slow_down (RFC 8628 3.5)
BROWSER_WAIT = 600.0  # seconds to wait for the redirect
REQUEST_WAIT = 10.0  # seconds one connection to the loopback may take to send its request

_DONE_PAGE = (b"<!doctype html><meta charset=utf-8><title>nudger</title>"
              b"<p>nudger is signed in. You can close this tab.</p>")
_NOT_OURS = "not the sign-in nudger is waiting for"


def _wait(seconds: float) -> None:
    time.sleep(seconds)


def device_flow(tokens: Tokens, out: IO[str]) -> None:
    """Show the code to enter, poll until the user approved, keep the tokens."""
    oauth2, name = tokens.oauth2, tokens.account.name
    form = {"client_id": oauth2.client_id, "scope": " ".join(oauth2.scopes)}
    try:
        got = endpoint.post(oauth2.device_authorization_url, form, f"{name}: starting the sign-in")
    except endpoint.Refused as exc:
        raise refusal(tokens.account, oauth2, exc, tokens.path) from None
    uri = got.get("verification_uri_complete") or got.get("verification_uri") or got.get("verification_url")
    # (The identity provider's words: shown as printable, as its errors are.)
    print(f"To sign in {tokens.account.username}, open {printable(str(uri))}", file=out)
    print(f"and enter the code {printable(str(got['user_code']))}", file=out)
    print("Waiting for you to approve ...", file=out, flush=True)
    interval = float(got.get("interval", 5))  # RFC 8628: 5 s when the server names none
    deadline = time.monotonic() + float(got.get("expires_in") or 900)
    poll = {"grant_type": DEVICE_GRANT, "device_code": str(got["device_code"]),
            "client_id": oauth2.client_id}
    while time.monotonic() < deadline:
        _wait(interval)
        try:
            tokens.keep(_poll(tokens, poll))
            return
        except endpoint.Refused as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
                continue
            if exc.error == "access_denied":
                raise AuthError(f"{name}: the sign-in was declined; nothing was saved") from None
            if exc.error == "expired_token":
                break
            raise refusal(tokens.account, oauth2, exc, tokens.path) from None
    raise AuthError(f"{name}: the code expired before it was entered; run: nudger auth {name}")


def _poll(tokens: Tokens, form: dict[str, str]) -> dict[str, Any]:
    if tokens.secret:
        form = {**form, "client_secret": tokens.secret}
    return endpoint.post(tokens.oauth2.token_url, form, f"{tokens.account.name}: waiting for approval")


def pkce_pair() -> tuple[str, str]:
    """A code verifier (43+ characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def browser_flow(tokens: Tokens, out: IO[str], port: int = 0, open_browser: bool = True,
                 stdin: IO[str] | None = None) -> None:
    """Send the user to the provider; take the code from the loopback redirect (or a
    pasted URL), check ``state``, exchange it with the verifier, keep the tokens."""
    oauth2, name = tokens.oauth2, tokens.account.name
    got: queue.Queue[str] = queue.Queue()
    state = secrets.token_urlsafe(24)
    try:
        # One thread a connection, each with a timeout: a client that connects and says
        # nothing (a browser's preconnect) never holds up the redirect behind it.
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(got, state))
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror})") from None
    server.daemon_threads = True
    redirect = f"http://{oauth2.redirect_host}:{server.server_address[1]}/"
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": oauth2.client_id, "redirect_uri": redirect,
              "scope": " ".join(oauth2.scopes), "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256", "login_hint": tokens.account.username,
              **dict(oauth2.authorize_params)}
    joint = "&" if "?" in oauth2.authorize_url else "?"
    url = oauth2.authorize_url + joint + urllib.parse.urlencode(params)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(target=_read_pasted, args=(stdin or sys.stdin, got), daemon=True).start()
    try:
        print(f"To sign in {tokens.account.username}, open this address in a browser:", file=out)
        print(url, file=out)
        print("Waiting for the sign-in (or paste the address the browser ended on) ...",
              file=out, flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        try:
            answer = got.get(timeout=BROWSER_WAIT)
        except queue.Empty:
            raise AuthError(f"{name}: no sign-in within {BROWSER_WAIT / 60:.0f} minutes; "
                            f"run: nudger auth {name}") from None
    finally:
        server.shutdown()
        server.server_close()
    code = _code(name, answer, state)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
            "client_id": oauth2.client_id, "code_verifier": verifier}
    tokens.keep(tokens.request(form, f"{name}: finishing the sign-in"))


def _code(name: str, answer: str, state: str) -> str:
    """The code of a redirected URL (or its query), once its state is ours."""
    query = urllib.parse.urlsplit(answer.strip()).query or answer.strip().lstrip("?")
    fields = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
    if not secrets.compare_digest(fields.get("state", ""), state):
        raise AuthError(f"{name}: refused a sign-in answer that is not the one nudger asked for "
                        f"(its state does not match); run: nudger auth {name}")
    if "error" in fields:
        detail = fields.get("error_description", "")[:200]
        raise AuthError(f"{name}: the sign-in was not completed ({fields['error']}"
                        f"{': ' + detail if detail else ''}); nothing was saved")
    if not fields.get("code"):
        raise AuthError(f"{name}: the address has no authorization code; run: nudger auth {name}")
    return fields["code"]


def _read_pasted(stdin: IO[str], got: queue.Queue[str]) -> None:
    for line in stdin:
        if "state=" in line:
            got.put(line)
            return


def _handler(got: queue.Queue[str], state: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        timeout = REQUEST_WAIT  # (StreamRequestHandler sets it on the connection's socket)

        def do_GET(self) -> None:
            query = urllib.parse.urlsplit(self.path).query
            given = urllib.parse.parse_qs(query).get("state", [""])[0]
            if not given:  # a browser's /favicon.ico, say
                self.send_error(404)
                return
            if not secrets.compare_digest(given, state):  # a stray or forged request: ignored
                self.send_error(400, explain=_NOT_OURS)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_DONE_PAGE)))
            self.end_headers()
            self.wfile.write(_DONE_PAGE)
            got.put(self.path)

        def log_message(self, format: str, *args: Any) -> None:  # the path holds the code
            pass

    return Redirect
