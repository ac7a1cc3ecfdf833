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
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from nudger.config import Account, Config, load_config
from nudger.engine import CycleResult, run_cycle
from nudger.errors import (
    EX_OK,
    AuthError,
    ConfigError,
    NudgerError,
    ServerConfigError,
    TemporaryError,
)
from nudger.imap import ImapMailbox, connect
from nudger.mailbox import Mailbox
from nudger.passwords import check_password_sources, read_password
from nudger.report import print_cycle, print_json
from nudger.sdnotify import notify, watchdog_interval
from nudger.state import State, StateLocked, lock_state_dir

log = logging.getLogger(__name__)

FATAL = (AuthError, ConfigError, ServerConfigError)  # retrying soon will not help


def open_mailbox(account: Account) -> Mailbox:
    return connect(account, read_password(account.password, account.name))


def _lock(config: Config) -> int:
    try:
        return lock_state_dir(config.daemon.state_dir)
    except StateLocked as exc:
        raise TemporaryError(str(exc)) from None


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
    state = State.open(config.daemon.state_dir)
    try:
        for account in config.accounts:
            work = state.scratch_copy() if dry_run else state
            progress = _Progress() if sys.stderr.isatty() else None
            try:
                mailbox = open_mailbox(account)
                try:
                    result = run_cycle(config, account, mailbox, work, now, dry_run=dry_run,
                                       progress=progress, full=full)
                finally:
                    mailbox.close()
                    if progress is not None:
                        progress.close()
            except NudgerError as exc:  # one account failing must not stop the others
                text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
                print(f"nudger: {account.name}: {text}", file=sys.stderr)
                worst = max(worst, exc.exit_code)
                continue
            print_cycle(result, dry_run, verbose)
            if as_json:
                print_json(result, dry_run)
    finally:
        state.close()
        if lock is not None:
            os.close(lock)
    return worst


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


class Worker(threading.Thread):
    """Cycles for one account until told to stop."""

    def __init__(self, config: Config, account: Account, on_cycle: Callable[[str, CycleResult], None],
                 opener: Callable[[Account], Mailbox] = open_mailbox):
        super().__init__(name=f"account-{account.name}", daemon=True)
        self.config, self.account, self.on_cycle, self.opener = config, account, on_cycle, opener
        self.stop = threading.Event()
        self.succeeded = False
        self.fatal: NudgerError | None = None
        self.backoff = Backoff()

    def run(self) -> None:
        state: State | None = None
        mailbox: Mailbox | None = None
        try:
            while not self.stop.is_set():
                try:
                    if state is None:
                        state = State.open(self.config.daemon.state_dir)
                    if mailbox is None:
                        mailbox = self.opener(self.account)
                    result = run_cycle(self.config, self.account, mailbox, state, datetime.now(UTC))
                    self.succeeded, self.fatal = True, None
                    self.backoff.reset()
                    self.on_cycle(self.account.name, result)
                    self._wait(mailbox)
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

    def _wait(self, mailbox: Mailbox) -> None:
        seconds = self.config.daemon.poll_interval.total_seconds()
        if isinstance(mailbox, ImapMailbox):
            if mailbox.wait_for_news("INBOX", seconds, self.stop):
                log.debug("%s: new mail in INBOX", self.account.name)
        else:
            self.stop.wait(seconds)

    def _failed(self, exc: Exception) -> None:
        delay = self.backoff.next()
        if isinstance(exc, FATAL):
            self.fatal = exc
            text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
            log.error("%s: %s (retrying in %.0fs)", self.account.name, text, delay)
        elif isinstance(exc, NudgerError):
            log.warning("%s: cycle failed: %s (retrying in %.0fs)", self.account.name, exc, delay)
        else:
            log.error("%s: internal error: %s: %s (retrying in %.0fs; run with -vv for details)",
                      self.account.name, type(exc).__name__, exc, delay)
            log.debug("traceback", exc_info=exc)
        self.stop.wait(delay)


class Service:
    def __init__(self, config: Config, config_path: Path,
                 opener: Callable[[Account], Mailbox] = open_mailbox):
        self.config, self.path, self.opener = config, config_path, opener
        self.stopping = threading.Event()
        self.reload = threading.Event()
        self.workers: list[Worker] = []
        self.ready = False
        self.lock = threading.Lock()

    def on_cycle(self, account: str, result: CycleResult) -> None:
        awaiting = sum(result.count(s) for s in ("due", "drafted", "waiting"))
        status = (f"{account}: {awaiting} awaiting, {len(result.written)} drafted, "
                  f"{len(result.withdrawn)} withdrawn at {datetime.now(UTC):%H:%M}Z")
        with self.lock:
            if not self.ready:
                self.ready = True
                notify("READY=1", f"STATUS={status}")
                log.info("ready: %s", status)
            else:
                notify(f"STATUS={status}")
        log.info("%s: cycle done: %d thread(s), %d awaiting, %d drafted, %d withdrawn", account,
                 len(result.decisions), awaiting, len(result.written), len(result.withdrawn))

    def start_workers(self) -> None:
        self.workers = [Worker(self.config, a, self.on_cycle, self.opener) for a in self.config.accounts]
        for w in self.workers:
            w.start()

    def stop_workers(self, timeout: float = 5.0) -> None:
        for w in self.workers:
            w.stop.set()
        for w in self.workers:
            w.join(timeout)

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
        log.info("reloading the configuration from %s", self.path)
        self.stop_workers()
        self.config = new
        self.start_workers()

    def run(self) -> int:
        lock = _lock(self.config)
        # Create the state (schema, WAL) once, here, before the workers open it together:
        # switching a new database to WAL needs it to itself.
        State.open(self.config.daemon.state_dir).close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        ping = watchdog_interval()
        self.start_workers()
        try:
            while not self.stopping.is_set():
                self.stopping.wait(min(ping or 1.0, 1.0))
                if self.reload.is_set():
                    self._reload()
                if ping:
                    notify("WATCHDOG=1")
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
            os.close(lock)
        return EX_OK


def run_daemon(config: Config, config_path: Path) -> int:
    return Service(config, config_path).run()
