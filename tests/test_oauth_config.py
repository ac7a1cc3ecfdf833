"""OAuth2 accounts in the file (presets, custom servers, mistakes named by key), and the
pure facts of the sign-in: what a refusal means, when to refresh, what goes to IMAP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nudger.cli import main
from nudger.config.load import load_config
from nudger.errors import ConfigError
from nudger.oauth.grants import dead_grant_sentence, is_dead_grant, needs_refresh
from nudger.oauth.sasl import initial_response, refusal

ROOT = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, account: str, oauth2: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}/state"\n\n[accounts.work]\n'
                    f'username = "me@company.example"\n{account}\n[accounts.work.oauth2]\n{oauth2}\n')
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_microsoft_preset_fills_the_server_endpoints_and_scopes(tmp_path: Path) -> None:
    path = config(tmp_path, 'auth = "oauth2"', 'provider = "microsoft"\nclient_id = "abc"\n'
                                               'tenant = "organizations"')
    account = load_config(path).accounts[0]
    assert (account.host, account.port, account.tls) == ("outlook.office365.com", 993, "implicit")
    assert account.password is None and account.oauth2 is not None
    assert account.oauth2.token_url == "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    assert account.oauth2.device_authorization_url.endswith("/organizations/oauth2/v2.0/devicecode")
    assert account.oauth2.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All",
                                     "https://outlook.office.com/SMTP.Send", "offline_access")
    assert account.oauth2.token_file == tmp_path / "state" / "tokens" / "work.json"


def test_google_preset_and_a_host_given_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, 'auth = "oauth2"\nhost = "imap.example.org"',
                  'provider = "google"\nclient_id = "abc.apps.googleusercontent.com"\n'
                  'client_secret_command = ["true"]\nsasl = "oauthbearer"')
    account = load_config(path).accounts[0]
    assert (account.host, account.port) == ("imap.example.org", 993)
    assert account.oauth2 is not None and account.oauth2.scopes == ("https://mail.google.com/",)
    assert account.oauth2.device_authorization_url == ""  # Google has no device flow for mail
    assert main(["check-config", str(path)]) == 0
    assert "OAuth2 with google (OAUTHBEARER)" in capsys.readouterr().out


@pytest.mark.parametrize("account,oauth2,expected", [
    ('auth = "oauth2"', 'provider = "microsoft"\nclient_id = "x"\nscope = ["imap"]',
     'accounts.work.oauth2.scope: unknown key (did you mean "scopes"?)'),
    ('auth = "oauth2"', 'provider = "yahoo"\nclient_id = "x"',
     'accounts.work.oauth2.provider: "yahoo" is not one of microsoft, google, custom'),
    ('auth = "oauth2"', 'provider = "microsoft"', "accounts.work.oauth2.client_id: missing (required)"),
    ('auth = "oauth2"', 'provider = "google"\nclient_id = "x"\ntenant = "common"',
     'accounts.work.oauth2.tenant: only the "microsoft" provider has a tenant'),
    ('auth = "oauth2"', 'provider = "google"\nclient_id = "x"\nsasl = "plain"',
     'accounts.work.oauth2.sasl: "plain" is not one of xoauth2, oauthbearer'),
    ('auth = "oauth2"', 'provider = "microsoft"\nclient_id = "x"\ntoken_url = "https://a/t"',
     'accounts.work.oauth2.token_url: set by the "microsoft" preset'),
    ('auth = "oauth2"\nhost = "imap.example.org"', 'provider = "custom"\nclient_id = "x"\n'
     'authorize_url = "https://id.example/a"\nscopes = ["imap"]',
     'accounts.work.oauth2.token_url: missing (required with provider = "custom")'),
    ('auth = "oauth2"\nhost = "imap.example.org"', 'provider = "custom"\nclient_id = "x"\n'
     'authorize_url = "http://id.example/a"\ntoken_url = "https://id.example/t"\nscopes = ["imap"]',
     'accounts.work.oauth2.authorize_url: "http://id.example/a" must be an https:// address'),
    ('auth = "oauth2"\npassword_env = "X"', 'provider = "microsoft"\nclient_id = "x"',
     'accounts.work.password_env: not used with auth = "oauth2"'),
    ('auth = "oauth"', 'provider = "microsoft"\nclient_id = "x"',
     'accounts.work.auth: "oauth" is not one of password, oauth2'),
    ('host = "imap.example.org"\npassword_env = "X"', 'provider = "microsoft"\nclient_id = "x"',
     'accounts.work.oauth2: used only with auth = "oauth2"'),
])
def test_mistakes_are_named_by_key(tmp_path: Path, account: str, oauth2: str, expected: str) -> None:
    found = problems(config(tmp_path, account, oauth2))
    assert any(expected in p for p in found), found


def test_a_missing_oauth2_table_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.work]\nusername = "me@company.example"\nauth = "oauth2"\n')
    assert any('accounts.work.oauth2: missing: auth = "oauth2" needs' in p for p in problems(path))


def test_auth_for_a_password_account_or_an_unknown_one(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.home]\nhost = "imap.example.org"\nusername = "me@example.org"\n'
                    'password_env = "X"\n')
    assert main(["--config", str(path), "auth", "home"]) == 78
    assert "accounts.home.auth: \"nudger auth\" is for accounts with auth = \"oauth2\"" in capsys.readouterr().err
    assert main(["--config", str(path), "auth", "work"]) == 2
    assert 'no account "work"' in capsys.readouterr().err


def test_the_example_shows_both_providers_commented(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text()
    for name, provider in (("office", "microsoft"), ("gmail", "google")):
        block = re.search(rf"^# \[accounts\.{name}\]\n(?:# .*\n)+?#\n", text, re.M)
        assert block, name
        body = "\n".join(line[2:] for line in block.group(0).splitlines() if line.startswith("# "))
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n{body}\n')
        account = load_config(path).accounts[0]  # uncommented, a valid account
        assert account.oauth2 is not None and account.oauth2.provider == provider


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider,error,description,cause", [
    ("microsoft", "invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.",
     "it was not used for 90 days (AADSTS700082)"),
    ("microsoft", "invalid_grant", "AADSTS65001: The user or administrator has not consented",
     "consent to the app was withdrawn, or an administrator must grant it (AADSTS65001)"),
    ("microsoft", "invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked",
     "the password was changed or the sign-in sessions were revoked (AADSTS50173)"),
    ("google", "invalid_grant", "Token has been expired or revoked.",
     'or the Google Cloud project is still in "Testing", where sign-ins end after 7 days'),
    ("custom", "invalid_grant", "", "the sign-in was revoked or has expired (invalid_grant)"),
])
def test_a_dead_grant_is_one_sentence_with_its_cause_and_the_command(
        provider: str, error: str, description: str, cause: str) -> None:
    assert is_dead_grant(error, description)
    sentence = dead_grant_sentence("work", provider, error, description)
    assert sentence.startswith("work: the sign-in has ended: ") and cause in sentence
    assert sentence.endswith("run: nudger auth work")


def test_client_mistakes_and_busy_answers_are_no_dead_grant() -> None:
    assert not is_dead_grant("invalid_client", "AADSTS7000218: client_assertion or client_secret")
    assert not is_dead_grant("temporarily_unavailable", "")


def test_refresh_ahead_of_expiry() -> None:
    assert not needs_refresh(expires_at=10_000, now=10_000 - 301)
    assert needs_refresh(expires_at=10_000, now=10_000 - 299)
    assert needs_refresh(expires_at=10_000, now=10_001)
    # A short-lived token is refreshed in its last half, not at every login.
    assert not needs_refresh(expires_at=10_000, now=10_000 - 31, lifetime=60)


def test_sasl_strings_and_the_servers_refusals() -> None:
    assert initial_response("XOAUTH2", "me@x.example", "T") == "user=me@x.example\x01auth=Bearer T\x01\x01"
    assert initial_response("OAUTHBEARER", "a,b=c@x", "T") == "n,a=a=2Cb=3Dc@x,\x01auth=Bearer T\x01\x01"
    assert refusal(b'{"status":"401","schemes":"bearer","scope":"mail"}') == "expired"  # Dovecot
    assert refusal(b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}') == "expired"
    assert refusal(b'{"status":"insufficient_scope","scope":"mail"}') == "scope"
    assert refusal(b'{"status":"403"}') == "scope"
    assert refusal(None) == "" and refusal(b"not json") == ""


@pytest.mark.parametrize("provider,server", [
    ('provider = "microsoft"\nclient_id = "abc"', ("smtp.office365.com", 587, "starttls")),
    ('provider = "google"\nclient_id = "abc"\nclient_secret_command = ["true"]',
     ("smtp.gmail.com", 465, "implicit")),
])
def test_an_oauth2_accounts_smtp_table_takes_its_providers_server_and_tokens(
        tmp_path: Path, provider: str, server: tuple[str, int, str]) -> None:
    path = config(tmp_path, 'auth = "oauth2"', provider)
    path.write_text(path.read_text() + "\n[accounts.work.smtp]\n")
    smtp = load_config(path).accounts[0].smtp
    assert smtp is not None and (smtp.host, smtp.port, smtp.tls) == server
    assert smtp.password is None  # it logs in with the account's tokens (XOAUTH2)
    assert smtp.save_sent is None  # "auto": these providers file what they send
