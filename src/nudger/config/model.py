"""The configuration as frozen, typed objects, and the few pure facts about them.

Pure: built by ``config.load`` from the TOML file; the core reads only this. Every
default lives here, once: a field's default in its dataclass (the loader reads it back
as ``Account.timeout``), and by name the few that are no field's (the delay and template
of a stage that names none, the rule used when the file has none)."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from nudger.core.addresses import canonical
from nudger.core.durations import Delay
from nudger.core.language import DEFAULT_LANGUAGE, LANGUAGES
from nudger.core.templates import BUILTIN

PLACEHOLDERS = {
    "greeting": "the greeting in your message's language, e.g. \"Hi Jörg,\" or \"Guten Tag Frau Weiß,\"",
    "first_name": "first name of the first recipient (or \"there\")",
    "name": "full name of the first recipient",
    "email": "address of the first recipient",
    "my_name": "your name (account `name`, else the From of your message)",
    "my_first_name": "your first name",
    "my_email": "the identity that sent the message",
    "subject": "subject of your message, without Re:/Fwd: prefixes",
    "days": "whole days since your message",
    "date": "date of your message, e.g. 23 November (23. November in German)",
    "weekday": "weekday of your message, e.g. Monday (Montag)",
    "stage": "which follow-up this is (1, 2, ...)",
}

DEFAULT_TEMPLATE = "gentle"
THANKS_TEMPLATE = "thanks"  # the thank-you after a meeting ([meetings] template)


@dataclass(frozen=True)
class Template:
    """A follow-up's text: ``body``, and its own text for some languages (``variants``:
    (language, body) pairs). The language of the user's message picks one."""

    name: str
    body: str
    variants: tuple[tuple[str, str], ...] = ()

    def body_for(self, language: str) -> str:
        """The text for a message in ``language``: its variant, else ``body``."""
        return dict(self.variants).get(language, self.body)


# gentle and thanks, in every language of LANGUAGES (core.templates has the texts).
BUILTIN_TEMPLATES = {
    name: Template(name, texts[DEFAULT_LANGUAGE],
                   tuple((lang, texts[lang]) for lang in LANGUAGES if lang != DEFAULT_LANGUAGE))
    for name, texts in BUILTIN.items()
}

TLS_MODES = ("implicit", "starttls", "none")
DEFAULT_TLS = "implicit"

DEFAULT_PORTS = {"implicit": 993, "starttls": 143, "none": 143}

# A password source's kind, and the account key that gives it (in the order error
# messages list them).
PASSWORD_KEYS = {"command": "password_command", "env": "password_env", "file": "password_file",
                 "inline": "password"}


@dataclass(frozen=True)
class PasswordSource:
    """Where the password comes from; the secret itself is read only when connecting."""

    kind: str  # a key of PASSWORD_KEYS
    command: tuple[str, ...] = ()
    env: str = ""
    file: Path | None = None
    inline: str = field(default="", repr=False)

    @property
    def key(self) -> str:
        """The account key this source was given by, as error messages name it."""
        return PASSWORD_KEYS[self.kind]

    def describe(self) -> str:
        """The source as check-config names it, never the secret."""
        if self.kind == "command":
            return f"command {self.command[0]!r}"
        if self.kind == "env":
            return f"environment variable ${self.env}"
        if self.kind == "file":
            return f"file {self.file}"
        return "inline password in the config file"


SMTP_PORTS = {"implicit": 465, "starttls": 587, "none": 25}  # [accounts.NAME.smtp] port by tls


@dataclass(frozen=True)
class Smtp:
    """[accounts.NAME.smtp]: where nudger sends the follow-ups a rule lets it send.

    Credentials and CA default to the account's IMAP ones. ``save_sent`` None is "auto":
    a copy is put in Sent unless the host files what it sends itself (core.sending)."""

    host: str
    port: int
    tls: str
    username: str
    password: PasswordSource | None  # None: the account's OAuth2 tokens (AUTH XOAUTH2)
    ca_file: Path | None = None
    save_sent: bool | None = None


AUTH_KINDS = ("password", "oauth2")
OAUTH2_PROVIDERS = ("microsoft", "google", "custom")
SASL_MECHANISMS = ("xoauth2", "oauthbearer")


@dataclass(frozen=True)
class OAuth2:
    """How an account signs in with OAuth2: the app registered at the provider, its
    endpoints (a preset's, or the file's for "custom") and where its tokens are kept."""

    provider: str  # one of OAUTH2_PROVIDERS
    client_id: str
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    token_file: Path  # state_dir/tokens/ACCOUNT.json
    device_authorization_url: str = ""  # "": no device flow
    sasl: str = "xoauth2"  # one of SASL_MECHANISMS
    client_secret_command: tuple[str, ...] = ()
    tenant: str = ""  # microsoft only
    authorize_params: tuple[tuple[str, str], ...] = ()  # a preset's extras (Google: offline access)
    redirect_host: str = "127.0.0.1"  # of the loopback redirect; Entra registers "localhost"


@dataclass(frozen=True)
class Account:
    """One mailbox: where it is, how to log in, who you are there, and its calendar."""

    name: str
    host: str
    port: int
    tls: str
    username: str
    password: PasswordSource | None  # None when the account signs in with OAuth2
    identities: tuple[str, ...]
    timezone: ZoneInfo
    lookback: timedelta = timedelta(days=30)
    display_name: str = ""
    sent_folder: str | None = None
    drafts_folder: str | None = None
    watch_folders: tuple[str, ...] | None = None
    ca_file: Path | None = None
    timeout: timedelta = timedelta(seconds=60)
    max_new_drafts: int = 25
    workdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    holidays: str = ""  # "DE-BY": country and subdivision, for the holidays package
    quiet_hours: tuple[time, time] | None = None  # no draft appears between these
    subject_threading: bool = True  # replies without In-Reply-To: match subject + people
    return_grace: Delay = Delay(business_days=1)  # after an out-of-office return date
    smtp: Smtp | None = None  # sending: only with this table, and only for send_after rules
    oauth2: OAuth2 | None = None  # auth = "oauth2"

    def is_identity(self, address: str) -> bool:
        """Yours, including plus-addresses of yours (me+nudge-5d@example.com)."""
        return base_address(address) in self.identities


@dataclass(frozen=True)
class Stage:
    """One follow-up: how long after your latest message, and the template it is written from."""

    after: Delay
    template: str


@dataclass(frozen=True)
class Rule:
    """Which sent messages it covers (every condition given must hold) and its stages."""

    name: str
    stages: tuple[Stage, ...]
    to: tuple[str, ...] = ()
    subject: re.Pattern[str] | None = None
    accounts: tuple[str, ...] = ()
    recipients: str = "all"  # or "non-repliers": only those who have not answered
    send_after: Delay | None = None  # our untouched draft is sent this long after it appeared


DEFAULT_DELAY = Delay(business_days=3)  # a stage's wait when the file gives no "after"

DEFAULT_RULE = Rule("default", (Stage(DEFAULT_DELAY, DEFAULT_TEMPLATE),))  # when there is no [[rules]]


@dataclass(frozen=True)
class Daemon:
    """Where the service keeps its state, and how often it looks at the mailboxes."""

    state_dir: Path
    poll_interval: timedelta = timedelta(minutes=5)


MAX_THANKS_DELAY = timedelta(hours=24)  # a thank-you later than this reads as an afterthought


@dataclass(frozen=True)
class Meetings:
    """[meetings]: a thank-you draft after the meetings you organised or accepted."""

    thank_you: bool = False
    after: timedelta = timedelta(hours=2)  # after the meeting ended; at most MAX_THANKS_DELAY
    template: str = THANKS_TEMPLATE
    recurring: bool = False  # a series too: one thank-you, after the first occurrence seen


@dataclass(frozen=True)
class Digest:
    """[digest]: one summary mail a day to each of these accounts, at ``at`` local time."""

    at: time
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """A whole valid file; the rules in the order they are tried (the first match wins)."""

    path: Path
    daemon: Daemon
    accounts: tuple[Account, ...]
    rules: tuple[Rule, ...]
    templates: Mapping[str, Template]
    meetings: Meetings = Meetings()
    digest: Digest | None = None


@functools.lru_cache(maxsize=8192)  # asked for every message of every thread judged
def base_address(address: str) -> str:
    """The address without a +tag: me+nudge-5d@example.com -> me@example.com."""
    local, at, domain = canonical(address).rpartition("@")  # (as headers are read)
    return f"{local.split('+', 1)[0]}@{domain}" if at else address.lower()


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def is_private(mode: int) -> bool:
    """Whether a file of this mode keeps a secret: neither its group nor others may use it."""
    return not mode & 0o077


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine, the only place a clear-text login may go."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


