"""Running cycles: once (``run --once``) or as a service that runs for months.

The service runs one worker thread per account, so one failing account is logged and
retried with backoff while the others go on. The main thread owns the signals:
SIGTERM/SIGINT stop (a second one stops at once), SIGHUP reloads the configuration,
keeping the running one if the new file is broken.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from nudger.app.connect import Early
from nudger.app.handover import wait_stopped
from nudger.app.passwords import check_password_sources
from nudger.app.report import cycle_text, line, print_cycle, print_json, totals_text
from nudger.app.sdnotify import notify, watchdog_interval
from nudger.app.worker import (
    STATE_FATAL,
    Clock,
    Home,
    Worker,
    open_mailbox,
    open_sender,
    scoped,
)
from nudger.config.load import load_config
from nudger.config.model import Account, Config
from nudger.cycle.cycle import CycleResult, run_cycle
from nudger.cycle.lock import StateLocked, lock_state_dir
from nudger.cycle.state import State
from nudger.cycle.statefile import FILE_NAME, translate
from nudger.errors import (
    EX_OK,
    EX_TEMPFAIL,
    ConfigError,
    NudgerError,
    StateError,
    TemporaryError,
    printable,
)
from nudger.mail.mailbox import Mailbox

log = logging.getLogger(__name__)

FILES_PER_ACCOUNT = 3  # its connection, its SQLite database and journal (bench/accounts.py)
STATE_GONE = "was deleted or replaced under the running daemon"


def _lock(config: Config) -> int:
    try:
        return lock_state_dir(config.daemon.state_dir)
    except StateLocked as exc:
        raise TemporaryError(str(exc)) from None
    except OSError as exc:  # a read-only or full disk: say which, with its exit status
        raise translate(exc, config.daemon.state_dir) from exc


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
             full: bool = False, early: Early | None = None) -> int:
    """One cycle per account. ``full`` looks at every thread of the window, not only the
    ones that changed (wanted for previews: --dry-run, --now). ``early``: an account's
    mailbox being opened already (cli.py)."""
    try:
        return _run_once(config, now, dry_run, as_json, verbose, full, early)
    finally:
        if early is not None:  # (a no-op once taken; else the state was in use, unreadable...)
            early.discard()


def _run_once(config: Config, now: datetime, dry_run: bool, as_json: bool, verbose: bool,
              full: bool, early: Early | None) -> int:
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
                head = None
                if early is not None and early.account is account:
                    mailbox, head = early.take()
                else:
                    mailbox = open_mailbox(account)
                try:
                    result = run_cycle(config, account, mailbox, work, now, dry_run=dry_run,
                                       progress=progress, full=full, sender=sender, head=head)
                finally:
                    mailbox.close()
                    if sender is not None:
                        sender.close()
                    if progress is not None:
                        progress.close()
            except NudgerError as exc:  # one account failing must not stop the others
                text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
                print(f"nudger: {printable(scoped(account, text))}", file=sys.stderr)
                worst = max(worst, exc.exit_code)
                continue
            print_cycle(result, dry_run, verbose)
            if as_json:
                print_json(result, dry_run)
            if result.send_error is not None:  # drafting went on; sending could not
                print(f"nudger: {printable(scoped(account, str(result.send_error)))}", file=sys.stderr)
                worst = max(worst, result.send_error.exit_code)
    finally:
        state.close()
        if lock is not None:
            os.close(lock)
    return worst


def allow_open_files(accounts: int) -> None:
    """Raise the soft limit of open files as far as needed, within the hard one: systemd
    starts services at 1024 (a few hundred accounts), with a hard limit far above."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * (64 + FILES_PER_ACCOUNT * accounts)  # room for reloads and first syncs
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if top > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


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
        self.home: Home | None = None
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
                home = Home(new.daemon.state_dir)
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
            home = Home(where)
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
            self.home = Home(self.config.daemon.state_dir)
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
