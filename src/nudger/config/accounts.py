"""The [accounts.NAME] tables: the server, the password source, your identities, the calendar.

A key the file leaves out takes the model's default (``Account``'s field). What can
be judged from the file is judged here; whether a password program or file is usable
is asked later (``app/passwords.py``), since status and explain load the same file
and never need the password.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nudger.config.check import Checker, kind_of
from nudger.config.model import (
    AUTH_KINDS,
    DEFAULT_PORTS,
    DEFAULT_TLS,
    PASSWORD_KEYS,
    SMTP_PORTS,
    TLS_MODES,
    WEEKDAYS,
    Account,
    OAuth2,
    PasswordSource,
    Smtp,
    base_address,
    is_loopback,
    is_private,
)
from nudger.config.oauth2 import check_oauth2, preset_server
from nudger.core.durations import parse_delay, parse_duration
from nudger.core.rules import holidays_for

ACCOUNT_KEYS = (
    "host", "port", "tls", "username", *PASSWORD_KEYS.values(), "identities", "name", "timezone",
    "lookback", "sent_folder", "drafts_folder", "watch_folders", "ca_file", "timeout",
    "max_new_drafts", "workdays", "holidays", "quiet_hours", "subject_threading", "return_grace",
    "smtp",
    "auth", "oauth2",
)  # fmt: skip
# The SMTP server an OAuth2 provider's preset fills in: (host, tls); its tokens cover it.
SMTP_SERVERS = {"microsoft": ("smtp.office365.com", "starttls"), "google": ("smtp.gmail.com", "implicit")}
SMTP_KEYS = ("host", "port", "tls", "username", *PASSWORD_KEYS.values(), "ca_file", "save_sent")

_NO_ACCOUNT = "no account configured (add an [accounts.NAME] table)"


def check_accounts(check: Checker, value: Any, state_dir: Path | None = None) -> tuple[Account, ...]:
    """Every account the file defines; at least one is needed. An OAuth2 account keeps
    its tokens in ``state_dir``/tokens."""
    if value is None:
        check.fail("accounts", _NO_ACCOUNT)
        return ()
    accounts = []
    names = tuple(value) if isinstance(value, dict) else ()
    for name, spec in check.table(value, "accounts", names).items():
        account = _account(check, name, spec, state_dir or Path("."))
        if account is not None:
            accounts.append(account)
    if not value:
        check.fail("accounts", _NO_ACCOUNT)
    return tuple(accounts)


def _account(check: Checker, name: str, spec: Any, state_dir: Path) -> Account | None:
    """One account, or None if it lacks what it cannot do without (its problems are noted).

    Its name and folders are checked only once host, username and password are valid."""
    key = f"accounts.{name}"
    table = check.table(spec, key, ACCOUNT_KEYS)
    if not table:
        return None
    password, oauth2 = _sign_in(check, table, key, state_dir / "tokens" / f"{name}.json")
    host, username, tls, port = _server(check, table, key)
    identities = _identities(check, table, key, username)
    timezone = _timezone(check, table, key)
    lookback = check.parsed(table.get("lookback"), f"{key}.lookback", parse_duration,
                            'try "30d" or "8 weeks"', above_zero=True)
    timeout = check.parsed(table.get("timeout"), f"{key}.timeout", parse_duration, 'try "30s" or "2m"',
                           above_zero=True)
    max_new = check.typed(table.get("max_new_drafts"), f"{key}.max_new_drafts", int, "a number")
    if max_new is not None and not 1 <= max_new <= 10000:
        check.fail(f"{key}.max_new_drafts", f"{max_new} is not between 1 and 10000")
    workdays = _workdays(check, table, key)
    holidays = _holidays(check, table, key)
    quiet = _quiet_hours(check, table.get("quiet_hours"), f"{key}.quiet_hours")
    subject_threading = check.typed(table.get("subject_threading"), f"{key}.subject_threading",
                                    bool, "true or false")
    grace = check.parsed(table.get("return_grace"), f"{key}.return_grace", parse_delay,
                         'try "1 business day" or "2d"')
    ca_file = _ca_file(check, table, key)
    if host is None or username is None or (password is None and oauth2 is None):
        return None
    smtp = _smtp(check, table.get("smtp"), f"{key}.smtp", username, password, ca_file,
                 oauth2.provider if oauth2 is not None else None)
    return Account(
        name=name,
        host=host,
        port=port,
        tls=tls,
        username=username,
        password=password,
        identities=identities,
        timezone=timezone,
        lookback=lookback or Account.lookback,
        display_name=check.string(table, "name", key) or Account.display_name,
        sent_folder=check.string(table, "sent_folder", key),
        drafts_folder=check.string(table, "drafts_folder", key),
        watch_folders=check.strings(table, "watch_folders", key),
        ca_file=ca_file,
        timeout=timeout or Account.timeout,
        max_new_drafts=max_new or Account.max_new_drafts,
        workdays=workdays or Account.workdays,
        holidays=holidays or Account.holidays,
        quiet_hours=quiet,
        subject_threading=Account.subject_threading if subject_threading is None else subject_threading,
        return_grace=grace or Account.return_grace,
        smtp=smtp,
        oauth2=oauth2,
    )


def _sign_in(check: Checker, table: dict[str, Any], key: str,
             token_file: Path) -> tuple[PasswordSource | None, OAuth2 | None]:
    """A password source (auth = "password", the default) or an OAuth2 sign-in."""
    auth = check.string(table, "auth", key) or "password"
    if auth not in AUTH_KINDS:
        check.fail(f"{key}.auth", f'"{auth}" is not one of {", ".join(AUTH_KINDS)}')
        return None, None
    if auth == "password":
        if "oauth2" in table:
            check.fail(f"{key}.oauth2", f'used only with auth = "oauth2" (set {key}.auth)')
        return _password(check, table, key), None
    for name in PASSWORD_KEYS.values():
        if name in table:
            check.fail(f"{key}.{name}", 'not used with auth = "oauth2" (the account signs in '
                                        "with its tokens); remove it")
    return None, check_oauth2(check, table.get("oauth2"), f"{key}.oauth2", token_file)


def _server(check: Checker, table: dict[str, Any],
            key: str) -> tuple[str | None, str | None, str, int]:
    """Host and username (both required, unless an OAuth2 preset implies the host), TLS
    mode and port; clear text only to loopback."""
    host = check.string(table, "host", key)
    username = check.string(table, "username", key)
    preset = preset_server(table) if table.get("auth") == "oauth2" and "host" not in table else None
    if preset is not None:
        host = preset[0]
    for required, got in (("host", host), ("username", username)):
        if got is None and required not in table:
            check.fail(f"{key}.{required}", "missing (required)")
    tls = check.string(table, "tls", key) or (preset[2] if preset else DEFAULT_TLS)
    if tls not in TLS_MODES:
        check.fail(f"{key}.tls", f'"{tls}" is not one of {", ".join(TLS_MODES)}')
        tls = DEFAULT_TLS
    if tls == "none" and host and not is_loopback(host):
        check.fail(
            f"{key}.tls",
            f'"none" sends the password in clear text; it is allowed only for loopback '
            f'hosts, not "{host}" (use "implicit" or "starttls")',
        )
    port = check.typed(table.get("port"), f"{key}.port", int, "a port number")
    if port is not None and not 0 < port < 65536:
        check.fail(f"{key}.port", f"{port} is not a port number (1-65535)")
    return host, username, tls, port or (preset[1] if preset else DEFAULT_PORTS[tls])


def _password(check: Checker, table: dict[str, Any], key: str) -> PasswordSource | None:
    """The one password source given; an inline password only in a file nobody else reads."""
    given = [(kind, name) for kind, name in PASSWORD_KEYS.items() if name in table]
    if not given:
        check.fail(key, "no password source: set password_command, password_env or password_file")
        return None
    if len(given) > 1:
        check.fail(key, f"choose one password source, not {' and '.join(name for _, name in given)}")
        return None
    kind, name = given[0]
    value = table[name]
    if kind == "command":
        words = check.command(value, f"{key}.{name}")
        return PasswordSource("command", command=words) if words else None
    if check.typed(value, f"{key}.{name}", str, "a string") is None:
        return None
    if kind == "env":
        return PasswordSource("env", env=value)
    if kind == "file":
        # Whether it exists and is private is asked before connecting (passwords.py), not
        # here: status and explain never read it (it may be a credential of the service).
        return PasswordSource("file", file=Path(value).expanduser())
    if not is_private(check.path.stat().st_mode):
        check.fail(
            f"{key}.{name}",
            f"a password in a file others can read; run: chmod 600 {check.path} "
            "(or use password_command / password_env / password_file)",
        )
        return None
    return PasswordSource("inline", inline=value)


def _identities(check: Checker, table: dict[str, Any], key: str,
                username: str | None) -> tuple[str, ...]:
    """Your addresses, without +tags (the username unless given): whose messages are yours."""
    identities = check.strings(table, "identities", key) or ((username,) if username else ())
    for i, ident in enumerate(identities):
        if "@" not in ident:
            check.fail(f"{key}.identities[{i}]", f'"{ident}" is not an email address')
    return tuple(base_address(i) for i in identities)


def _timezone(check: Checker, table: dict[str, Any], key: str) -> ZoneInfo:
    """The IANA zone given, else the machine's: where business days and quiet hours fall."""
    name = check.string(table, "timezone", key)
    if name is not None:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            check.fail(f"{key}.timezone", f'"{name}" is not an IANA time zone (e.g. "Europe/Berlin")')
    return _default_timezone()


def _default_timezone() -> ZoneInfo:
    """The machine's zone ($TZ, /etc/timezone, /etc/localtime), else UTC."""
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


def _workdays(check: Checker, table: dict[str, Any], key: str) -> frozenset[int] | None:
    """The working days named (Monday = 0), or None where the file names none (or [])."""
    names = check.strings(table, "workdays", key)
    if not names:
        return None
    days: set[int] = set()
    for i, day in enumerate(names):
        if day.lower()[:3] not in WEEKDAYS:
            check.fail(f"{key}.workdays[{i}]", f'"{day}" is not a weekday (mon, tue, ... sun)')
        else:
            days.add(WEEKDAYS.index(day.lower()[:3]))
    if not days:
        check.fail(f"{key}.workdays", "at least one working day is needed")
    return frozenset(days)


def _holidays(check: Checker, table: dict[str, Any], key: str) -> str | None:
    """A country[-subdivision] the holidays package knows ("DE-BY"), or None."""
    spec = check.string(table, "holidays", key)
    if not spec:
        return None
    try:
        holidays_for(spec, 2000)  # (any year: an unknown country or subdivision raises)
    except (NotImplementedError, KeyError, ValueError) as exc:
        hint = str(exc).split(".")[0][:120]
        check.fail(f"{key}.holidays", f'"{spec}" is not a known country[-subdivision] (e.g. "DE-BY", '
                                      f'"US-CA", "FR"): {hint}')
    return spec


def _quiet_hours(check: Checker, value: Any, key: str) -> tuple[time, time] | None:
    """A time range like "20:00-08:00" (it may span midnight), or None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else ""
    match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*", text)
    if match is None:
        check.fail(key, f'{kind_of(value)} is not a time range like "20:00-08:00"')
        return None
    return time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))


def _ca_file(check: Checker, table: dict[str, Any], key: str) -> Path | None:
    """The CA certificate file to trust instead of the system's, or None."""
    name = check.string(table, "ca_file", key)
    if name is None:
        return None
    path = Path(name).expanduser()
    if not path.is_file():
        check.fail(f"{key}.ca_file", f"no such file: {name}")
    elif problem := _not_a_ca_file(path):
        check.fail(f"{key}.ca_file", problem)
    return path if name else None


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


def _smtp(check: Checker, value: Any, key: str, username: str, password: PasswordSource | None,
          ca_file: Path | None, provider: str | None) -> Smtp | None:
    """[accounts.NAME.smtp]: the server nudger sends through. Username, password source (an
    OAuth2 account's tokens) and CA default to the account's; tls is said explicitly (none
    only to loopback, as for IMAP), but for an OAuth2 provider's own server (its preset)."""
    if value is None:
        return None
    table = check.table(value, key, SMTP_KEYS)
    preset = SMTP_SERVERS.get(provider or "")
    host = check.string(table, "host", key) or (preset[0] if preset and "host" not in table else None)
    if host is None and "host" not in table:
        check.fail(f"{key}.host", "missing (required)")
    tls = check.string(table, "tls", key) or (preset[1] if preset and "tls" not in table else None)
    if tls is None and "tls" not in table:
        check.fail(f"{key}.tls", 'missing (required): "implicit" (port 465) or "starttls" (port 587)')
    elif tls is not None and tls not in TLS_MODES:
        check.fail(f"{key}.tls", f'"{tls}" is not one of {", ".join(TLS_MODES)}')
        tls = None
    if tls == "none" and host and not is_loopback(host):
        check.fail(f"{key}.tls", f'"none" sends the password in clear text; it is allowed only for '
                                 f'loopback hosts, not "{host}" (use "implicit" or "starttls")')
    port = check.typed(table.get("port"), f"{key}.port", int, "a port number")
    if port is not None and not 0 < port < 65536:
        check.fail(f"{key}.port", f"{port} is not a port number (1-65535)")
    save = table.get("save_sent", "auto")
    if save != "auto" and not isinstance(save, bool):
        check.fail(f"{key}.save_sent", f'expected "auto", true or false, got {kind_of(save)}')
        save = "auto"
    own = [name for name in PASSWORD_KEYS.values() if name in table]
    source = _password(check, table, key) if own else password
    given_ca = _ca_file(check, table, key) if "ca_file" in table else ca_file
    if host is None or tls is None or (source is None and provider is None):
        return None
    return Smtp(host=host, port=port or SMTP_PORTS[tls], tls=tls,
                username=check.string(table, "username", key) or username, password=source,
                ca_file=given_ca, save_sent=None if save == "auto" else save)
