"""What a file leaves out: every default comes from the model, written once."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from nudger.config.load import load_config
from nudger.config.model import DEFAULT_RULE, Account, Daemon, PasswordSource
from nudger.core.durations import Delay

MINIMAL = """
[accounts.work]
host = "imap.example.com"
username = "me@example.com"
password_env = "X"
timezone = "UTC"
"""


def test_a_minimal_account_takes_every_default_of_the_model(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    config = load_config(path)
    # Only the required fields are given here: the rest are Account's own defaults.
    assert config.accounts == (Account("work", "imap.example.com", 993, "implicit", "me@example.com",
                                       PasswordSource("env", env="X"), ("me@example.com",),
                                       ZoneInfo("UTC")),)
    assert config.daemon == Daemon(config.daemon.state_dir)


def test_without_rules_the_one_default_rule_waits_3_business_days(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    rules = load_config(path).rules
    assert rules == (DEFAULT_RULE,)
    assert [(s.after, s.template) for s in rules[0].stages] == [(Delay(business_days=3), "gentle")]
