"""The SMTP edge: aiosmtplib behind two calls, ``open`` (connect, TLS, login) and ``send``.

Certificates are always verified (the system's CAs, or ``ca_file``); clear text only to
loopback (checked when the file is read). Failures become nudger's own classes by what a
person does next; ``send`` also says whether a failed message may still have gone out
(``SendUncertain``), which decides whether nudger may ever try it again. The password is
read only here, and never logged.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from nudger.config.model import Account, Smtp, is_loopback
from nudger.errors import AuthError, NudgerError, ServerConfigError, TemporaryError
from nudger.mail.imap_oauth import Bearer

if TYPE_CHECKING:
    import asyncio
    from email.message import EmailMessage

    import aiosmtplib

log = logging.getLogger(__name__)


class SendRefused(NudgerError):
    """The server answered the message with an error: it did not take it."""

    def __init__(self, message: str, code: int):
        self.code = code
        # "Authentication required" and the like say nothing against the message: try again.
        self.permanent = code >= 500 and code not in AUTH_CODES
        super().__init__(message)


AUTH_CODES = (530, 534, 535, 538)  # RFC 4954: login needed, too weak, refused, needs TLS


class SendUncertain(TemporaryError):
    """The connection failed while the message was being handed over: it may have gone."""


class SmtpSender:
    """One account's SMTP server; connects on ``open``, once per run of sends."""

    def __init__(self, account: Account, password: Callable[[], str] | None = None,
                 bearer: Callable[[], Bearer] | None = None):
        assert account.smtp is not None and (password is None) != (bearer is None)
        self.account, self.smtp = account, account.smtp
        self._password = password  # read when logging in; never logged
        # An OAuth2 account's tokens (AUTH XOAUTH2), built only when logging in: building
        # them runs its client_secret_command, which most cycles (sending nothing) need not.
        self._bearer = bearer
        self.where = f"{account.name} (SMTP {self.smtp.host}:{self.smtp.port})"
        self.key = f"accounts.{account.name}.smtp"
        self._runner: asyncio.Runner | None = None
        self._client: aiosmtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext | None:
        if self.smtp.tls == "none":
            return None
        try:
            return ssl.create_default_context(cafile=str(self.smtp.ca_file) if self.smtp.ca_file else None)
        except (ssl.SSLError, OSError) as exc:
            raise ServerConfigError(f"{self.key}.ca_file: cannot use {self.smtp.ca_file} as a CA "
                                    f"certificate ({exc})") from None


    def open(self) -> None:
        """Connect, secure the line as ``tls`` says, and log in; nothing is sent yet."""
        if self._client is not None:
            return
        # (Imported here: most runs send nothing, and asyncio with aiosmtplib cost ~15 ms.)
        import asyncio

        import aiosmtplib

        smtp: Smtp = self.smtp
        self._runner = asyncio.Runner()
        client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=smtp.tls == "implicit",
                                 start_tls=smtp.tls == "starttls", tls_context=self._context(),
                                 timeout=self.account.timeout.total_seconds())
        self._client = client
        try:
            self._runner.run(self._login(client))
        except Exception as exc:  # noqa: BLE001 - translated, never with the password
            self.close()
            raise self._translate(exc, "logging in") from None

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        await client.connect()
        await client.ehlo()  # again after STARTTLS: servers offer AUTH only on a secure line
        if client.supports_extension("auth"):
            if self._bearer is not None:
                await self._xoauth2(client, self._bearer())
            else:
                assert self._password is not None
                await client.login(self.smtp.username, self._password())
        elif not is_loopback(self.smtp.host):
            raise ServerConfigError(f"{self.where}: the server offers no login (AUTH) after "
                                    f"{self.smtp.tls}; nudger will not send without one")

    async def _xoauth2(self, client: aiosmtplib.SMTP, bearer: Bearer) -> None:
        """AUTH XOAUTH2 with the access token, and once more with a fresh one when the
        server refuses it (it may have expired or been revoked since it was refreshed)."""
        import aiosmtplib

        token = bearer.access_token()
        try:
            await client.auth_xoauth2(self.smtp.username, token)
        except aiosmtplib.SMTPAuthenticationError:
            await client.auth_xoauth2(self.smtp.username, bearer.access_token(refused=token))

    def send(self, msg: EmailMessage, sender: str, recipients: list[str]) -> list[str]:
        """Hand ``msg`` over; returns the recipients the server refused (the others took
        it). Raises SendRefused (not taken) or SendUncertain (may have been taken)."""
        import aiosmtplib

        self.open()
        assert self._client is not None and self._runner is not None
        try:
            refused, _ = self._runner.run(self._client.send_message(msg, sender=sender,
                                                                    recipients=recipients))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise SendRefused(f"{self.where}: the server refused every recipient "
                              f"({first.code} {first.message})", first.code) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendRefused(f"{self.where}: the server refused the message ({exc.code} "
                              f"{exc.message})", exc.code) from None
        except aiosmtplib.SMTPNotSupported:  # raised before MAIL FROM: nothing was handed over
            raise SendRefused(f"{self.where}: the server cannot take mail for an address with "
                              "non-ASCII characters (it does not offer SMTPUTF8)", 553) from None
        except Exception as exc:  # noqa: BLE001 - a cut line: it may or may not have gone
            self.close()
            raise SendUncertain(f"{self.where}: the connection failed while sending "
                                f"({type(exc).__name__}: {exc})") from None
        return sorted(refused)

    def _translate(self, exc: BaseException, doing: str) -> NudgerError:
        import aiosmtplib

        if isinstance(exc, NudgerError):
            return exc
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            fix = (f"its OAuth2 sign-in covers sending (check with: nudger auth {self.account.name} "
                   "--check)" if self._bearer is not None else "the password source")
            return AuthError(f"{self.where}: the server refused the login for {self.smtp.username} "
                             f"({exc.code}); check {self.key}.username and {fix}")
        if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(cause, ssl.SSLCertVerificationError):
            found = exc if isinstance(exc, ssl.SSLCertVerificationError) else cause
            why = getattr(found, "verify_message", "") or str(found)
            return ServerConfigError(
                f"{self.where}: the TLS certificate of {self.smtp.host} did not verify ({why}); if "
                f"the server uses a private CA, set {self.key}.ca_file to its certificate")
        if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
            return ServerConfigError(f'{self.where}: the server does not offer STARTTLS; if it '
                                     f'speaks TLS from the first byte, set {self.key}.tls = '
                                     '"implicit" (usually port 465)')
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return TemporaryError(f"{self.where}: the server said no while {doing} "
                                  f"({exc.code} {exc.message})")
        if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
            return TemporaryError(f"{self.where}: timed out while {doing}")
        return TemporaryError(f"{self.where}: connection failed while {doing}: {exc}")

    def close(self) -> None:
        client, runner = self._client, self._runner
        self._client, self._runner = None, None
        try:
            if client is not None and runner is not None and client.is_connected:
                runner.run(client.quit())
        except Exception:  # noqa: BLE001 - closing must never raise
            log.debug("SMTP QUIT failed", exc_info=True)
        finally:
            if runner is not None:
                runner.close()
