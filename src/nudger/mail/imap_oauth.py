"""The IMAP login of an OAuth2 account: AUTHENTICATE XOAUTH2 or OAUTHBEARER with its
access token, and once more with a fresh one when the server refuses it.

imapclient's ``oauth2_login`` / ``oauthbearer_login`` answer every server challenge
with the token again, so the error challenge (RFC 7628: base64 JSON with a status)
never reaches us; this sends the same SASL strings through the same client call, but
reads that challenge, which tells an expired token from one not meant for mail.
The login with a password is here too (password_login), beside it.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from nudger.config.model import Account
from nudger.errors import AuthError
from nudger.mail.imap_errors import where
from nudger.mail.imap_pipeline import Answer, read_answers, send
from nudger.mail.imap_wire import read_capabilities
from nudger.oauth import sasl


class Bearer(Protocol):
    """An OAuth2 account's access tokens (oauth/tokens.py): the SASL mechanism, and a
    valid token, a fresh one when the server ``refused`` the one it was given."""

    @property
    def mechanism(self) -> str: ...

    def access_token(self, refused: str = "") -> str: ...


def bearer_login(client: Any, account: Account, bearer: Bearer) -> None:
    """Log ``client`` in as the account, or raise AuthError saying why the server refused."""
    mechanism, username, refused, said = bearer.mechanism, account.username, "", ""
    for _ in range(2):
        token = bearer.access_token(refused)
        challenges: list[bytes] = []

        def respond(challenge: bytes, token: str = token, seen: list[bytes] = challenges) -> str:
            seen.append(challenge)
            if len(seen) == 1:
                return sasl.initial_response(mechanism, username, token)
            return sasl.challenge_reply(mechanism)  # to an error challenge: let it say NO

        try:
            client._command_and_check("authenticate", mechanism, respond)
            return
        except IMAPClientAbortError:
            raise
        except IMAPClientError:
            refused, said = token, sasl.refusal(challenges[1] if len(challenges) > 1 else None)
            if said == "scope":
                break  # a fresh token has the same scopes
    at, name = where(account), account.name
    if said == "scope":
        raise AuthError(f"{at}: the server took the sign-in of {username} but not for mail "
                        f"(the token lacks the mail scope); check the app's permissions, then "
                        f"run: nudger auth {name}")
    raise AuthError(f"{at}: the server refused the access token for {username}, also a fresh "
                    f"one; check that accounts.{name}.username is the account you signed in "
                    f"with, then run: nudger auth {name}")


def password_login(client: Any, account: Account, password: str) -> Answer | None:
    """The other login, with a password: LOGIN carries only ASCII (RFC 3501 quoted
    strings); other credentials go as AUTHENTICATE PLAIN, which is UTF-8 (RFC 4616).
    Returns the answer to a LIST of every folder sent in LOGIN's write (None: not sent)."""
    username = account.username
    if all(" " <= c <= "~" for c in username + password):
        return _login_and_list(client, username, password)
    if (username + password).isascii():
        client.login(username, password)  # (a control character: as imaplib sends it)
    elif "AUTH=PLAIN" in read_capabilities(client.capabilities()):
        client.plain_login(username, password)
    else:
        raise AuthError(
            f"{where(account)}: the username or password has non-ASCII characters, which IMAP "
            "LOGIN cannot carry, and the server does not offer AUTHENTICATE PLAIN, which "
            "could; use an ASCII password (or have AUTH=PLAIN enabled on the server)")
    return None


def _login_and_list(client: Any, username: str, password: str) -> Answer:
    """LOGIN, and the LIST every cycle begins with in the same write: one round trip
    less. A server runs pipelined commands in order (RFC 3501 5.5), so the LIST runs
    logged in, or is refused with the login. Its answer is read here, so imaplib, which
    reads what comes next, never meets a tag it did not send."""
    imap = client._imap
    tags = send(imap, [b"LOGIN " + _quoted(username) + b" " + _quoted(password), LIST_ALL])
    (login,) = read_answers(imap.readline, imap.read, tags[:1])  # (a lost connection: raised)
    if not login.ok:  # (the LIST's refusal, after it, is not waited for: a server may hang up)
        raise LoginError(login.text)
    imap.state = "AUTH"
    # What the server offers once logged in: in the OK's code, or an untagged CAPABILITY
    # (else imapclient asks CAPABILITY when it is wanted, not what the greeting named).
    named = [found.group(1) for found in [_CAPABILITY.search(login.text.encode())] if found]
    named += [_line(rest) for rest in login.responses(b"CAPABILITY")]
    imap.untagged_responses.pop("CAPABILITY", None)
    if named:
        client._cached_capabilities = tuple(named[-1].upper().split())
    (listing,) = read_answers(imap.readline, imap.read, tags[1:])
    return listing


LIST_ALL = b'LIST "" "*"'
_CAPABILITY = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


def _line(rest: list[Any]) -> bytes:
    return rest[0][0] if isinstance(rest[0], tuple) else rest[0]


def _quoted(text: str) -> bytes:
    """An IMAP quoted string (RFC 3501 4.3) of printable ASCII."""
    return b'"' + text.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
