"""An account's mailbox opened: its password or tokens read, connected, logged in.

``Early`` opens the first account's while the rest of the program is still being
imported (``run --once``): connecting, logging in, listing the folders and asking their
statuses are round trips, three or four to a distant server (with a password, the folders
are listed in the login's write), and what a cycle runs takes a tenth of a second of CPU
to import; done together, the one hides the other. Its thread dials the server first,
before the IMAP edge is imported (the TCP handshake and the greeting, and with implicit
TLS its handshake, are then under way while it is); it logs in once the main thread has
imported what a login needs (imap_login.py), lists the folders and asks their statuses
once it has imported the rest of the edge: the thread waits on the network while the
main thread imports, never importing a module at the same time as it.
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
    from nudger.mail.imap_login import LoggedIn
    from nudger.mail.imap_oauth import Bearer
    from nudger.mail.layout import HeadStart
    from nudger.mail.mailbox import Mailbox

DISCARD_WAIT = 5.0  # seconds


def open_mailbox(account: Account, dialled: Callable[[], socket.socket] | None = None) -> Mailbox:
    """``dialled``: gives the socket a dial begun earlier made, or raises what it raised."""
    from nudger.mail.imap import connect

    return connect(account, _credentials(account), dialled)


def _credentials(account: Account) -> str | Bearer:
    """The account's password, or its OAuth2 tokens."""
    if account.oauth2 is not None:
        from nudger.app.signin import tokens_for

        return tokens_for(account)
    assert account.password is not None
    return read_password(account.password, account.name)


def _logged_in(account: Account, dialled: Callable[[], socket.socket] | None) -> LoggedIn:
    from nudger.mail.imap_login import log_in

    return log_in(account, _credentials(account), dialled)


def _mailbox_of(account: Account, logged_in: LoggedIn) -> Mailbox:
    from nudger.mail.imap import ImapMailbox

    return ImapMailbox(account, logged_in=logged_in)


def _head_start(mailbox: Mailbox, account: Account) -> HeadStart:
    from nudger.mail.layout import head_start

    return head_start(mailbox, account)


def _load_login(account: Account) -> None:
    """What logging in runs, imported here, not in the thread (see above)."""
    import nudger.mail.imap_login  # noqa: F401

    if account.password is not None and account.password.kind == "command":
        import subprocess  # noqa: F401 - what read_password runs it with
    if account.oauth2 is not None:
        import nudger.app.signin  # noqa: F401


def _load_edge() -> None:
    """What the rest of opening the mailbox runs (see above)."""
    import nudger.mail.imap  # noqa: F401
    import nudger.mail.layout  # noqa: F401


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
    """``open_mailbox(account)``, and the first calls of its cycle (``_head_start``),
    begun in a thread; ``take()`` gives what they gave, or raises what they raised,
    where the caller would have called them."""

    def __init__(self, account: Account):
        self.account = account
        self._mailbox: Mailbox | None = None
        self._head: HeadStart | None = None
        self._error: BaseException | None = None
        self._login_imported = threading.Event()
        self._imported = threading.Event()
        self._thread = threading.Thread(target=self._open, name=f"connect {account.name}",
                                        daemon=True)
        self._thread.start()
        try:
            try:
                _load_login(account)
            finally:
                self._login_imported.set()
            _load_edge()
        finally:
            self._imported.set()

    def _open(self) -> None:
        # (Not dialled where nudger refuses to log in: plaintext to a distant host.)
        dial = _Dial(self.account) if self.account.tls != "none" or is_loopback(self.account.host) else None
        try:
            self._login_imported.wait()
            logged_in = _logged_in(self.account, dial)
            self._imported.wait()
            self._mailbox = _mailbox_of(self.account, logged_in)
            self._head = _head_start(self._mailbox, self.account)
        except BaseException as exc:  # noqa: BLE001 - raised again by take(), in the caller's thread
            self._error = exc
            if self._mailbox is not None:
                self._mailbox.close()
                self._mailbox = None
        finally:
            if dial is not None:
                dial.close()  # (if the login never took it)

    def take(self) -> tuple[Mailbox, HeadStart]:
        self._thread.join()
        mailbox, head, error = self._mailbox, self._head, self._error
        self._mailbox, self._head, self._error = None, None, None
        if error is not None:
            raise error
        assert mailbox is not None and head is not None
        return mailbox, head

    def discard(self) -> None:
        """Not wanted after all (the state is locked or unreadable, Ctrl-C): logged out, if
        it got in; nothing once taken. A connection still being made after a few seconds is left to end with
        the process (a daemon thread): an interrupt must not wait out a server's timeout."""
        self._thread.join(timeout=DISCARD_WAIT)
        mailbox, self._mailbox, self._head, self._error = self._mailbox, None, None, None
        if mailbox is not None:
            mailbox.close()
