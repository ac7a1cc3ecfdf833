"""Running cycles: once (``run --once``) or forever (the service), one account at a time.

Accounts are independent: one failing is logged and retried later, the others go on.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from nudger.config import Account, Config
from nudger.engine import CycleResult, run_cycle
from nudger.errors import EX_OK, ConfigError, NudgerError
from nudger.imap import connect
from nudger.mailbox import Mailbox
from nudger.passwords import read_password
from nudger.report import print_cycle, print_json
from nudger.state import State

log = logging.getLogger(__name__)


def open_mailbox(account: Account) -> Mailbox:
    return connect(account, read_password(account.password, account.name))


def cycle_account(config: Config, account: Account, state: State, now: datetime,
                  dry_run: bool, opener: Callable[[Account], Mailbox] = open_mailbox) -> CycleResult:
    mailbox = opener(account)
    try:
        return run_cycle(config, account, mailbox, state, now, dry_run=dry_run,
                         progress=_progress if sys.stderr.isatty() else None)
    finally:
        mailbox.close()
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)


def _progress(folder: str, done: int, total: int) -> None:
    if total >= 200 and (done % 100 == 0 or done == total):
        print(f"\r\033[Kreading {folder}: {done}/{total} headers", end="", file=sys.stderr)


def run_once(config: Config, now: datetime, dry_run: bool, as_json: bool, verbose: bool) -> int:
    worst = EX_OK
    state = State.open(config.daemon.state_dir)
    try:
        for account in config.accounts:
            work = state.scratch_copy() if dry_run else state
            try:
                result = cycle_account(config, account, work, now, dry_run)
            except NudgerError as exc:  # one account failing must not stop the others
                _report_failure(account, exc)
                worst = max(worst, exc.exit_code)
                continue
            print_cycle(result, dry_run, verbose)
            if as_json:
                print_json(result, dry_run)
    finally:
        state.close()
    return worst


def _report_failure(account: Account, exc: NudgerError) -> None:
    text = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
    print(f"nudger: {account.name}: {text}", file=sys.stderr)


def run_daemon(config: Config, verbose: bool) -> int:
    """Poll every ``poll_interval``; exit cleanly on SIGTERM/SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(1)  # a second signal: stop at once
        log.info("received %s; stopping after the current step", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state = State.open(config.daemon.state_dir)
    try:
        while not stop.is_set():
            for account in config.accounts:
                if stop.is_set():
                    break
                try:
                    result = cycle_account(config, account, state, datetime.now(UTC), False)
                    log.info("%s: cycle done: %d thread(s), %d draft(s) written", account.name,
                             len(result.decisions), len(result.written))
                except NudgerError as exc:
                    log.warning("%s: cycle failed: %s", account.name, exc)
            stop.wait(config.daemon.poll_interval.total_seconds())
    finally:
        state.close()
    return EX_OK
