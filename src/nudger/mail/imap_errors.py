"""Failures at the IMAP edge, translated into nudger's own classes (errors.py) by what a
person does next: retry (temporary), fix the login (authentication), fix the
configuration (no retry). Every sentence names the account and what nudger was doing;
none ever carries the password."""

from __future__ import annotations

import socket
import ssl

from imapclient.exceptions import CapabilityError, IMAPClientAbortError, IMAPClientError, LoginError

from nudger.config.model import Account
from nudger.errors import AuthError, GarbledAnswer, NudgerError, ServerConfigError, TemporaryError
from nudger.mail.deadline import DeadlinePassed
from nudger.mail.imap_wire import Garbled, Refused


def where(account: Account) -> str:
    """How every sentence about this account starts."""
    return f"{account.name} ({account.host}:{account.port})"


def translate(exc: BaseException, account: Account, doing: str) -> NudgerError:
    """``exc``, raised while ``doing``, as the error a person can act on."""
    at = where(account)
    key = f"accounts.{account.name}"
    if isinstance(exc, NudgerError):
        return exc
    if isinstance(exc, LoginError) and isinstance(exc.__context__, (IMAPClientAbortError, OSError)):
        # imapclient reports a connection lost during LOGIN as a LoginError too.
        return TemporaryError(f"{at}: connection lost while logging in")
    if isinstance(exc, LoginError):
        return AuthError(f"{at}: the server refused the login for {account.username}; "
                         "check the username and the password source")
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Retrying cannot make a certificate match: a configuration error, no retry loop.
        return ServerConfigError(
            f"{at}: the TLS certificate of {account.host} did not verify ({exc.verify_message}); "
            f"if the server uses a private CA, set {key}.ca_file to its certificate; "
            f"{key}.host must be a name the certificate is for (see also {key}.tls)")
    if isinstance(exc, CapabilityError) and "STARTTLS" in str(exc):
        return ServerConfigError(
            f"{at}: the server does not offer STARTTLS, so {key}.tls = \"starttls\" cannot "
            f"protect the login; if it offers TLS from the first byte, set {key}.tls = "
            f"\"implicit\" (usually port 993)")
    if isinstance(exc, DeadlinePassed):
        if exc.cycle:
            return TemporaryError(f"{at}: timed out while {doing}: the cycle took longer than "
                                  f"{exc.seconds:.0f}s ({exc.seconds / exc.command:.0f} times "
                                  f"{key}.timeout)")
        return TemporaryError(f"{at}: timed out while {doing}: no complete answer within "
                              f"{exc.seconds:.0f}s ({key}.timeout)")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TemporaryError(f"{at}: timed out while {doing}")
    if isinstance(exc, Garbled):
        return garbled(at, doing, str(exc))
    if isinstance(exc, (ssl.SSLError, OSError, IMAPClientAbortError, EOFError)):
        return TemporaryError(f"{at}: connection failed while {doing}: {exc}")
    if isinstance(exc, (IMAPClientError, Refused)):
        return TemporaryError(f"{at}: the server said no while {doing}: {exc}")
    # A cut or garbled answer surfaces as a parse error deep in the library.
    return TemporaryError(f"{at}: unexpected answer from the server while {doing} "
                          f"({type(exc).__name__})")


def garbled(at: str, doing: str, detail: str) -> GarbledAnswer:
    return GarbledAnswer(f"{at}: an answer nudger cannot read while {doing} ({detail}); "
                         "nothing of it counts as read: it is asked again next cycle")


def refused(exc: BaseException) -> bool:
    """A NO or BAD to one command (the connection itself is fine)."""
    return isinstance(exc, Refused) or (isinstance(exc, IMAPClientError)
                                        and not isinstance(exc, (IMAPClientAbortError, LoginError)))
