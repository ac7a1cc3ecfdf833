"""Handing the state over from one set of account workers to the next (a reload, a
state started over): the old ones must have really stopped first.

A worker stops at its next safe point: at once from its wait for news, else when its
cycle ends. Until then it may still write drafts and the state, so a new worker for the
same account (or another process, once the lock is let go) must not start beside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from nudger.app.sdnotify import notify

log = logging.getLogger(__name__)

PATIENCE = 1.0  # seconds before saying that we wait (a wait for news ends within one)


def wait_stopped(workers: Sequence[threading.Thread], why: str, stopping: threading.Event,
                 ping: float | None) -> bool:
    """Wait until every worker (already told to stop) has ended, however long its cycle
    takes, telling systemd's watchdog we are alive meanwhile. False if the service was
    told to stop while waiting (the process then ends, and its workers with it)."""
    started = time.monotonic()
    said = False
    while alive := [w for w in workers if w.is_alive()]:
        if stopping.is_set():
            return False
        alive[0].join(min(ping or 1.0, 1.0))
        if ping:
            notify("WATCHDOG=1")
        if not said and time.monotonic() - started >= PATIENCE and any(w.is_alive() for w in workers):
            names = ", ".join(w.name.removeprefix("account-") for w in workers if w.is_alive())
            log.info("%s: waiting for the running cycle of %s to end first", why, names)
            said = True
    if said:
        log.info("%s: the running cycles ended after %.0fs", why, time.monotonic() - started)
    return True
