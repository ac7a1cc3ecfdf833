"""Error classes, each mapped to the exit status that tells the caller what to do next.

Edges translate third-party exceptions into these (``raise ... from exc``), so the
command line has a single place that turns them into one clear line and a status.
"""

from __future__ import annotations

# sysexits.h values, documented in the README; systemd's RestartPreventExitStatus uses 77/78.
EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class NudgerError(Exception):
    """A failure the user can act on; its message is shown as one line."""

    exit_code = EX_FAILURE


class UsageError(NudgerError):
    exit_code = EX_USAGE


class ConfigError(NudgerError):
    """Every problem of a configuration file, reported at once."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemporaryError(NudgerError):
    """Network trouble, server busy, timeouts: retry later."""

    exit_code = EX_TEMPFAIL


class AuthError(NudgerError):
    """The server refused our credentials: retrying will not help."""

    exit_code = EX_NOPERM


class ServerConfigError(NudgerError):
    """The mailbox does not fit the configuration (e.g. no Drafts folder)."""

    exit_code = EX_CONFIG


class StateError(NudgerError):
    """The state file cannot be used as it is; the message names it and what is wrong."""


class StateCorrupt(StateError):
    """Not a database, or a damaged one: ``run`` sets it aside and rebuilds it from the server."""


class StateReadOnly(StateError):
    """The state file or its directory cannot be written (permissions, read-only disk)."""

    exit_code = EX_NOPERM


class StateFull(StateError):
    """The disk is full: nothing was written that the state could not record; retry later."""

    exit_code = EX_TEMPFAIL


class StateBusy(StateError):
    """Another process holds the database longer than we wait: retry later."""

    exit_code = EX_TEMPFAIL


class StateTooNew(StateError):
    """Written by a newer nudger: this one must not guess what it means."""

    exit_code = EX_CONFIG


class FolderUnavailable(TemporaryError):
    """The server refused one folder (a NO to STATUS, EXAMINE, SEARCH or FETCH in it):
    that folder is skipped this cycle, the rest of the account is served."""

    def __init__(self, folder: str, message: str, detail: str = ""):
        self.folder, self.detail = folder, detail
        super().__init__(message)


class GarbledAnswer(TemporaryError):
    """An answer that does not read as IMAP: what it was about is read again next cycle,
    never taken as read."""


class DeadGrant(AuthError):
    """The sign-in of an OAuth2 account is gone (revoked, expired, never made): only
    ``nudger auth ACCOUNT`` helps. The service pauses that account until the token file
    it ``watch``es changes."""

    def __init__(self, message: str, watch: object):
        self.watch = watch  # a Path (errors.py imports nothing)
        super().__init__(message)


def printable(text: str) -> str:
    """Text for a terminal or the journal: each control or other unprintable character
    shown as its escape (ESC as \\x1b, a line break as \\n, a bidi override as \\u202e).
    A server's or an identity provider's words reach errors and logs as they were sent,
    and must not recolour a terminal, retitle it, or forge a line of the journal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)
