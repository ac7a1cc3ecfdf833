"""An account's mailbox opened: its password or tokens read, connected, logged in.

``Early`` opens the first account's while the rest of the program is still being
imported (``run --once``): connecting and logging in are round trips, three or four
to a distant server, and what a cycle runs takes a tenth of a second of CPU to import;
done together, the one hides the other. Its thread dials the server first, before the
IMAP edge is imported (the TCP handshake and the greeting, and with implicit TLS its
handshake, are then under way while it is), and logs in once the main thread has
imported it: the thread waits on the network while the main thread imports, never
importing a module at the same time as it.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401 - what connecting to a host by name imports, imported here
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from nudger.app.passwords import read_password
from nudger.config.model import Account, is_loopback

if TYPE_CHECKING:
    from nudger.mail.mailbox import Mailbox

DISCARD_WAIT = 5.0  # seconds


def open_mailbox(account: Account, dialled: Callable[[], socket.socket] | None = None) -> Mailbox:
    """``dialled``: gives the socket a dial begun earlier made, or raises what it raised."""
    from nudger.mail.imap import connect

    if account.oauth2 is not None:
        from nudger.app.signin import tokens_for

        return connect(account, tokens_for(account), dialled)
    assert account.password is not None
    return connect(account, read_password(account.password, account.name), dialled)


def _load_edge(account: Account) -> None:
    """What logging in runs, imported here, not in the thread (see above)."""
    import nudger.mail.imap  # noqa: F401

    if account.oauth2 is not None:
        import nudger.app.signin  # noqa: F401


class _Dial:
    """A TCP connection to the account's server, made as it is created (in Early's thread)."""

    def __init__(self, account: Account):
        self.sock: socket.socket | None = None
        self.error: OSError | None = None
        try:
            self.sock = socket.create_connection((account.host, account.port),
                                                 account.timeout.total_seconds())
        except OSError as exc:  # (raised where the connection is used, as it would be there)
            self.error = exc

    def __call__(self) -> socket.socket:
        sock, self.sock = self.sock, None
        if sock is None:
            raise self.error or OSError("the connection was taken already")
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Early:
    """``open_mailbox(account)`` begun in a thread; ``take()`` gives what it gave, or
    raises what it raised, where the caller would have called it."""

    def __init__(self, account: Account):
        self.account = account
        self._mailbox: Mailbox | None = None
        self._error: BaseException | None = None
        self._imported = threading.Event()
        self._thread = threading.Thread(target=self._open, name=f"connect {account.name}",
                                        daemon=True)
        self._thread.start()
        try:
            _load_edge(account)
        finally:
            self._imported.set()

    def _open(self) -> None:
        # (Not dialled where nudger refuses to log in: plaintext to a distant host.)
        dial = _Dial(self.account) if self.account.tls != "none" or is_loopback(self.account.host) else None
        try:
            self._imported.wait()
            self._mailbox = open_mailbox(self.account, dial)
        except BaseException as exc:  # noqa: BLE001 - raised again by take(), in the caller's thread
            self._error = exc
        finally:
            if dial is not None:
                dial.close()  # (if the login never took it)

    def take(self) -> Mailbox:
        self._thread.join()
        mailbox, error, self._mailbox, self._error = self._mailbox, self._error, None, None
        if error is not None:
            raise error
        assert mailbox is not None
        return mailbox

    def discard(self) -> None:
        """Not wanted after all (the state is locked or unreadable, Ctrl-C): logged out, if
        it got in; nothing once taken. A connection still being made after a few seconds is left to end with
        the process (a daemon thread): an interrupt must not wait out a server's timeout."""
        self._thread.join(timeout=DISCARD_WAIT)
        mailbox, self._mailbox, self._error = self._mailbox, None, None
        if mailbox is not None:
            mailbox.close()
