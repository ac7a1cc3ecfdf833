"""What the token endpoint's answers mean, and when a token is due for a refresh (pure).

A refused refresh is either a dead grant (only signing in again helps: the sentence
names the account, the likely cause and the command) or a mistake in the app
registration; Microsoft names the cause with an AADSTS code in error_description.
"""

from __future__ import annotations

import re

REFRESH_AHEAD = 300.0  # seconds before expiry: a token never expires during a cycle's login

# The AADSTS codes that mean the user's grant is gone, with what a person would call it.
AADSTS_CAUSES = {
    "AADSTS700082": "it was not used for 90 days",
    "AADSTS700084": "it was not used for a long time",
    "AADSTS65001": "consent to the app was withdrawn, or an administrator must grant it",
    "AADSTS50173": "the password was changed or the sign-in sessions were revoked",
    "AADSTS70000": "the grant was revoked or has expired",
    "AADSTS70008": "the grant has expired",
    "AADSTS50076": "your organisation now asks for multi-factor sign-in",
    "AADSTS50079": "your organisation now asks for multi-factor sign-in",
    "AADSTS53003": "a conditional access policy of your organisation blocked it",
}
DEAD_ERRORS = ("invalid_grant", "interaction_required", "consent_required", "login_required")
CLIENT_ERRORS = ("invalid_client", "unauthorized_client", "invalid_scope")


def aadsts_code(description: str) -> str:
    """The AADSTS code a Microsoft error_description starts with, or ""."""
    found = re.search(r"\bAADSTS\d+\b", description)
    return found.group(0) if found else ""


def is_dead_grant(error: str, description: str) -> bool:
    return error in DEAD_ERRORS or aadsts_code(description) in AADSTS_CAUSES


def likely_cause(provider: str, error: str, description: str) -> str:
    """Why the grant died, as its user would put it."""
    code = aadsts_code(description)
    if code in AADSTS_CAUSES:
        return f"{AADSTS_CAUSES[code]} ({code})"
    if provider == "google":
        return ("access was revoked, or the Google Cloud project is still in \"Testing\", "
                "where sign-ins end after 7 days (set it to \"In production\")")
    return f"the sign-in was revoked or has expired ({error})"


def dead_grant_sentence(account: str, provider: str, error: str, description: str) -> str:
    return (f"{account}: the sign-in has ended: {likely_cause(provider, error, description)}; "
            f"run: nudger auth {account}")


def client_problem(account: str, error: str, description: str) -> str:
    """A refusal that signing in again will not cure: the app registration's settings."""
    code = aadsts_code(description)
    return (f"{account}: the provider refused nudger's app ({error}{', ' + code if code else ''}); "
            f"check accounts.{account}.oauth2.client_id and client_secret_command, and the "
            "app registration (see the README, \"Signing in with OAuth2\")")


def needs_refresh(expires_at: float, now: float, lifetime: float = 3600.0) -> bool:
    """Whether an access token valid until ``expires_at`` should be replaced ``now``: in
    its last 5 minutes, or last half when it lives less than 10 (else every login would
    refresh a short-lived token again)."""
    return now >= expires_at - min(REFRESH_AHEAD, lifetime / 2)
