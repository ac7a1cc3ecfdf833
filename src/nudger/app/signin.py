"""`nudger auth ACCOUNT`: sign an OAuth2 account in (device flow or browser), or check
that its tokens still open the mailbox (--check); and the tokens the IMAP login uses."""

from __future__ import annotations

import sys
from datetime import datetime

from nudger.app.passwords import read_password
from nudger.config.model import Account, Config, PasswordSource
from nudger.errors import EX_OK, ConfigError, UsageError
from nudger.oauth.flows import browser_flow, device_flow
from nudger.oauth.tokens import Tokens


def tokens_for(account: Account) -> Tokens:
    """The account's tokens, with its app's client secret read from its command (if any)."""
    assert account.oauth2 is not None
    command = account.oauth2.client_secret_command
    secret = read_password(PasswordSource("command", command=command), account.name,
                           where=f"accounts.{account.name}.oauth2.client_secret_command") if command else ""
    return Tokens(account, secret)


def run_auth(config: Config, name: str, *, device: bool = False, browser: bool = False,
             port: int = 0, no_browser: bool = False, check: bool = False) -> int:
    account = next((a for a in config.accounts if a.name == name), None)
    if account is None:
        known = ", ".join(a.name for a in config.accounts)
        raise UsageError(f'no account "{name}" in {config.path} (accounts: {known})')
    if account.oauth2 is None:
        raise ConfigError([f'{config.path.name}: accounts.{name}.auth: "nudger auth" is for '
                           f'accounts with auth = "oauth2"; this one uses a password'])
    tokens = tokens_for(account)
    if check:
        return _check(account, tokens)
    has_device = bool(account.oauth2.device_authorization_url)
    if device and not has_device:
        raise UsageError(f"--device: the {account.oauth2.provider} provider has no device flow "
                         f"for mail (set oauth2.device_authorization_url, or use --browser)")
    if device or (has_device and not browser):
        device_flow(tokens, sys.stdout)
    else:
        browser_flow(tokens, sys.stdout, port=port, open_browser=not no_browser)
    print(f"{name}: signed in; the tokens are kept in {tokens.path}")
    print(f"Check it with: nudger auth {name} --check")
    return EX_OK


def _check(account: Account, tokens: Tokens) -> int:
    """Refresh the access token, log in with it, say what was found."""
    from nudger.mail.imap import connect

    until = datetime.fromtimestamp(float(tokens.refresh()["expires_at"])).astimezone(account.timezone)
    print(f"{account.name}: the sign-in is alive; a fresh access token is good until "
          f"{until:%H:%M %Z}")
    mailbox = connect(account, tokens)
    try:
        print(f"{account.name}: logged in to {account.host}:{account.port} as {account.username} "
              f"({tokens.mechanism})")
    finally:
        mailbox.close()
    return EX_OK
