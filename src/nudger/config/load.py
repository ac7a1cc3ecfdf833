"""Find, read and validate the TOML configuration into frozen, typed objects (``config.model``).

Everything wrong with a file is collected and reported at once, each problem naming
the file, the key path and what was expected; nothing connects before this passes.
The accounts' tables are validated in ``config.accounts``; here the file as a whole,
the daemon, the templates and the rules.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from nudger.config.accounts import check_accounts
from nudger.config.check import Checker, close_matches, kind_of
from nudger.config.model import (
    BUILTIN_TEMPLATES,
    DEFAULT_DELAY,
    DEFAULT_RULE,
    DEFAULT_TEMPLATE,
    MAX_THANKS_DELAY,
    PLACEHOLDERS,
    Account,
    Config,
    Daemon,
    Meetings,
    Rule,
    Stage,
    Template,
)
from nudger.config.sending import check_digest, check_senders
from nudger.core.addresses import canonical
from nudger.core.durations import parse_delay, parse_duration
from nudger.core.language import LANGUAGES
from nudger.errors import ConfigError


def default_config_paths() -> list[Path]:
    """$NUDGER_CONFIG if set, then the XDG place."""
    paths = []
    if os.environ.get("NUDGER_CONFIG"):
        paths.append(Path(os.environ["NUDGER_CONFIG"]).expanduser())
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(xdg) / "nudger" / "config.toml")
    return paths


def default_state_dir() -> Path:
    """systemd's $STATE_DIRECTORY (StateDirectory=, one per instance), else the XDG place."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return Path(given)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nudger"


def find_config(explicit: str | None) -> Path:
    """The file given, else the first default place that has one."""
    candidates = [Path(explicit).expanduser()] if explicit else default_config_paths()
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    hint = "" if explicit else " (copy config.example.toml there, or pass --config PATH)"
    raise ConfigError([f"no configuration file found; tried {tried}{hint}"])


def load_config(path: Path) -> Config:
    """The file at ``path``, read and validated (ConfigError lists all that is wrong)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return parse_config(raw, path)


def parse_config(raw: bytes, path: Path) -> Config:
    """Validate TOML text; ``path`` names the file in messages and guards inline passwords."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    check = Checker(path)
    top = check.table(data, "", ("daemon", "accounts", "rules", "templates", "meetings", "digest"))
    daemon = _daemon(check, top.get("daemon", {}))
    templates = _templates(check, top.get("templates", {}))
    accounts = check_accounts(check, top.get("accounts"), daemon.state_dir)
    rules = _rules(check, top.get("rules"), templates, accounts)
    meetings = _meetings(check, top.get("meetings", {}), templates)
    digest = check_digest(check, top.get("digest"), accounts)
    check_senders(check, rules, accounts)
    check.raise_problems()
    return Config(path, daemon, accounts, rules, templates, meetings, digest)


def _meetings(check: Checker, value: Any, templates: Mapping[str, Template]) -> Meetings:
    """[meetings]: thank-you drafts after meetings, off unless asked for."""
    table = check.table(value, "meetings", ("thank_you", "after", "template", "recurring"))
    on = check.typed(table.get("thank_you"), "meetings.thank_you", bool, "true or false")
    after = check.parsed(table.get("after"), "meetings.after", parse_duration, 'try "2h" or "30m"')
    if after is not None and after > MAX_THANKS_DELAY:
        check.fail("meetings.after", f'"{table["after"]}" is too late: a thank-you comes within '
                                     "24 hours of the meeting (try \"2h\")")
    template = check.string(table, "template", "meetings") or Meetings.template
    _known_template(check, template, "meetings.template", templates)
    recurring = check.typed(table.get("recurring"), "meetings.recurring", bool, "true or false")
    return Meetings(thank_you=bool(on), after=Meetings.after if after is None else after,
                    template=template, recurring=bool(recurring))


def _daemon(check: Checker, value: Any) -> Daemon:
    """[daemon]: where state is kept and how often to poll (not too often)."""
    table = check.table(value, "daemon", ("poll_interval", "state_dir"))
    interval = check.parsed(table.get("poll_interval"), "daemon.poll_interval", parse_duration,
                            'try "90s", "5m" or "1h"')
    if interval is not None and interval < timedelta(seconds=10):
        check.fail("daemon.poll_interval", "must be at least 10s, to be kind to the server")
    state_dir = check.string(table, "state_dir", "daemon")
    path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    return Daemon(state_dir=path, poll_interval=interval or Daemon.poll_interval)


def _templates(check: Checker, value: Any) -> dict[str, Template]:
    """The built-in templates and the file's: a ``body``, and a table per language for its
    own text (``[templates.NAME.de] body = ...``). A template of the file replaces the
    built-in of its name whole, variants included."""
    result = dict(BUILTIN_TEMPLATES)
    names = tuple(value) if isinstance(value, dict) else ()
    for name, spec in check.table(value, "templates", names).items():
        key = f"templates.{name}"
        table = check.table(spec, key, ("body", *LANGUAGES))
        body = _body(check, table, key)
        if body is None and "body" not in table and isinstance(spec, dict):
            check.fail(key, 'missing "body" (the text for every language without its own '
                            f'[{key}.LANG] table)')
        variants = []
        for lang in (lang for lang in LANGUAGES if lang in table):
            spec_lang = check.table(table[lang], f"{key}.{lang}", ("body",))
            if isinstance(table[lang], dict) and "body" not in spec_lang:
                check.fail(f"{key}.{lang}", 'missing "body"')
            variant = _body(check, spec_lang, f"{key}.{lang}")
            if variant is not None:
                variants.append((lang, variant))
        if body is not None:
            result[name] = Template(name, body, tuple(variants))
    return result


def _body(check: Checker, table: dict[str, Any], key: str) -> str | None:
    """A template's ``body`` at ``key``, whose placeholders must all be known."""
    body = check.string(table, "body", key)
    if body is None:
        return None
    try:
        fields = _placeholders(body)
    except ValueError as exc:
        check.fail(f"{key}.body", f"broken placeholder: {exc} (write {{{{ for a literal {{)")
        return None
    for placeholder in fields:
        if placeholder not in PLACEHOLDERS:
            close = close_matches(placeholder, PLACEHOLDERS)
            hint = f'did you mean "{{{close[0]}}}"?' if close else (
                "known: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
            check.fail(f"{key}.body", f'unknown placeholder "{{{placeholder}}}" ({hint})')
    return body


def _placeholders(body: str) -> list[str]:
    """The {names} a template uses; raises ValueError on a broken brace."""
    return [name for _, name, _, _ in string.Formatter().parse(body) if name is not None]


_DELAY_HINT = 'try "3d" or "2 business days"'


def _rules(check: Checker, value: Any, templates: Mapping[str, Template],
           accounts: tuple[Account, ...]) -> tuple[Rule, ...]:
    """The [[rules]] in order (the first that matches wins); the default rule if none."""
    if value is None:
        return (DEFAULT_RULE,)
    if not isinstance(value, list):
        check.fail("rules", f"expected [[rules]] tables, got {kind_of(value)}")
        return ()
    rules = []
    for i, spec in enumerate(value):
        rule = _rule(check, f"rules[{i}]", spec, templates, accounts)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(check: Checker, key: str, spec: Any, templates: Mapping[str, Template],
          accounts: tuple[Account, ...]) -> Rule | None:
    """One [[rules]] table; unnamed, it is called by its place ("rules[2]")."""
    table = check.table(spec, key, ("name", "match", "after", "stages", "template", "recipients",
                                    "send_after"))
    if not table and not isinstance(spec, dict):
        return None
    name = check.string(table, "name", key) or key
    to, subject, account_names = _match(check, table.get("match", {}), f"{key}.match", accounts)
    after = check.parsed(table.get("after"), f"{key}.after", parse_delay, _DELAY_HINT,
                         above_zero=True)
    template = check.string(table, "template", key) or DEFAULT_TEMPLATE
    _known_template(check, template, f"{key}.template", templates)
    stages = _stages(check, table, key, Stage(after or DEFAULT_DELAY, template), templates)
    recipients = check.string(table, "recipients", key) or Rule.recipients
    if recipients not in ("all", "non-repliers"):
        check.fail(f"{key}.recipients", f'"{recipients}" is not "all" or "non-repliers"')
    send_after = check.parsed(table.get("send_after"), f"{key}.send_after", parse_delay,
                              'try "1 day" or "2 business days"', above_zero=True)
    return Rule(name, stages, to, subject, account_names, recipients, send_after)


def _match(check: Checker, value: Any, key: str, accounts: tuple[Account, ...],
           ) -> tuple[tuple[str, ...], re.Pattern[str] | None, tuple[str, ...]]:
    """A rule's match: recipient globs (lower-cased), a subject regex, account names."""
    match = check.table(value, key, ("to", "subject", "account"))
    to = check.strings(match, "to", key) or ()
    subject = None
    pattern = check.string(match, "subject", key)
    if pattern is not None:
        try:
            subject = re.compile(pattern)
        except re.error as exc:
            check.fail(f"{key}.subject", f'"{pattern}" is not a regular expression: {exc}')
    account_names = check.strings(match, "account", key) or ()
    known_accounts = {a.name for a in accounts}
    for acc in account_names:
        if known_accounts and acc not in known_accounts:
            check.fail(f"{key}.account", f'no account named "{acc}"')
    return tuple(canonical(t) for t in to), subject, account_names  # (as headers are read)


def _stages(check: Checker, table: dict[str, Any], key: str, default: Stage,
            templates: Mapping[str, Template]) -> tuple[Stage, ...]:
    """``stages = N``: the rule's own stage N times; or a list, each with its own "after"."""
    value = table.get("stages", 1)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 10:
            check.fail(f"{key}.stages", f"{value} is not between 1 and 10")
        return (default,) * max(1, min(value, 10))
    if not isinstance(value, list) or not value:
        check.fail(f"{key}.stages", "expected a number (1-10) or a list of {after, template}")
        return ()
    if "after" in table:  # it would apply to no stage: say so rather than ignore it
        check.fail(f"{key}.after", "not used with a list of stages: give each stage its "
                                   'own "after" (or write stages = N)')
    stages = []
    for j, spec in enumerate(value):
        skey = f"{key}.stages[{j}]"
        stage = check.table(spec, skey, ("after", "template"))
        after = check.parsed(stage.get("after"), f"{skey}.after", parse_delay, _DELAY_HINT,
                             above_zero=True)
        if "after" not in stage and isinstance(spec, dict):
            check.fail(f"{skey}.after", "missing (required)")
        template = check.string(stage, "template", skey) or default.template
        _known_template(check, template, f"{skey}.template", templates)
        stages.append(Stage(after or DEFAULT_DELAY, template))
    return tuple(stages)


def _known_template(check: Checker, name: str, key: str, templates: Mapping[str, Template]) -> None:
    if name not in templates:
        check.fail(key, f'no template "{name}" (define [templates.{name}] with a body; '
                        f'known: {", ".join(sorted(templates))})')
