"""The IMAP edge: imapclient behind the ``Mailbox`` interface.

Every folder is opened read-only (EXAMINE) and read with BODY.PEEK, so no flag of
the user's changes; the only write is APPEND to Drafts. Library and socket errors
are translated here into our own classes: temporary, authentication, configuration.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imapclient import SocketTimeout
from imapclient.response_parser import parse_fetch_response

from nudger.config import Account, is_loopback
from nudger.errors import AuthError, NudgerError, TemporaryError
from nudger.mailbox import Fetched, FolderInfo, FolderStatus
from nudger.mailfacts import HEADER_FIELDS, datetime_of

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60  # servers may drop an IDLE client after 29 minutes (RFC 2177)
BATCH = 1000  # UIDs per FETCH at most; see uid_batches for the command-line limit
MAX_SET = 900  # bytes of a UID set: some servers refuse command lines much over 1,000
_FIELDS = "BODY.PEEK[HEADER.FIELDS (" + " ".join(f.upper() for f in HEADER_FIELDS) + ")]"
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]", re.IGNORECASE)


def uid_batches(uids: Sequence[int], size: int = BATCH, limit: int = MAX_SET) -> list[str]:
    """Sorted UIDs as IMAP sets ("1:500,502,510:520"), each of at most ``size`` UIDs and
    ``limit`` bytes: runs collapse, so a first sync sends a few short commands."""
    runs: list[list[int]] = []
    for uid in sorted(set(uids)):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    batches: list[str] = []
    parts: list[str] = []
    count = length = 0
    for first, last in runs:
        while first <= last:
            take = min(size - count, last - first + 1)
            part = str(first) if take == 1 else f"{first}:{first + take - 1}"
            if take == 0 or (parts and length + len(part) + 1 > limit):
                batches.append(",".join(parts))
                parts, count, length = [], 0, 0
                continue
            parts.append(part)
            count += take
            length += len(part) + 1
            first += take
    if parts:
        batches.append(",".join(parts))
    return batches


_META = {
    b"UID": re.compile(rb"\bUID (\d+)"),
    b"RFC822.SIZE": re.compile(rb"\bRFC822\.SIZE (\d+)"),
    b"FLAGS": re.compile(rb"\bFLAGS \(([^)]*)\)"),
    b"INTERNALDATE": re.compile(rb'\bINTERNALDATE "([^"]+)"'),
    b"X-GM-THRID": re.compile(rb"\bX-GM-THRID (\d+)"),
}
_LITERAL_KEY = re.compile(rb"(BODY\[[^\]]*\](?:<\d+>)?) \{\d+\}$")
_INTERNALDATE = re.compile(r" ?(\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


def parse_internaldate(value: bytes) -> datetime:
    """INTERNALDATE ("17-Jul-1996 02:44:25 -0700"), aware. Its format is fixed (RFC 3501),
    so a pattern reads it; imapclient's general date parser is the fallback."""
    found = _INTERNALDATE.fullmatch(value.decode("ascii", "replace"))
    if found:
        try:
            return datetime_of(*found.groups())
        except (ValueError, KeyError):
            pass
    from imapclient.datetime_util import parse_to_datetime

    return parse_to_datetime(value, normalise=False)


def parse_header_fetch(data: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """The common shape of our header FETCH answers, parsed in one pass.

    imapclient's general parser reads every byte through a Python tokenizer: most of
    a first sync's time. This reads "* n (UID .. FLAGS (..) .. BODY[..] {len}" plus the
    literal; anything else returns None and the general parser takes over.
    """
    result: dict[int, dict[bytes, Any]] = {}
    i = 0
    while i < len(data):
        item = data[i]
        if not isinstance(item, tuple) or len(item) != 2:
            return None
        head, literal = item
        trailer = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
        i += 2 if trailer else 1
        key = _LITERAL_KEY.search(head)
        if key is None or trailer.count(b"{"):
            return None
        meta = head + b" " + trailer
        uid = _META[b"UID"].search(meta)
        if uid is None:
            return None
        entry: dict[bytes, Any] = {key.group(1): literal}
        for name in (b"RFC822.SIZE", b"X-GM-THRID"):
            found = _META[name].search(meta)
            if found:
                entry[name] = int(found.group(1))
        flags = _META[b"FLAGS"].search(meta)
        if flags:
            entry[b"FLAGS"] = tuple(flags.group(1).split())
        date = _META[b"INTERNALDATE"].search(meta)
        if date:
            entry[b"INTERNALDATE"] = parse_internaldate(date.group(1))
        result[int(uid.group(1))] = entry
    return result


def _translate(exc: BaseException, account: Account, doing: str) -> NudgerError:
    where = f"{account.name} ({account.host}:{account.port})"
    if isinstance(exc, LoginError) and isinstance(exc.__context__, (IMAPClientAbortError, OSError)):
        # imapclient reports a connection lost during LOGIN as a LoginError too.
        return TemporaryError(f"{where}: connection lost while logging in")
    if isinstance(exc, LoginError):
        return AuthError(f"{where}: the server refused the login for {account.username}; "
                         "check the username and the password source")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TemporaryError(f"{where}: TLS certificate not trusted ({exc.verify_message}); "
                              "set ca_file if the server uses a private CA")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TemporaryError(f"{where}: timed out while {doing}")
    if isinstance(exc, (ssl.SSLError, OSError, IMAPClientAbortError, EOFError)):
        return TemporaryError(f"{where}: connection failed while {doing}: {exc}")
    if isinstance(exc, IMAPClientError):
        return TemporaryError(f"{where}: the server said no while {doing}: {exc}")
    # A cut or garbled answer surfaces as a parse error deep in the library.
    return TemporaryError(f"{where}: unexpected answer from the server while {doing} "
                          f"({type(exc).__name__})")


class ImapMailbox:
    """A live connection to one account."""

    def __init__(self, account: Account, password: str):
        self.account = account
        self._password = password  # for companion(); never logged, never in a message
        self._selected: str | None = None
        if account.tls == "none" and not is_loopback(account.host):
            raise NudgerError(f"{account.name}: refusing plaintext IMAP to {account.host}")
        timeout = account.timeout.total_seconds()
        context = None
        if account.tls != "none":
            context = ssl.create_default_context(
                cafile=str(account.ca_file) if account.ca_file else None)
        try:
            self.client = imapclient.IMAPClient(
                account.host, port=account.port, ssl=account.tls == "implicit",
                ssl_context=context, timeout=SocketTimeout(connect=timeout, read=timeout))
            self.client.normalise_times = False
            if account.tls == "starttls":
                self.client.starttls(context)
            self.client.login(account.username, password)
        except Exception as exc:  # noqa: BLE001 - translated, never leaked with the password
            raise _translate(exc, account, "logging in") from None
        self.capabilities = {c.decode().upper() for c in self.client.capabilities()}
        self.gmail = "X-GM-EXT-1" in self.capabilities
        self.condstore = "CONDSTORE" in self.capabilities
        if self.condstore and "ENABLE" in self.capabilities:
            # Legal only now, before any SELECT (RFC 7162); never QRESYNC (imapclient breaks).
            self._call("enabling CONDSTORE", self.client.enable, "CONDSTORE")

    @property
    def append_limit(self) -> int | None:
        """The largest message the server takes, when it says so (RFC 7889 APPENDLIMIT=N;
        a bare APPENDLIMIT means a limit per folder, which nudger does not ask for)."""
        sizes = [int(c[12:]) for c in self.capabilities if c.startswith("APPENDLIMIT=")
                 and c[12:].isdigit()]
        return min(sizes) if sizes else None

    def _call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, self.account, doing) from exc

    def _uid_fetch(self, uid_set: str, items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
        """UID FETCH with a compact UID set ("1:500,502"). imapclient's fetch() accepts
        only UID lists, which makes long command lines or many round trips; its response
        parser is public."""
        data = self._fetch_lines(f"UID FETCH {uid_set} ({' '.join(items)})")
        fast = parse_header_fetch(data)
        if fast is not None:
            return fast
        parsed = parse_fetch_response(data, normalise_times=False, uid_is_key=True)
        return {uid: d for uid, d in parsed.items() if isinstance(uid, int)}

    def _fetch_lines(self, command: str) -> list[Any]:
        """Send a FETCH and read its answer in imaplib's shape: ``(line, literal)`` tuples
        and plain lines. imaplib matches several regular expressions per line (half the
        client time of a header FETCH); this reads the same bytes through its public
        readline/read, with a tag from its own counter (as imapclient does for the
        commands imaplib lacks)."""
        imap = self.client._imap
        tag = imap._new_tag()
        imap.send(tag + b" " + command.encode("ascii") + b"\r\n")
        readline, read = imap.readline, imap.read
        data: list[Any] = []
        done = tag + b" "
        while True:
            line = readline()
            if not line.endswith(b"\n"):
                raise imaplib.IMAP4.abort("connection closed during FETCH")
            if line.startswith(done):
                status = line[len(done):].split(b" ", 1)[0].upper()
                if status != b"OK":
                    raise IMAPClientError(f"FETCH failed: {line.strip()!r}")
                return data
            if not line.startswith(b"* "):
                raise imaplib.IMAP4.abort(f"unexpected answer to FETCH: {line[:80]!r}")
            number, _, rest = line[2:].partition(b" ")
            kind, _, rest = rest.partition(b" ")
            if number.upper() == b"BYE":
                raise imaplib.IMAP4.abort(f"server closed the connection: {line.strip()!r}")
            fetch = kind.upper() == b"FETCH"
            chunk = number + b" " + rest
            while chunk.endswith(b"}\r\n"):
                literal = read(int(chunk[chunk.rfind(b"{") + 1 : -3]))
                if fetch:
                    data.append((chunk[:-2], literal))
                chunk = readline()
            if fetch:
                data.append(chunk.rstrip(b"\r\n"))
            # Other untagged answers (EXISTS, EXPUNGE...) change nothing a UID FETCH returns.

    def _examine(self, folder: str) -> None:
        if self._selected != folder:
            self.examine(folder)

    def list_folders(self) -> list[FolderInfo]:
        listed = self._call("listing folders", self.client.list_folders)
        return [FolderInfo(name if isinstance(name, str) else name.decode(),
                           tuple(f.decode() if isinstance(f, bytes) else str(f) for f in flags))
                for flags, _delim, name in listed]

    def status(self, folder: str) -> FolderStatus:
        """One STATUS command: enough to skip an unchanged folder without selecting it."""
        items = [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"]
        if self.condstore:
            items.append(b"HIGHESTMODSEQ")
        got = self._call(f"checking {folder!r}", self.client.folder_status, folder, items)
        return FolderStatus(int(got[b"UIDVALIDITY"]), int(got[b"UIDNEXT"]),
                            int(got[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in got else None,
                            int(got[b"MESSAGES"]))

    def examine(self, folder: str) -> FolderStatus:
        """Open the folder read-only; its answer carries what STATUS would (first syncs
        open the folder anyway, so this saves a command per folder)."""
        got = self._call(f"opening {folder!r}", self.client.select_folder, folder, readonly=True)
        self._selected = folder
        modseq = got.get(b"HIGHESTMODSEQ")
        return FolderStatus(int(got[b"UIDVALIDITY"]), int(got[b"UIDNEXT"]),
                            int(modseq) if modseq is not None else None, int(got.get(b"EXISTS", 0)))

    def changed_flags(self, folder: str, modseq: int) -> dict[int, tuple[str, ...]]:
        """Flags of the messages changed since ``modseq`` (CONDSTORE only)."""
        if not self.condstore:
            return {}
        self._examine(folder)
        uids = self._call(f"searching {folder!r}", self.client.search, ["MODSEQ", str(modseq + 1)])
        return self.fetch_flags(folder, sorted(uids)) if uids else {}

    def search_new(self, folder: str, after_uid: int, since: date | None) -> list[int]:
        self._examine(folder)
        criteria: list[Any] = ["UID", f"{after_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        uids = self._call(f"searching {folder!r}", self.client.search, criteria)
        # "UID n:*" always matches the highest UID, even below n (RFC 3501 6.4.8).
        return sorted(u for u in uids if u > after_uid)

    def all_uids(self, folder: str) -> set[int]:
        self._examine(folder)
        return set(self._call(f"searching {folder!r}", self.client.search, ["ALL"]))

    def fetch_headers(self, folder: str, uids: Sequence[int]) -> Iterator[Fetched]:
        self._examine(folder)
        items = [_FIELDS, "INTERNALDATE", "FLAGS", "RFC822.SIZE"]
        if self.gmail:
            items.append("X-GM-THRID")
        for batch in uid_batches(uids):
            got = self._call(f"reading headers in {folder!r}", self._uid_fetch, batch, items)
            for uid in sorted(got):
                data = got[uid]
                header = next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
                yield Fetched(
                    uid=uid,
                    header=header or b"",
                    internaldate=data.get(b"INTERNALDATE"),
                    flags=tuple(f.decode() if isinstance(f, bytes) else str(f)
                                for f in data.get(b"FLAGS", ())),
                    size=int(data.get(b"RFC822.SIZE", 0)),
                    gm_thrid=data.get(b"X-GM-THRID"),
                )

    def fetch_flags(self, folder: str, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        self._examine(folder)
        got: dict[int, Any] = {}
        for batch in uid_batches(uids):
            fetched = self._call(f"reading flags in {folder!r}", self._uid_fetch, batch, ["FLAGS"])
            got.update({uid: data.get(b"FLAGS", ()) for uid, data in fetched.items()})
        return {uid: tuple(f.decode() if isinstance(f, bytes) else str(f) for f in flags)
                for uid, flags in got.items()}

    def fetch_message(self, folder: str, uid: int, limit: int) -> bytes | None:
        return self.fetch_messages(folder, [uid], limit).get(uid)

    def fetch_messages(self, folder: str, uids: Sequence[int], limit: int) -> dict[int, bytes]:
        """The first ``limit`` bytes of each message, read with BODY.PEEK (no \\Seen)."""
        self._examine(folder)
        found: dict[int, bytes] = {}
        for batch in uid_batches(uids, size=100):
            got = self._call(f"reading messages in {folder!r}", self._uid_fetch, batch,
                             [f"BODY.PEEK[]<0.{limit}>"])
            for uid, data in got.items():
                body = next((v for k, v in data.items() if k.startswith(b"BODY[")), None)
                if isinstance(body, bytes):
                    found[uid] = body
        return found

    def find_message_id(self, folder: str, message_id: str) -> list[int]:
        self._examine(folder)
        found = self._call(f"searching {folder!r}", self.client.search,
                           ["HEADER", "Message-ID", message_id])
        return sorted(found)

    def find_marked(self, folder: str) -> list[int]:
        """Messages carrying one of nudger's marks (SEARCH HEADER is a substring match)."""
        self._examine(folder)
        found = self._call(f"searching {folder!r}", self.client.search,
                           ["OR", "HEADER", "Message-ID", "<nudger.", "HEADER", "X-Nudger-For", ""])
        return sorted(found)

    def append(self, folder: str, data: bytes, flags: Sequence[str], when: datetime) -> int | None:
        # \Draft and \Seen in the APPEND itself: adding \Draft later duplicates on some servers.
        answer = self._call(f"saving a draft in {folder!r}", self.client.append, folder, data,
                            flags=[f.encode() for f in flags], msg_time=when)
        found = _APPENDUID.search(answer or b"")
        if found:
            return int(found.group(1))
        self._selected = None
        return None

    def delete_own_draft(self, folder: str, uid: int, message_id: str) -> bool:
        """The one deletion nudger ever does: its own draft, by UID, with UID EXPUNGE.

        Never a bare EXPUNGE, which would also remove anything else the user marked
        deleted; without UIDPLUS we leave the draft alone.
        """
        if "UIDPLUS" not in self.capabilities:
            return False
        self._selected = None
        self._call(f"opening {folder!r}", self.client.select_folder, folder, readonly=False)
        try:
            # Check the UID still holds our Message-ID: UIDs are reused after UIDVALIDITY changes.
            found = self._call(f"searching {folder!r}", self.client.search,
                               ["UID", str(uid), "HEADER", "Message-ID", message_id])
            if uid not in found:
                return False
            self._call("removing our draft", self.client.add_flags, [uid], [b"\\Deleted"], silent=True)
            self._call("removing our draft", self.client.uid_expunge, [uid])
            return True
        finally:
            self._call(f"closing {folder!r}", self.client.unselect_folder)

    def wait_for_news(self, folder: str, seconds: float, stop: threading.Event) -> bool:
        """IMAP IDLE on ``folder`` for up to ``seconds``; True when a message arrived.

        Renewed well before the 29 minutes after which servers may drop an idle client;
        checks ``stop`` every second so a SIGTERM is honoured quickly.
        """
        if "IDLE" not in self.capabilities:
            stop.wait(seconds)
            return False
        self._examine(folder)
        deadline = time.monotonic() + min(seconds, IDLE_RENEW)
        self._call("waiting for new mail", self.client.idle)
        arrived = False
        try:
            while not arrived and not stop.is_set() and time.monotonic() < deadline:
                responses = self._call("waiting for new mail", self.client.idle_check, timeout=1)
                arrived = any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
        finally:
            self._call("waiting for new mail", self.client.idle_done)
        return arrived

    def companion(self) -> ImapMailbox:
        """A second connection to the same account (a first sync searches ahead on it)."""
        return ImapMailbox(self.account, self._password)

    def close(self) -> None:
        try:
            self.client.logout()
        except (IMAPClientError, OSError, EOFError):
            pass
        except Exception:  # noqa: BLE001 - closing must never raise
            log.debug("logout failed", exc_info=True)


def connect(account: Account, password: str) -> ImapMailbox:
    return ImapMailbox(account, password)
