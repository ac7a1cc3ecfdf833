"""The parts of the file that let nudger send: ``send_after`` needs an account that can
send, and ``[digest]`` names when and for which accounts the morning summary goes out."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from nudger.config.check import Checker, kind_of
from nudger.config.model import Account, Digest, Rule

DEFAULT_DIGEST_AT = time(8, 0)


def check_senders(check: Checker, rules: tuple[Rule, ...], accounts: tuple[Account, ...]) -> None:
    """A rule that sends must cover at least one account with an [smtp] table."""
    smtp = {a.name for a in accounts if a.smtp is not None}
    for i, rule in enumerate(rules):
        if rule.send_after is None or not accounts:
            continue
        covered = set(rule.accounts) if rule.accounts else {a.name for a in accounts}
        if not covered & smtp:
            names = ", ".join(sorted(covered))
            check.fail(f"rules[{i}].send_after", f"no account this rule covers ({names}) can send: "
                       "add an [accounts.NAME.smtp] table, or remove send_after")


def check_digest(check: Checker, value: Any, accounts: tuple[Account, ...]) -> Digest | None:
    """[digest]: at = "HH:MM" in each account's zone; accounts default to those with [smtp]."""
    if value is None:
        return None
    table = check.table(value, "digest", ("at", "accounts"))
    at = DEFAULT_DIGEST_AT
    given = table.get("at")
    if given is not None:
        match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*", given) if isinstance(given, str) else None
        if match is None:
            check.fail("digest.at", f'{kind_of(given)} is not a time of day like "08:00"')
        else:
            at = time(int(match[1]), int(match[2]))
    by_name = {a.name: a for a in accounts}
    names = check.strings(table, "accounts", "digest")
    if names is None:
        names = tuple(a.name for a in accounts if a.smtp is not None)
        if accounts and not names:
            check.fail("digest", "no account can send the digest: add an [accounts.NAME.smtp] table")
    for i, name in enumerate(names):
        if name not in by_name:
            check.fail(f"digest.accounts[{i}]", f'no account named "{name}"')
        elif by_name[name].smtp is None:
            check.fail(f"digest.accounts[{i}]", f'account "{name}" has no [accounts.{name}.smtp] table '
                                                "to send the digest with")
    return Digest(at, tuple(names))
