"""Load and validate the TOML configuration into frozen, typed objects (``config.model``).

Everything wrong with a file is collected and reported at once, each problem naming
the file, the key path and what was expected; nothing connects before this passes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shlex
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nudger.config.model import (
    BUILTIN_TEMPLATES,
    DEFAULT_PORTS,
    PLACEHOLDERS,
    TLS_MODES,
    WEEKDAYS,
    Account,
    Config,
    Daemon,
    PasswordSource,
    Rule,
    Stage,
    Template,
    base_address,
    is_loopback,
)
from nudger.core.durations import Delay, parse_delay, parse_duration
from nudger.core.rules import holidays_for
from nudger.errors import ConfigError


def _close_matches(word: str, known: Iterable[str]) -> list[str]:
    import difflib  # here: only a mistake in the file needs it

    return difflib.get_close_matches(word, list(known), n=1)


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----")


def _not_a_ca_file(path: Path) -> str | None:
    """Why ``path`` cannot serve as ca_file (unreadable, or no PEM certificate in it), or None.

    Checked as text here (the core imports no ssl); the edge loads it for real."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    blocks = _PEM_CERT.findall(data)
    try:
        # A certificate is a DER SEQUENCE (0x30), base64 between the PEM markers.
        ok = bool(blocks) and all(base64.b64decode(b"".join(b.split()), validate=True)[:1] == b"\x30"
                                  for b in blocks)
    except binascii.Error:
        ok = False
    if not ok:
        return (f"{path} is not a certificate in PEM form; give the file of your server's CA, "
                "which starts with -----BEGIN CERTIFICATE-----")
    return None


def default_config_paths() -> list[Path]:
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
    candidates = [Path(explicit).expanduser()] if explicit else default_config_paths()
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    hint = "" if explicit else " (copy config.example.toml there, or pass --config PATH)"
    raise ConfigError([f"no configuration file found; tried {tried}{hint}"])


def load_config(path: Path) -> Config:
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
    return _Validator(path).config(data)


def _default_timezone() -> ZoneInfo:
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = Path("/etc/timezone").read_text().strip()
        except OSError:
            link = Path("/etc/localtime")
            name = str(link.resolve()).split("zoneinfo/", 1)[-1] if link.is_symlink() else ""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _template_fields(body: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(body) if name is not None]


class _Validator:
    """Walks the parsed TOML, collecting every problem with its key path."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path.name}: {key}: {message}")

    def table(self, value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_kind(value)}")
            return {}
        for name in value:
            if name not in known:
                close = _close_matches(name, known)
                hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
                self.fail(f"{key}.{name}" if key else name, f"unknown key{hint}")
        return value

    def typed(self, value: Any, key: str, kind: type, label: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"expected {label}, got {_kind(value)}")
            return None
        return value

    def string(self, table: dict[str, Any], name: str, key: str) -> str | None:
        return self.typed(table.get(name), f"{key}.{name}", str, "a string")

    def strings(self, table: dict[str, Any], name: str, key: str) -> tuple[str, ...] | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{key}.{name}", f"expected a list of strings, got {_kind(value)}")
            return None
        return tuple(value)

    def parsed(self, value: Any, key: str, parse: Callable[[str], Any], hint: str) -> Any:
        if value is None or self.typed(value, key, str, "a string") is None:
            return None
        try:
            return parse(value)
        except ValueError:
            self.fail(key, f'"{value}" is not a duration ({hint})')
            return None

    # -- sections -----------------------------------------------------------------------

    def config(self, data: dict[str, Any]) -> Config:
        top = self.table(data, "", ("daemon", "accounts", "rules", "templates"))
        daemon = self.daemon(top.get("daemon", {}))
        templates = self.templates(top.get("templates", {}))
        accounts = self.accounts(top.get("accounts"))
        rules = self.rules(top.get("rules"), templates, accounts)
        if self.problems:
            raise ConfigError(self.problems)
        assert daemon is not None
        return Config(self.path, daemon, accounts, rules, templates)

    def daemon(self, value: Any) -> Daemon | None:
        table = self.table(value, "daemon", ("poll_interval", "state_dir"))
        interval = self.parsed(
            table.get("poll_interval", "5m"), "daemon.poll_interval", parse_duration,
            'try "90s", "5m" or "1h"',
        )
        if interval is not None and interval < timedelta(seconds=10):
            self.fail("daemon.poll_interval", "must be at least 10s, to be kind to the server")
        state_dir = self.string(table, "state_dir", "daemon")
        path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
        return Daemon(interval or timedelta(minutes=5), path)

    def templates(self, value: Any) -> dict[str, Template]:
        result = {name: Template(name, body) for name, body in BUILTIN_TEMPLATES.items()}
        for name, spec in self.table(value, "templates", tuple(value or ())).items():
            key = f"templates.{name}"
            table = self.table(spec, key, ("body",))
            body = self.string(table, "body", key)
            if body is None:
                if "body" not in table and isinstance(spec, dict):
                    self.fail(key, 'missing "body"')
                continue
            try:
                fields = _template_fields(body)
            except ValueError as exc:
                self.fail(f"{key}.body", f"broken placeholder: {exc} (write {{{{ for a literal {{)")
                continue
            for placeholder in fields:
                if placeholder not in PLACEHOLDERS:
                    close = _close_matches(placeholder, PLACEHOLDERS)
                    hint = f'did you mean "{{{close[0]}}}"?' if close else (
                        "known: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
                    self.fail(f"{key}.body", f'unknown placeholder "{{{placeholder}}}" ({hint})')
            result[name] = Template(name, body)
        return result

    def accounts(self, value: Any) -> tuple[Account, ...]:
        if value is None:
            self.fail("accounts", "no account configured (add an [accounts.NAME] table)")
            return ()
        accounts = []
        for name, spec in self.table(value, "accounts", tuple(value)).items():
            account = self.account(name, spec)
            if account is not None:
                accounts.append(account)
        if not value:
            self.fail("accounts", "no account configured (add an [accounts.NAME] table)")
        return tuple(accounts)

    def account(self, name: str, spec: Any) -> Account | None:
        key = f"accounts.{name}"
        known = (
            "host", "port", "tls", "username", "password_command", "password_env",
            "password_file", "password", "identities", "name", "timezone", "lookback",
            "sent_folder", "drafts_folder", "watch_folders", "ca_file", "timeout", "max_new_drafts",
            "workdays", "holidays", "quiet_hours", "subject_threading", "return_grace",
        )  # fmt: skip
        table = self.table(spec, key, known)
        if not table:
            return None
        host = self.string(table, "host", key)
        username = self.string(table, "username", key)
        for required, got in (("host", host), ("username", username)):
            if got is None and required not in table:
                self.fail(f"{key}.{required}", "missing (required)")
        tls = self.string(table, "tls", key) or "implicit"
        if tls not in TLS_MODES:
            self.fail(f"{key}.tls", f'"{tls}" is not one of {", ".join(TLS_MODES)}')
            tls = "implicit"
        if tls == "none" and host and not is_loopback(host):
            self.fail(
                f"{key}.tls",
                f'"none" sends the password in clear text; it is allowed only for loopback '
                f'hosts, not "{host}" (use "implicit" or "starttls")',
            )
        port = self.typed(table.get("port"), f"{key}.port", int, "a port number")
        if port is not None and not 0 < port < 65536:
            self.fail(f"{key}.port", f"{port} is not a port number (1-65535)")
        password = self.password(table, key)
        identities = self.strings(table, "identities", key) or ((username,) if username else ())
        for i, ident in enumerate(identities):
            if "@" not in ident:
                self.fail(f"{key}.identities[{i}]", f'"{ident}" is not an email address')
        tz_name = self.string(table, "timezone", key)
        timezone = _default_timezone()
        if tz_name is not None:
            try:
                timezone = ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                self.fail(f"{key}.timezone", f'"{tz_name}" is not an IANA time zone (e.g. "Europe/Berlin")')
        lookback = self.parsed(
            table.get("lookback", "30d"), f"{key}.lookback", parse_duration, 'try "30d" or "8 weeks"'
        )
        timeout = self.parsed(
            table.get("timeout", "60s"), f"{key}.timeout", parse_duration, 'try "30s" or "2m"'
        )
        max_new = self.typed(table.get("max_new_drafts"), f"{key}.max_new_drafts", int, "a number")
        if max_new is not None and not 1 <= max_new <= 10000:
            self.fail(f"{key}.max_new_drafts", f"{max_new} is not between 1 and 10000")
        workdays = self.strings(table, "workdays", key)
        days: set[int] = set()
        for i, day in enumerate(workdays or WEEKDAYS[:5]):
            if day.lower()[:3] not in WEEKDAYS:
                self.fail(f"{key}.workdays[{i}]", f'"{day}" is not a weekday (mon, tue, ... sun)')
            else:
                days.add(WEEKDAYS.index(day.lower()[:3]))
        if workdays is not None and not days:
            self.fail(f"{key}.workdays", "at least one working day is needed")
        holiday_spec = self.string(table, "holidays", key) or ""
        if holiday_spec:
            self.check_holidays(holiday_spec, f"{key}.holidays")
        quiet = self.quiet_hours(table.get("quiet_hours"), f"{key}.quiet_hours")
        subject_threading = self.typed(table.get("subject_threading"), f"{key}.subject_threading",
                                       bool, "true or false")
        grace = self.parsed(table.get("return_grace", "1 business day"), f"{key}.return_grace",
                            parse_delay, 'try "1 business day" or "2d"')
        ca_file = self.string(table, "ca_file", key)
        if ca_file is not None and not Path(ca_file).expanduser().is_file():
            self.fail(f"{key}.ca_file", f"no such file: {ca_file}")
        elif ca_file is not None and (problem := _not_a_ca_file(Path(ca_file).expanduser())):
            self.fail(f"{key}.ca_file", problem)
        if host is None or username is None or password is None:
            return None
        return Account(
            name=name,
            host=host,
            port=port or DEFAULT_PORTS[tls],
            tls=tls,
            username=username,
            password=password,
            identities=tuple(base_address(i) for i in identities),
            timezone=timezone,
            lookback=lookback or timedelta(days=30),
            display_name=self.string(table, "name", key) or "",
            sent_folder=self.string(table, "sent_folder", key),
            drafts_folder=self.string(table, "drafts_folder", key),
            watch_folders=self.strings(table, "watch_folders", key),
            ca_file=Path(ca_file).expanduser() if ca_file else None,
            timeout=timeout or timedelta(seconds=60),
            max_new_drafts=max_new or 25,
            workdays=frozenset(days or range(5)),
            holidays=holiday_spec,
            quiet_hours=quiet,
            subject_threading=True if subject_threading is None else subject_threading,
            return_grace=grace or Delay(business_days=1),
        )

    def check_holidays(self, spec: str, key: str) -> None:
        try:
            holidays_for(spec, 2000)  # (any year: an unknown country or subdivision raises)
        except (NotImplementedError, KeyError, ValueError) as exc:
            hint = str(exc).split(".")[0][:120]
            self.fail(key, f'"{spec}" is not a known country[-subdivision] (e.g. "DE-BY", "US-CA", '
                           f'"FR"): {hint}')

    def quiet_hours(self, value: Any, key: str) -> tuple[time, time] | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else ""
        match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*", text)
        if match is None:
            self.fail(key, f'{_kind(value)} is not a time range like "20:00-08:00"')
            return None
        return time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))

    def password(self, table: dict[str, Any], key: str) -> PasswordSource | None:
        given = [k for k in ("password_command", "password_env", "password_file", "password")
                 if k in table]
        if not given:
            self.fail(key, "no password source: set password_command, password_env or password_file")
            return None
        if len(given) > 1:
            self.fail(key, f"choose one password source, not {' and '.join(given)}")
            return None
        kind = given[0]
        value = table[kind]
        if kind == "password_command":
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                argv = tuple(value)
            elif isinstance(value, str) and value.strip():
                try:
                    argv = tuple(shlex.split(value))
                except ValueError as exc:
                    self.fail(f"{key}.password_command", f"cannot split into words: {exc}")
                    return None
            else:
                self.fail(f"{key}.password_command", "expected a command string or a list of words")
                return None
            return PasswordSource("command", command=argv)
        if self.typed(value, f"{key}.{kind}", str, "a string") is None:
            return None
        if kind == "password_env":
            return PasswordSource("env", env=value)
        if kind == "password_file":
            # Whether it exists and is private is asked before connecting (passwords.py), not
            # here: status and explain never read it (it may be a credential of the service).
            return PasswordSource("file", file=Path(value).expanduser())
        if self.path.stat().st_mode & 0o077:
            self.fail(
                f"{key}.password",
                f"a password in a file others can read; run: chmod 600 {self.path} "
                "(or use password_command / password_env / password_file)",
            )
            return None
        return PasswordSource("inline", inline=value)

    def rules(self, value: Any, templates: Mapping[str, Template],
              accounts: tuple[Account, ...]) -> tuple[Rule, ...]:
        if value is None:
            return (Rule("default", (Stage(Delay(business_days=3), "gentle"),)),)
        if not isinstance(value, list):
            self.fail("rules", f"expected [[rules]] tables, got {_kind(value)}")
            return ()
        rules = []
        for i, spec in enumerate(value):
            rule = self.rule(f"rules[{i}]", spec, templates, accounts)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def rule(self, key: str, spec: Any, templates: Mapping[str, Template],
             accounts: tuple[Account, ...]) -> Rule | None:
        table = self.table(spec, key, ("name", "match", "after", "stages", "template", "recipients"))
        if not table and not isinstance(spec, dict):
            return None
        name = self.string(table, "name", key) or key
        match = self.table(table.get("match", {}), f"{key}.match", ("to", "subject", "account"))
        to = self.strings(match, "to", f"{key}.match") or ()
        subject = None
        pattern = self.string(match, "subject", f"{key}.match")
        if pattern is not None:
            try:
                subject = re.compile(pattern)
            except re.error as exc:
                self.fail(f"{key}.match.subject", f'"{pattern}" is not a regular expression: {exc}')
        account_names = self.strings(match, "account", f"{key}.match") or ()
        known_accounts = {a.name for a in accounts}
        for acc in account_names:
            if known_accounts and acc not in known_accounts:
                self.fail(f"{key}.match.account", f'no account named "{acc}"')
        hint = 'try "3d" or "2 business days"'
        after = self.parsed(table.get("after", "3 business days"), f"{key}.after", parse_delay, hint)
        template = self.string(table, "template", key) or "gentle"
        self.known_template(template, f"{key}.template", templates)
        stages_value = table.get("stages", 1)
        stages: list[Stage] = []
        if isinstance(stages_value, int) and not isinstance(stages_value, bool):
            if not 1 <= stages_value <= 10:
                self.fail(f"{key}.stages", f"{stages_value} is not between 1 and 10")
            stages = [Stage(after or Delay(business_days=3), template)] * max(1, min(stages_value, 10))
        elif isinstance(stages_value, list) and stages_value:
            if "after" in table:  # it would apply to no stage: say so rather than ignore it
                self.fail(f"{key}.after", "not used with a list of stages: give each stage its "
                                          'own "after" (or write stages = N)')
            for j, stage_spec in enumerate(stages_value):
                skey = f"{key}.stages[{j}]"
                stable = self.table(stage_spec, skey, ("after", "template"))
                s_after = self.parsed(stable.get("after"), f"{skey}.after", parse_delay, hint)
                if "after" not in stable and isinstance(stage_spec, dict):
                    self.fail(f"{skey}.after", "missing (required)")
                s_template = self.string(stable, "template", skey) or template
                self.known_template(s_template, f"{skey}.template", templates)
                stages.append(Stage(s_after or Delay(business_days=3), s_template))
        else:
            self.fail(f"{key}.stages", "expected a number (1-10) or a list of {after, template}")
        recipients = self.string(table, "recipients", key) or "all"
        if recipients not in ("all", "non-repliers"):
            self.fail(f"{key}.recipients", f'"{recipients}" is not "all" or "non-repliers"')
        return Rule(name, tuple(stages), tuple(t.lower() for t in to), subject, account_names,
                    recipients)

    def known_template(self, name: str, key: str, templates: Mapping[str, Template]) -> None:
        if name not in templates:
            self.fail(key, f'no template "{name}" (define [templates.{name}] with a body; '
                           f'known: {", ".join(sorted(templates))})')


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    return f"{value!r} ({type(value).__name__})"


def summary(config: Config) -> str:
    """The short human summary that check-config prints."""
    lines = [f"{config.path}: OK"]
    for acc in config.accounts:
        lines.append(
            f"  account {acc.name}: {acc.username} at {acc.host}:{acc.port} ({acc.tls}), "
            f"password from {acc.password.describe()}, identities {', '.join(acc.identities)}, "
            f"time zone {acc.timezone.key}, look-back {acc.lookback.days}d"
        )
    for i, rule in enumerate(config.rules):  # rules[i], as the error messages number them
        cond = []
        if rule.to:
            cond.append("to " + "|".join(rule.to))
        if rule.subject is not None:
            cond.append(f"subject ~ {rule.subject.pattern}")
        if rule.accounts:
            cond.append("account " + "|".join(rule.accounts))
        stages = ", then ".join(f"{s.after} ({s.template})" for s in rule.stages)
        lines.append(f"  rules[{i}] {rule.name}: {' and '.join(cond) or 'any message'} -> {stages}")
    lines.append(f"  state in {config.daemon.state_dir}, poll every {config.daemon.poll_interval}")
    return "\n".join(lines)


