"""The parts of the file that let nudger send, and the pure decisions about sending."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from nudger.config.load import load_config
from nudger.config.model import Account, PasswordSource, Smtp
from nudger.core.durations import Delay
from nudger.core.sending import envelope, outgoing, saves_copy, send_time
from nudger.errors import ConfigError

ACCOUNT = """
[accounts.work]
host = "imap.example.com"
username = "me@example.com"
password_env = "X"
timezone = "Europe/Berlin"
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return load_config(path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value.problems


def test_smtp_takes_the_imap_credentials_and_its_port_from_tls(tmp_path: Path) -> None:
    config = _load(tmp_path, ACCOUNT + '[accounts.work.smtp]\nhost = "smtp.example.com"\ntls = "starttls"\n'
                   '[[rules]]\nname = "r"\nsend_after = "1 day"\n[digest]\n')
    smtp = config.accounts[0].smtp
    assert smtp == Smtp("smtp.example.com", 587, "starttls", "me@example.com", PasswordSource("env", env="X"))
    assert config.rules[0].send_after == Delay(timedelta(days=1))
    assert config.digest is not None and config.digest.at == time(8, 0) and config.digest.accounts == ("work",)


def test_smtp_mistakes_are_named_by_their_key(tmp_path: Path) -> None:
    found = _problems(tmp_path, ACCOUNT + '[accounts.work.smtp]\nhost = "smtp.example.com"\ntls = "none"\n'
                      'save_sent = "yes"\nport = 0\n[digest]\nat = "8 am"\naccounts = ["home"]\n')
    assert found == [
        'config.toml: accounts.work.smtp.tls: "none" sends the password in clear text; it is allowed only '
        'for loopback hosts, not "smtp.example.com" (use "implicit" or "starttls")',
        "config.toml: accounts.work.smtp.port: 0 is not a port number (1-65535)",
        'config.toml: accounts.work.smtp.save_sent: expected "auto", true or false, got "yes" (a string)',
        'config.toml: digest.at: "8 am" (a string) is not a time of day like "08:00"',
        'config.toml: digest.accounts[0]: no account named "home"',
    ]
    assert _problems(tmp_path, ACCOUNT + '[accounts.work.smtp]\nhost = "smtp.example.com"\n') == [
        'config.toml: accounts.work.smtp.tls: missing (required): "implicit" (port 465) or "starttls" (port 587)']


def test_send_after_and_the_digest_need_an_account_that_can_send(tmp_path: Path) -> None:
    assert _problems(tmp_path, ACCOUNT + '[[rules]]\nname = "r"\nsend_after = "1 day"\n[digest]\n') == [
        "config.toml: digest: no account can send the digest: add an [accounts.NAME.smtp] table",
        "config.toml: rules[0].send_after: no account this rule covers (work) can send: add an "
        "[accounts.NAME.smtp] table, or remove send_after",
    ]


def _account(**smtp: object) -> Account:
    from zoneinfo import ZoneInfo

    source = PasswordSource("env", env="X")
    spec = Smtp(str(smtp.get("host", "smtp.example.com")), 587, "starttls", "me@example.com", source,
                save_sent=smtp.get("save_sent"))  # type: ignore[arg-type]
    return Account("work", "imap.example.com", 993, "implicit", "me@example.com", source,
                   ("me@example.com",), ZoneInfo("Europe/Berlin"), smtp=spec,
                   quiet_hours=(time(20, 0), time(8, 0)))


@pytest.mark.parametrize("host,saved", [("smtp.gmail.com", False), ("smtp.office365.com", False),
                                        ("smtp-mail.outlook.com", False), ("smtp.fastmail.com", True),
                                        ("mail.example.com", True)])
def test_auto_puts_a_copy_in_sent_except_where_the_server_files_it(host: str, saved: bool) -> None:
    smtp = _account(host=host).smtp
    assert smtp is not None and saves_copy(smtp) is saved
    forced = _account(host=host, save_sent=True).smtp
    assert forced is not None and saves_copy(forced)


def test_a_send_waits_for_a_working_day_and_the_end_of_the_quiet_hours() -> None:
    account = _account()
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # 19:30 in Berlin
    # +1 day is Saturday 19:30: not a working day, so Monday at the same time.
    assert send_time(friday_evening, Delay(timedelta(days=1)), account).isoformat() == "2026-11-30T19:30:00+01:00"
    late = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # Tuesday 22:00 in Berlin: +1 day is quiet
    assert send_time(late, Delay(timedelta(days=1)), account).isoformat() == "2026-11-26T08:00:00+01:00"


def test_the_sent_message_is_the_draft_without_our_headers_and_freshly_dated() -> None:
    from zoneinfo import ZoneInfo

    draft = (b"From: Mia <me@example.com>\r\nTo: Bob <bob@x.example>, c@y.example\r\nCc: d@z.example\r\n"
             b"Subject: Re: Offer\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <nudger.1.s1@example.com>\r\n"
             b"In-Reply-To: <offer@example.com>\r\nX-Nudger-For: <offer@example.com>; stage=1\r\n"
             b"X-Nudger-Digest: sha256=" + b"0" * 64 + b"\r\n\r\nHi Bob,\r\n")
    msg = outgoing(draft, datetime(2026, 11, 30, 10, 0, tzinfo=UTC), ZoneInfo("Europe/Berlin"))
    assert msg["Date"] == "Mon, 30 Nov 2026 11:00:00 +0100"
    assert "X-Nudger-For" not in msg and "X-Nudger-Digest" not in msg
    assert msg["Message-ID"] == "<nudger.1.s1@example.com>" and msg["In-Reply-To"] == "<offer@example.com>"
    assert envelope(msg) == ("me@example.com", ["bob@x.example", "c@y.example", "d@z.example"])


def test_check_config_says_what_sends(tmp_path: Path) -> None:
    from nudger.config.summary import summary

    config = _load(tmp_path, ACCOUNT + '[accounts.work.smtp]\nhost = "smtp.gmail.com"\ntls = "implicit"\n'
                   '[[rules]]\nname = "r"\nsend_after = "1 day"\n[digest]\nat = "07:30"\n')
    text = summary(config)
    assert "    sends through smtp.gmail.com:465 (implicit) as me@example.com, copy in Sent: auto" in text
    assert "rules[0] r: any message -> 3 business days (gentle); sent by nudger 1d after drafting" in text
    assert "  digest at 07:30 to work" in text


def test_a_login_the_server_wants_is_no_refusal_of_the_message() -> None:
    from nudger.mail.smtp import SendRefused

    assert SendRefused("x", 554).permanent and not SendRefused("x", 451).permanent
    assert not SendRefused("x", 530).permanent  # "Authentication required": tried again later
