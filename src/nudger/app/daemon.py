"""Running cycles: once (``run --once``) or as a service that runs for months.

The service runs one worker thread per account, so one failing account is logged and
retried with backoff while the others go on. The main thread owns the signals:
SIGTERM/SIGINT stop (a second one stops at once), SIGHUP reloads the configuration,
keeping the running one if the new file is broken.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from nudger.app.handover import wait_stopped
from nudger.app.passwords import check_password_sources, read_password
from nudger.app.report import cycle_text, line, print_cycle, print_json, totals_text
from nudger.app.sdnotify import notify, watchdog_interval
from nudger.config.load import load_config
from nudger.config.model import Account, Config
from nudger.cycle.cycle import CycleResult, run_cycle
from nudger.cycle.lock import StateLocked, lock_is_current, lock_state_dir
from nudger.cycle.state import State
from nudger.cycle.statefile import FILE_NAME, file_id, translate
from nudger.errors import (
    EX_OK,
    EX_TEMPFAIL,
    AuthError,
    ConfigError,
    DeadGrant,
    NudgerError,
    ServerConfigError,
    StateError,
    StateReadOnly,
    StateTooNew,
    TemporaryError,
)
from nudger.mail.imap import connect
from nudger.mail.mailbox import Mailbox
from nudger.mail.smtp import SmtpSender

log = logging.getLogger(__name__)

# Not the account's trouble but the state's, which every account shares (a read-only disk, a
# file of a newer nudger): the service exits with its status, as `run --once` does.
STATE_FATAL = (StateReadOnly, StateTooNew)
FATAL = (AuthError, ConfigError, ServerConfigError, *STATE_FATAL)  # retrying soon will not help
FILES_PER_ACCOUNT = 3  # its connection, its SQLite database and journal (bench/accounts.py)
STATE_GONE = "was deleted or replaced under the running daemon"


def open_mailbox(account: Account) -> Mailbox:
    if account.oauth2 is not None:
        from nudger.app.signin import tokens_for

        return connect(account, tokens_for(account))
    assert account.password is not None
    return connect(account, read_password(account.password, account.name))


def open_sender(account: Account) -> SmtpSender | None:
    """The account's SMTP server, connected only when something is sent; None without [smtp]."""
    smtp = account.smtp
    if smtp is None:
        return None
    if smtp.password is None:  # an OAuth2 account: its tokens, as for IMAP
        from nudger.app.signin import tokens_for

        return SmtpSender(account, bearer=tokens_for(account))
    source = smtp.password
    name = account.name if source is account.password else f"{account.name}.smtp"
    return SmtpSender(account, lambda: read_password(source, name))


def _lock(config: Config) -> int:
    try:
        return lock_state_dir(config.daemon.state_dir)
    except StateLocked as exc:
        raise TemporaryError(str(exc)) from None
    except OSError as exc:  # a read-only or full disk: say which, with its exit status
        raise translate(exc, config.daemon.state_dir) from exc


class _Home:
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


class _Progress:
    """A progress bar on a terminal while a first sync reads many headers."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.tasks: dict[str, Any] = {}

    def __call__(self, folder: str, done: int, total: int) -> None:
        if total < 200:
            return
        if folder not in self.tasks:
            if not self.tasks:
                self.bar.start()
            self.tasks[folder] = self.bar.add_task(f"reading {folder}", total=total)
        self.bar.update(self.tasks[folder], completed=done)

    def close(self) -> None:
        if self.tasks:
            self.bar.stop()


def run_once(config: Config, now: datetime, dry_run: bool, as_json: bool, verbose: bool,
             full: bool = False) -> int:
    """One cycle per account. ``full`` looks at every thread of the window, not only the
    ones that changed (wanted for previews: --dry-run, --now)."""
    lock = None if dry_run else _lock(config)
    worst = EX_OK
    try:
        if dry_run and not (config.daemon.state_dir / FILE_NAME).exists():
            state = State.memory()  # a dry run keeps nothing: no state file, not even an empty one
        else:
            state = State.open(config.daemon.state_dir, rebuild=not dry_run)
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    try:
        for account in config.accounts:
            work = state.scratch_copy() if dry_run else state
            progress = _Progress() if sys.stderr.isatty() else None
            sender = None if dry_run else open_sender(account)
            try:
                mailbox = open_mailbox(account)
                try:
                    result = run_cycle(config, account, mailbox, work, now, dry_run=dry_run,
                                       progress=progress, full=full, sender=sender)
                finally:
                    mailbox.close()
                    if sender is not None:
                        sender.close()
                    if progress is not None:
                        progress.close()
            except NudgerError as exc:  # one account failing must not stop the others
                text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
                print(f"nudger: {scoped(account, text)}", file=sys.stderr)
                worst = max(worst, exc.exit_code)
                continue
            print_cycle(result, dry_run, verbose)
            if as_json:
                print_json(result, dry_run)
            if result.send_error is not None:  # drafting went on; sending could not
                print(f"nudger: {scoped(account, str(result.send_error))}", file=sys.stderr)
                worst = max(worst, result.send_error.exit_code)
    finally:
        state.close()
        if lock is not None:
            os.close(lock)
    return worst


def scoped(account: Account, text: str) -> str:
    """The message, naming its account once (the IMAP edge's messages already start
    with "NAME (host:port)")."""
    named = text.startswith((f"{account.name} ", f"{account.name}:"))
    return text if named else f"{account.name}: {text}"


def allow_open_files(accounts: int) -> None:
    """Raise the soft limit of open files as far as needed, within the hard one: systemd
    starts services at 1024 (a few hundred accounts), with a hard limit far above."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * (64 + FILES_PER_ACCOUNT * accounts)  # room for reloads and first syncs
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if top > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


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
                 opener: Callable[[Account], Mailbox] = open_mailbox, *, home: _Home,
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
                        log.error("%s (nothing was sent; tried again next cycle)",
                                  scoped(self.account, str(result.send_error)))
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


class Service:
    def __init__(self, config: Config, config_path: Path,
                 opener: Callable[[Account], Mailbox] = open_mailbox, verbose: bool = False,
                 clock: Clock | None = None):
        self.config, self.path, self.opener = config, config_path, opener
        self.clock = clock or Clock()
        self.verbose = verbose  # -v: log every decision of every cycle
        self.stopping = threading.Event()
        self.reload = threading.Event()
        self.workers: list[Worker] = []
        self.home: _Home | None = None
        self.ready = False
        self.lock = threading.Lock()
        self.ping: float | None = None  # systemd's watchdog interval, if it asked for pings

    def on_cycle(self, account: str, result: CycleResult) -> None:
        # The account's totals, then what this cycle did, at the account's local time.
        at = self.clock.now().astimezone(result.timezone)
        status = f"{account}: {totals_text(result.totals)}; {cycle_text(result)} at {at:%H:%M %Z}"
        with self.lock:
            if not self.ready:
                self.ready = True
                notify("READY=1", f"STATUS={status}")
                log.info("ready: %s", status)
            else:
                notify(f"STATUS={status}")
                log.info("cycle done: %s", status)
        if self.verbose:
            for decision in result.decisions:
                log.info("%s: %s", account, line(decision))

    def start_workers(self) -> None:
        assert self.home is not None
        allow_open_files(len(self.config.accounts))  # (a reload may bring more accounts)
        self.workers = [Worker(self.config, a, self.on_cycle, self.opener, home=self.home, clock=self.clock)
                        for a in self.config.accounts]
        for w in self.workers:
            w.start()

    def stop_workers(self, timeout: float = 5.0) -> None:
        """At the service's end: the process exits after, and its workers with it."""
        for w in self.workers:
            w.stop.set()
        for w in self.workers:
            w.join(timeout)

    def hand_over(self, why: str) -> bool:
        """Stop the workers and wait until they really have (never a new worker, nor the
        lock let go, beside one still writing); False if told to stop meanwhile."""
        for w in self.workers:
            w.stop.set()
        return wait_stopped(self.workers, why, self.stopping, self.ping)

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
            return
        if self.stopping.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            raise SystemExit(0)
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stopping.set()

    def _reload(self) -> None:
        self.reload.clear()
        try:
            new = load_config(self.path)
            check_password_sources(new)  # as at start: before the new workers connect
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem)
            log.error("reload: keeping the running configuration")
            return
        assert self.home is not None
        home = self.home
        if new.daemon.state_dir.resolve() != home.dir.resolve():
            try:  # the new directory's lock first: never use a state another process holds
                home = _Home(new.daemon.state_dir)
            except (StateLocked, StateError, OSError) as exc:
                log.error("reload: %s", exc)
                log.error("reload: keeping the running configuration")
                return
        log.info("reloading the configuration from %s", self.path)
        if not self.hand_over("reload"):
            if home is not self.home:
                home.close()
            return
        if home is not self.home:
            self.home.close()
            self.home = home
            log.info("now using the state in %s", home.dir)
        self.config = new
        self.start_workers()

    def _start_over(self) -> int | None:
        """The state directory was deleted or replaced under us: take the lock on what is
        there now and start again with a fresh state; an exit status if we cannot."""
        assert self.home is not None
        where = self.config.daemon.state_dir
        log.warning("the state in %s %s; starting over with a fresh one (drafts already in "
                    "Drafts are found again, never written twice)", where, STATE_GONE)
        try:
            home = _Home(where)
        except (StateLocked, OSError) as exc:
            log.error("cannot start over: %s; stopping", exc)
            return EX_TEMPFAIL
        if not self.hand_over("starting over"):
            home.close()
            return None
        self.home.close()
        self.home = home
        self.start_workers()
        return None

    def _state_unusable(self) -> int | None:
        for w in self.workers:
            if isinstance(w.fatal, STATE_FATAL):
                log.error("%s; stopping", w.fatal)
                return w.fatal.exit_code
        return None

    def run(self) -> int:
        try:
            self.home = _Home(self.config.daemon.state_dir)
        except StateLocked as exc:
            raise TemporaryError(str(exc)) from None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        ping = self.ping = watchdog_interval()
        self.start_workers()
        try:
            while not self.stopping.is_set():
                self.stopping.wait(min(ping or 1.0, 1.0))
                if self.reload.is_set():
                    self._reload()
                if not self.home.intact() and (code := self._start_over()) is not None:
                    return code
                if ping:
                    notify("WATCHDOG=1")
                if (code := self._state_unusable()) is not None:
                    return code
                fatal = [w.fatal for w in self.workers if w.fatal is not None and not w.succeeded]
                if self.workers and len(fatal) == len(self.workers):
                    # Nothing can work until the user acts: exit so systemd shows why
                    # (RestartPreventExitStatus=77 78 keeps it from looping).
                    first = fatal[0]
                    assert first is not None
                    return first.exit_code
        finally:
            notify("STOPPING=1")
            self.stop_workers()
            if not any(w.is_alive() for w in self.workers):
                self.home.close()  # (else the lock goes with the process, and its workers)
        return EX_OK


def run_daemon(config: Config, config_path: Path, verbose: bool = False,
               start: datetime | None = None) -> int:
    return Service(config, config_path, verbose=verbose, clock=Clock(start)).run()
