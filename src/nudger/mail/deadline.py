"""Deadlines on an IMAP connection: a whole command, and a whole cycle, bounded in time.

A socket timeout bounds only the silence between two bytes: a server that sends one
byte every few seconds never trips it, and a cycle never ends. Here every command sent
starts a deadline of ``command`` seconds for all that is read until the next command,
plus a second for every ``RATE`` bytes received (a big answer over a slow line is not
a stuck server), and a cycle's deadline bounds all its commands together. The sockets
are the standard ones with reads that look at the clock first: imaplib and imapclient
use them as they are.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import imapclient
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS, wrap_socket

RATE = 16 * 1024  # bytes a second: the slowest steady line a big answer may come over


class DeadlinePassed(TimeoutError):
    """No complete answer in time: ``cycle`` tells which deadline passed, ``seconds`` how
    long it was, ``command`` the deadline of one command (a cycle's is a multiple)."""

    def __init__(self, cycle: bool, seconds: float, command: float):
        self.cycle, self.seconds, self.command = cycle, seconds, command
        super().__init__(f"{'cycle' if cycle else 'command'} deadline of {seconds:.0f}s passed")


class Deadline:
    """The two deadlines of one connection. A cycle starts at connect and again after
    each wait for new mail; while waiting (IDLE) no deadline applies."""

    def __init__(self, command: float, cycle: float):
        self.command, self.cycle = command, cycle
        self.paused = False
        self.new_cycle()

    def new_cycle(self) -> None:
        self.cycle_ends = time.monotonic() + self.cycle
        self.command_ends = time.monotonic() + self.command

    def sent(self) -> None:
        self.command_ends = time.monotonic() + self.command

    def received(self, size: int) -> None:
        self.command_ends += size / RATE

    def left(self) -> float | None:
        """Seconds left to read in, or None while paused; raises when none are left."""
        if self.paused:
            return None
        left = min(self.command_ends, self.cycle_ends) - time.monotonic()
        if left <= 0:
            raise self.passed()
        return left

    def passed(self) -> DeadlinePassed:
        cycle = self.cycle_ends <= self.command_ends
        return DeadlinePassed(cycle, self.cycle if cycle else self.command, self.command)


class _Bounded:
    """Mixed into a socket class: sending starts a command's deadline, reading honours it."""

    deadline: Deadline | None = None

    def sendall(self, data: Any, *args: Any) -> Any:
        if self.deadline is not None:
            self.deadline.sent()
        return super().sendall(data, *args)  # type: ignore[misc]

    def recv_into(self, *args: Any) -> Any:
        return self._bounded(super().recv_into, args)  # type: ignore[misc]

    def recv(self, *args: Any) -> Any:
        return self._bounded(super().recv, args)  # type: ignore[misc]

    def _bounded(self, read: Any, args: tuple[Any, ...]) -> Any:
        left = self.deadline.left() if self.deadline is not None else None
        if left is None:  # no deadline, or IDLE (which polls a non-blocking socket)
            return read(*args)
        self.settimeout(left)  # type: ignore[attr-defined]
        assert self.deadline is not None
        try:
            got = read(*args)
        except TimeoutError:
            raise self.deadline.passed() from None
        self.deadline.received(got if isinstance(got, int) else len(got))
        return got


class BoundedSocket(_Bounded, socket.socket):
    pass


class BoundedSSLSocket(_Bounded, ssl.SSLSocket):
    pass


def bound(sock: socket.socket, deadline: Deadline) -> socket.socket:
    """``sock`` with ``deadline`` on its reads. A TLS socket is made of the bounded class
    by its context (``sslsocket_class``); a plain one is rebuilt on its descriptor."""
    if not isinstance(sock, _Bounded):
        timeout = sock.gettimeout()
        sock = BoundedSocket(fileno=sock.detach())
        sock.settimeout(timeout)
    sock.deadline = deadline
    return sock


def bounded_context(cafile: str | None) -> ssl.SSLContext:
    """The default, verifying TLS context, whose sockets honour deadlines."""
    context = ssl.create_default_context(cafile=cafile)
    context.sslsocket_class = BoundedSSLSocket
    return context


class _GreetedCapabilities:
    """imaplib asks CAPABILITY on connecting, even when the greeting named them (as
    Dovecot's does, RFC 3501 7.1): a round trip saved by reading them from there."""

    untagged_responses: dict[str, list[Any]]
    capabilities: tuple[str, ...]

    def _get_capabilities(self) -> None:
        named = self.untagged_responses.pop("CAPABILITY", None)
        if named and isinstance(named[-1], bytes):
            self.capabilities = tuple(named[-1].decode("ascii", "replace").upper().split())
            return
        super()._get_capabilities()  # type: ignore[misc]


class _Heard:
    """Mixed into imaplib's class: each untagged answer it reads is shown to ``heard``
    first (what NOTIFY tells comes unasked, amid any command), which says whether
    imaplib keeps it too (one it keeps piles up until a command reads it)."""

    heard: Callable[[str, Any], bool] | None = None

    def _append_untagged(self, typ: str, dat: Any) -> None:
        if self.heard is None or self.heard(typ, dat):
            super()._append_untagged(typ, dat)  # type: ignore[misc]


Dialled = Callable[[], socket.socket]  # the connection dialled already, or what dialling raised


class _Plain(_Heard, _GreetedCapabilities, IMAP4WithTimeout):
    def __init__(self, deadline: Deadline, host: str, port: int, timeout: float | None,
                 dialled: Dialled | None):
        self._deadline, self._dialled = deadline, dialled
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._dialled() if self._dialled else super()._create_socket(timeout)
        return bound(sock, self._deadline)


class _TLS(_Heard, _GreetedCapabilities, IMAP4_TLS):
    def __init__(self, deadline: Deadline, host: str, port: int, context: ssl.SSLContext | None,
                 timeout: float | None, dialled: Dialled | None):
        self._deadline, self._dialled = deadline, dialled
        super().__init__(host, port, context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        if self._dialled:
            sock = wrap_socket(self._dialled(), self.ssl_context, self.host)
        else:
            sock = super()._create_socket(timeout)
        return bound(sock, self._deadline)


class BoundedClient(imapclient.IMAPClient):
    """imapclient on deadline-bound sockets from the first byte (the greeting) on."""

    def __init__(self, host: str, deadline: Deadline, dialled: Dialled | None = None, **kwargs: Any):
        self.deadline, self.dialled = deadline, dialled
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TLS(self.deadline, self.host, self.port, self.ssl_context, timeout, self.dialled)
        return _Plain(self.deadline, self.host, self.port, timeout, self.dialled)

    def starttls(self, ssl_context: Any = None) -> Any:
        answer = super().starttls(ssl_context)
        bound(self._imap.sock, self.deadline)  # the TLS socket imaplib made (of our class)
        return answer
