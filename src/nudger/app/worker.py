"""One account's worker in the service: its cycles, its waits between them, and what it
does when a cycle fails (backoff, a paused grant, a state error that stops the service)."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nudger.app.connect import open_mailbox
from nudger.app.passwords import read_password
from nudger.config.model import Account, Config
from nudger.cycle.cycle import CycleResult, run_cycle
from nudger.cycle.lock import lock_is_current, lock_state_dir
from nudger.cycle.state import State
from nudger.cycle.statefile import FILE_NAME, file_id
from nudger.errors import (
    AuthError,
    ConfigError,
    DeadGrant,
    NudgerError,
    ServerConfigError,
    StateReadOnly,
    StateTooNew,
)
from nudger.mail.mailbox import Mailbox
from nudger.mail.smtp import SmtpSender

log = logging.getLogger(__name__)

# Not the account's trouble but the state's, which every account shares (a read-only disk, a
# file of a newer nudger): the service exits with its status, as `run --once` does.
STATE_FATAL = (StateReadOnly, StateTooNew)
FATAL = (AuthError, ConfigError, ServerConfigError, *STATE_FATAL)  # retrying soon will not help


def open_sender(account: Account) -> SmtpSender | None:
    """The account's SMTP server, connected only when something is sent; None without [smtp]."""
    smtp = account.smtp
    if smtp is None:
        return None
    if smtp.password is None:  # an OAuth2 account: its tokens, as for IMAP
        from nudger.app.signin import tokens_for

        return SmtpSender(account, bearer=lambda: tokens_for(account))  # read when connecting
    source = smtp.password
    name = account.name if source is account.password else f"{account.name}.smtp"
    return SmtpSender(account, lambda: read_password(source, name))


class Home:
    """The state directory a service holds: its lock, taken before anything is read or
    written there, and the identity of its files, to notice when they vanish under us."""

    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.lock = lock_state_dir(state_dir)  # raises StateLocked: then nothing was opened
        try:
            # Create the state (schema, WAL) once, here, before the workers open it
            # together: switching a new database to WAL needs it to itself.
            State.open(state_dir).close()
        except BaseException:
            os.close(self.lock)
            raise
        self.database = file_id(self.db_path)

    @property
    def db_path(self) -> Path:
        return self.dir / FILE_NAME

    def intact(self) -> bool:
        """Still the files we locked and opened (not deleted, not replaced)?"""
        try:
            return lock_is_current(self.dir, self.lock) and file_id(self.db_path) == self.database
        except OSError:  # closed: a worker outlived its service's stop
            return False

    def close(self) -> None:
        os.close(self.lock)
        self.lock = -1


def scoped(account: Account, text: str) -> str:
    """The message, naming its account once (the IMAP edge's messages already start
    with "NAME (host:port)")."""
    named = text.startswith((f"{account.name} ", f"{account.name}:"))
    return text if named else f"{account.name}: {text}"


class Backoff:
    """Exponential backoff with jitter, capped: 30s, 1m, 2m ... up to 30m."""

    def __init__(self, base: float = 30.0, cap: float = 1800.0, rng: random.Random | None = None):
        self.base, self.cap, self.failures = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.base * 2 ** min(self.failures, 20))
        self.failures += 1
        return delay * self.rng.uniform(0.5, 1.0)  # jitter: many clients do not retry in step

    def reset(self) -> None:
        self.failures = 0


class Clock:
    """The service's clock: the system's, or one started at a given time (``run --now``,
    for a trial of what the service would do then, and for tests that must not depend on
    the day they run) that goes on at the pace of the real one."""

    def __init__(self, start: datetime | None = None):
        self.start, self.started = start, time.monotonic()

    def now(self) -> datetime:
        if self.start is None:
            return datetime.now(UTC)
        return self.start + timedelta(seconds=time.monotonic() - self.started)


class Worker(threading.Thread):
    """Cycles for one account until told to stop."""

    def __init__(self, config: Config, account: Account, on_cycle: Callable[[str, CycleResult], None],
                 opener: Callable[[Account], Mailbox] = open_mailbox, *, home: Home,
                 clock: Clock | None = None):
        super().__init__(name=f"account-{account.name}", daemon=True)
        self.config, self.account, self.on_cycle, self.opener = config, account, on_cycle, opener
        self.home = home
        self.clock = clock or Clock()
        self.stop = threading.Event()
        self.succeeded = False
        self.fatal: NudgerError | None = None
        self.backoff = Backoff()

    def run(self) -> None:
        state: State | None = None
        mailbox: Mailbox | None = None
        try:
            while not self.stop.is_set():
                if not self.home.intact():
                    # Never a cycle on a state that vanished: the service starts over.
                    self.stop.wait(1.0)
                    continue
                try:
                    if state is None:
                        state = State.open(self.home.dir)
                    if mailbox is None:
                        mailbox = self.opener(self.account)
                    sender = open_sender(self.account)
                    try:
                        result = run_cycle(self.config, self.account, mailbox, state,
                                           self.clock.now(), sender=sender)
                    finally:
                        if sender is not None:
                            sender.close()
                    self.succeeded, self.fatal = True, None
                    self.backoff.reset()
                    self.on_cycle(self.account.name, result)
                    if result.send_error is not None:  # drafting goes on; sending is retried
                        done = (f"sending stopped: {len(result.sent)} sent before it, the others"
                                if result.sent else "nothing was sent")
                        log.error("%s (%s; tried again next cycle)",
                                  scoped(self.account, str(result.send_error)), done)
                    self._wait(mailbox, result)
                except Exception as exc:  # noqa: BLE001 - every failure: one line, then retry
                    if mailbox is not None:
                        mailbox.close()
                        mailbox = None
                    self._failed(exc)
        finally:
            if mailbox is not None:
                mailbox.close()
            if state is not None:
                state.close()

    def _wait(self, mailbox: Mailbox, result: CycleResult) -> None:
        """Until the next poll, or news in any folder the cycle reads (where the server
        tells of them all: NOTIFY; else of INBOX)."""
        seconds = self.config.daemon.poll_interval.total_seconds()
        layout = result.layout
        folders = [*layout.watched, layout.drafts] if layout is not None else ["INBOX"]
        news = mailbox.wait_for_news(folders, seconds, self.stop)
        if news:
            log.debug("%s: news in %s", self.account.name, ", ".join(sorted(news)))

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, DeadGrant):
            self._paused(exc)
            return
        if isinstance(exc, STATE_FATAL):
            self.fatal = exc  # the service stops (and says why)
            self.stop.wait()
            return
        delay = self.backoff.next()
        name = self.account.name
        if isinstance(exc, FATAL):
            self.fatal = exc
            text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
            log.error("%s (retrying in %.0fs)", scoped(self.account, text), delay)
        elif isinstance(exc, NudgerError):
            # The IMAP edge's sentences start "NAME (host:port): ": name the account once.
            text = str(exc).removeprefix(f"{name} ")
            log.warning("%s: cycle failed: %s (retrying in %.0fs)", name, text, delay)
        else:
            log.error("%s: internal error: %s: %s (retrying in %.0fs; run with -vv for details)",
                      self.account.name, type(exc).__name__, exc, delay)
            log.debug("traceback", exc_info=exc)
        self.stop.wait(delay)

    def _paused(self, exc: DeadGrant) -> None:
        """Only a new sign-in helps: wait (asking nothing of the provider) until ``nudger
        auth`` has written the account's token file, then go on."""
        self.fatal = exc
        log.error("%s (this account is paused until then; the others go on)", exc)
        seen = _stamp(exc.watch)
        while not self.stop.wait(1.0):
            if _stamp(exc.watch) != seen:
                log.info("%s: signed in again; resuming", self.account.name)
                self.fatal, self.succeeded = None, False
                self.backoff.reset()
                return


def _stamp(path: Any) -> tuple[int, int] | None:
    """The file's identity and change time (None while it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
