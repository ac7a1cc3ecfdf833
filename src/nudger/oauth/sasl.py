"""What goes to the IMAP server: the SASL XOAUTH2 and OAUTHBEARER (RFC 7628) initial
responses, and what the server's error challenge says when it refuses a token (pure)."""

from __future__ import annotations

import json


def initial_response(mechanism: str, username: str, token: str) -> str:
    """The client's first message, before base64 (imaplib encodes it)."""
    if mechanism == "OAUTHBEARER":
        gs2 = "n,a=" + username.replace("=", "=3D").replace(",", "=2C") + ","
        return f"{gs2}\x01auth=Bearer {token}\x01\x01"
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


def challenge_reply(mechanism: str) -> str:
    """What the client answers to an error challenge, so that the server ends with NO."""
    return "\x01" if mechanism == "OAUTHBEARER" else ""


def refusal(challenge: bytes | None) -> str:
    """What an error challenge ({"status": ...}, RFC 7628 3.2.2) says: "scope" (the token
    is not for mail), "expired" (invalid or expired), or "" (no challenge, or unreadable)."""
    if not challenge:
        return ""
    try:
        status = str(json.loads(challenge.decode("utf-8", "replace")).get("status", ""))
    except (ValueError, AttributeError):
        return ""
    if status in ("403", "insufficient_scope"):
        return "scope"
    if status in ("400", "401", "invalid_token", "invalid_request"):
        return "expired"
    return ""
