"""systemd's notify protocol: a datagram to $NOTIFY_SOCKET. A no-op outside systemd."""

from __future__ import annotations

import os
import socket

# Seconds a datagram may wait for room in the socket's queue (a busy systemd, a queue of
# 10 by default): past that it is dropped. A send that waited for good would hold the
# service's main loop, so a SIGTERM would go unheard and the next watchdog ping unsent.
SEND_WAIT = 1.0


def notify(*states: str) -> bool:
    """Send e.g. ``notify("READY=1", "STATUS=idle")``; False when not under systemd, or
    when the socket had no room for it within ``SEND_WAIT``."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_WAIT)
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), if systemd asked for them."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 2_000_000)
    except ValueError:
        return None
