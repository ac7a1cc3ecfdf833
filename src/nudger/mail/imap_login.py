"""Connecting and logging in: the part of the IMAP edge a login needs, and no more.

Kept apart from imap.py so that it imports in less time than the whole edge: ``run
--once`` (app/connect.py) logs in with it while the rest of the edge, and what a cycle
runs, is still being imported.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import NamedTuple

from imapclient.imapclient import SocketTimeout

from nudger.config.model import Account, is_loopback
from nudger.errors import NudgerError, ServerConfigError
from nudger.mail.deadline import BoundedClient, Deadline, bounded_context
from nudger.mail.imap_errors import translate
from nudger.mail.imap_oauth import Bearer, bearer_login, password_login
from nudger.mail.imap_pipeline import Answer

# A cycle (from connecting, or from waking after a wait, to the next wait) fails after
# this many times the account's timeout: 30 minutes at the default 60 s, room for the
# first sync of a big account over a slow line; a command has the timeout itself.
CYCLE_TIMEOUTS = 30

class LoggedIn(NamedTuple):
    client: BoundedClient
    deadline: Deadline
    listing: Answer | None = None  # the answer to a LIST sent with the login, if one was


def log_in(account: Account, password: str | Bearer,
           dialled: Callable[[], socket.socket] | None = None) -> LoggedIn:
    """A client logged in as the account, and the deadline its commands run under.
    ``dialled``: the connection, dialled already (connect.py's ``Early``)."""
    if account.tls == "none" and not is_loopback(account.host):
        raise NudgerError(f"{account.name}: refusing plaintext IMAP to {account.host}")
    timeout = account.timeout.total_seconds()
    deadline = Deadline(timeout, CYCLE_TIMEOUTS * timeout)
    context = None
    if account.tls != "none":
        try:
            context = bounded_context(str(account.ca_file) if account.ca_file else None)
        except (ssl.SSLError, OSError) as exc:  # changed since the configuration was read
            raise ServerConfigError(f"accounts.{account.name}.ca_file: cannot use "
                                    f"{account.ca_file} as a CA certificate ({exc})") from None
    try:
        client = BoundedClient(
            account.host, deadline, port=account.port, ssl=account.tls == "implicit",
            ssl_context=context, timeout=SocketTimeout(connect=timeout, read=timeout),
            dialled=dialled)
        client.normalise_times = False
        if account.tls == "starttls":
            client.starttls(context)
        listing = None
        if isinstance(password, str):
            listing = password_login(client, account, password)
        else:
            bearer_login(client, account, password)
    except Exception as exc:  # noqa: BLE001 - translated, never leaked with the password
        raise translate(exc, account, "logging in") from None
    return LoggedIn(client, deadline, listing)

