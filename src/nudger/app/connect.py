"""An account's mailbox opened: its password or tokens read, connected, logged in.

``Early`` opens the first account's while the rest of the program is still being
imported (``run --once``): connecting and logging in are round trips, three or four
to a distant server, and what a cycle runs takes a tenth of a second of CPU to import;
done together, the one hides the other. This module imports only what connecting
needs, so that the thread waits on the network while the main thread imports, never
importing a module at the same time as it.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401 - what connecting to a host by name imports, imported here
import threading

from nudger.app.passwords import read_password
from nudger.config.model import Account
from nudger.mail.imap import connect
from nudger.mail.mailbox import Mailbox

DISCARD_WAIT = 5.0  # seconds


def open_mailbox(account: Account) -> Mailbox:
    if account.oauth2 is not None:
        from nudger.app.signin import tokens_for

        return connect(account, tokens_for(account))
    assert account.password is not None
    return connect(account, read_password(account.password, account.name))


class Early:
    """``open_mailbox(account)`` begun in a thread; ``take()`` gives what it gave, or
    raises what it raised, where the caller would have called it."""

    def __init__(self, account: Account):
        self.account = account
        self._mailbox: Mailbox | None = None
        self._error: BaseException | None = None
        if account.oauth2 is not None:
            import nudger.app.signin  # noqa: F401 - imported here, not in the thread (see above)
        self._thread = threading.Thread(target=self._open, name=f"connect {account.name}",
                                        daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            self._mailbox = open_mailbox(self.account)
        except BaseException as exc:  # noqa: BLE001 - raised again by take(), in the caller's thread
            self._error = exc

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
