"""The state file as a file: its tables and their version, opening it, what is wrong with it,
in words, and setting a damaged one aside.

The state is a cache of the server (drafts, Sent and Trash rebuild it), so a damaged
file is renamed, never deleted, and rebuilt; a read-only or full disk is named and
exits with the status of its kind, never as an internal error.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from nudger.cycle import soundness
from nudger.errors import (
    StateBusy,
    StateCorrupt,
    StateError,
    StateFull,
    StateReadOnly,
    StateTooNew,
)

log = logging.getLogger(__name__)

FILE_NAME = "state.sqlite3"
SCHEMA_VERSION = 5  # PRAGMA user_version; 1 is the state of nudger 0.x, before it had one
REBUILD_HINT = "run `nudger run --once` to set it aside and rebuild it from the server"
SIDECARS = ("-wal", "-shm")  # SQLite's write-ahead log and its index, beside the file

# The tables, created or completed by ``prepare``; their version is SCHEMA_VERSION.
SCHEMA = """
CREATE TABLE IF NOT EXISTS folders (
    account TEXT NOT NULL, folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL, uidnext INTEGER NOT NULL, last_uid INTEGER NOT NULL,
    highestmodseq INTEGER, messages INTEGER, synced_at TEXT NOT NULL,
    PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS messages (
    account TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,
    message_id TEXT NOT NULL, sender TEXT NOT NULL, date TEXT NOT NULL, topic TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (account, folder, uid));
CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (account, topic, date);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (account, message_id);
CREATE INDEX IF NOT EXISTS messages_by_date ON messages (account, date);
-- Thread links (child answers parent; a bounce names its original; Gmail thread ids),
-- so one thread is found by walking a few index entries, never by loading the account.
CREATE TABLE IF NOT EXISTS links (account TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL,
    PRIMARY KEY (account, child, parent)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_parent ON links (account, parent);
-- When each awaiting thread next needs a look, so a quiet cycle evaluates nothing.
CREATE TABLE IF NOT EXISTS agenda (account TEXT NOT NULL, outbound_id TEXT NOT NULL,
    due_at TEXT NOT NULL, PRIMARY KEY (account, outbound_id));
-- Each thread's latest decision, by its outbound: a cycle counts the account's totals
-- with one query instead of deciding every thread again.
CREATE TABLE IF NOT EXISTS decided (account TEXT NOT NULL, outbound_id TEXT NOT NULL,
    status TEXT NOT NULL, sent_at TEXT NOT NULL, PRIMARY KEY (account, outbound_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nudges (
    nudge_id TEXT PRIMARY KEY, account TEXT NOT NULL, outbound_id TEXT NOT NULL,
    thread_key TEXT NOT NULL, stage INTEGER NOT NULL, fate TEXT NOT NULL,
    appended_at TEXT NOT NULL, fate_at TEXT, folder TEXT, uid INTEGER, digest TEXT,
    text_digest TEXT, own INTEGER NOT NULL DEFAULT 0);
-- The calendar messages (invitations, answers) by their iCalendar UID: a meeting's
-- messages are found without reading every record. A row whose message is gone is ignored.
CREATE TABLE IF NOT EXISTS calendar (account TEXT NOT NULL, folder TEXT NOT NULL,
    uid INTEGER NOT NULL, ical_uid TEXT NOT NULL, PRIMARY KEY (account, folder, uid));
-- What became of each follow-up, kept a year for `nudger stats` (the mail window is shorter).
-- thread_id: the user's message its thread began with (a later stage follows up our first).
CREATE TABLE IF NOT EXISTS history (
    nudge_id TEXT PRIMARY KEY, account TEXT NOT NULL, outbound_id TEXT NOT NULL,
    thread_id TEXT NOT NULL, rule TEXT NOT NULL, stage INTEGER NOT NULL, drafted_at TEXT NOT NULL,
    sent_at TEXT, dismissed_at TEXT, withdrawn_at TEXT, answered_at TEXT);
CREATE INDEX IF NOT EXISTS history_by_date ON history (account, drafted_at);
CREATE TABLE IF NOT EXISTS meta (account TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (account, key));
"""

# Schema 3: the journal of what nudger sends (a follow-up, a digest), one row per message,
# its step written before each step is taken, so that a crash never sends twice.
OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    account TEXT NOT NULL, message_id TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    step TEXT NOT NULL, at TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', uid INTEGER,
    data BLOB, PRIMARY KEY (account, message_id));
"""


# SQLite's primary result codes (extended codes keep them in the low byte).
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL = {13}  # SQLITE_FULL
_READ_ONLY = {3, 8, 14, 23}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_AUTH
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
# Misuse of the database, not trouble with the file: a bug, reported as one.
NOT_THE_FILE = (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError)
_IOERR = 10  # a full disk shows as this when the -shm index cannot grow (IOERR_SHMSIZE)


def translate(exc: BaseException, path: Path | None) -> StateError:
    """A sentence naming the file and what is wrong with it, in the class of its kind."""
    where = str(path) if path is not None else "the state"
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    number = getattr(exc, "errno", None)
    if primary in _CORRUPT:
        return StateCorrupt(f"{where}: the state file is damaged ({exc})")
    if primary in _FULL or number in (errno.ENOSPC, errno.EDQUOT) or (
            primary == _IOERR and path is not None and _no_space(path)):
        return StateFull(f"{where}: cannot write the state: the disk is full (nothing was written "
                         "that the state could not record; free some space and nudger goes on)")
    if primary in _READ_ONLY or number in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StateReadOnly(f"{where}: cannot write the state: {why}; make it and its "
                             "directory writable, or set state_dir to a writable directory")
    if primary in _BUSY:
        return StateBusy(f"{where}: the state is busy ({exc}); another process holds it")
    return StateError(f"{where}: cannot use the state ({type(exc).__name__}: {exc})")


def _no_space(path: Path) -> bool:
    try:
        disk = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return False
    return disk.f_bavail * disk.f_frsize < 64 * 1024  # less than a few pages of the log


def check_writable(path: Path) -> None:
    """Refuse before SQLite creates its -wal/-shm files beside a file it cannot write:
    they would be created read-only too and stay in the way once the file is fixed."""
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateReadOnly(f"{directory}: the state directory is read-only (nudger writes its "
                            "state there); make it writable, or set state_dir to another directory")
    for file in (path, *(sidecar(path, s) for s in SIDECARS)):
        if file.exists() and not os.access(file, os.W_OK):
            raise StateReadOnly(f"{file}: the state file is read-only (nudger must write it); "
                                f"make it writable (chmod u+w {file}), or set state_dir to "
                                "another directory")


def writable(path: Path) -> bool:
    try:
        check_writable(path)
    except StateReadOnly:
        return False
    return True


def reading_uri(path: Path) -> str:
    """How ``status``/``explain`` open a file they may not write: read-only, and when no
    write-ahead log holds anything, immutable, so that nothing is created beside it."""
    uri = f"file:{quote(str(path))}?mode=ro"
    wal = sidecar(path, "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        uri += "&immutable=1"
    return uri


def sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def set_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a damaged state file (with its -wal/-shm) out of the way; returns the new name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", *SIDECARS):
        source = sidecar(path, suffix)
        if source.exists():
            try:
                source.rename(sidecar(target, suffix))
            except OSError as exc:
                raise translate(exc, source) from exc
    return target


def is_corrupt(conn: sqlite3.Connection) -> str | None:
    """What ``quick_check`` found wrong, or None. It reads every page once (about 0.05 s
    for a 70 MB state) and finds truncated, overwritten or garbled files before a cycle
    trips over them halfway."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(1)")]
    if rows == ["ok"]:
        return None
    found = " ".join(" ".join(rows).replace("*** in database main ***", "").split())
    return found[:120] + ("..." if len(found) > 120 else "")


def prepare(conn: sqlite3.Connection, path: Path | None, readonly: bool, check: bool = True) -> None:
    """Check the file's schema version and (if ``check``) soundness; create or migrate it
    unless reading."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateTooNew(
            f"{path or 'the state'}: written by a newer nudger (state schema {version}; this "
            f"nudger knows schema {SCHEMA_VERSION} and older): upgrade nudger, or move the file "
            "away and `nudger run --once` rebuilds it from the server")
    if path is not None and check and (problem := is_corrupt(conn)):
        raise StateCorrupt(f"{path}: the state file is damaged ({problem})")
    if version == SCHEMA_VERSION:
        return
    if readonly:
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name='nudges'").fetchone()[0]:
            raise StateCorrupt(f"{path}: the state file is empty")
        return  # schema 1 reads as it is
    # Schema 1 (no version) -> 2: no table changes. 2 stamps the version; its ledger may hold
    # "appending" rows (a text value), and Trash is searched once per state (a meta row).
    # 2 -> 3: the calendar table (meetings' thank-yous), created empty.
    conn.executescript(SCHEMA)
    if version < 3:
        _to_3(conn)
    if version < 4:
        _to_4(conn)
    conn.executescript(OUTBOX)  # the send journal (a new table; nothing else changes)
    if version < 5:
        _to_5(conn)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _to_5(conn: sqlite3.Connection) -> None:
    """4 -> 5: the bytes each send handed over, so its Sent copy is filed even when the
    draft is gone. Older rows have none (their copy comes from the draft, if it is there)."""
    if "data" not in columns(conn, "outbox"):
        conn.execute("ALTER TABLE outbox ADD COLUMN data BLOB")


def _to_4(conn: sqlite3.Connection) -> None:
    """3 -> 4: which drafts this state's own APPEND wrote (the only ones nudger sends).
    Older rows cannot tell ours from adopted ones: all start as not ours (never sent by
    nudger; they stay in Drafts for the user)."""
    if "own" not in columns(conn, "nudges"):
        conn.execute("ALTER TABLE nudges ADD COLUMN own INTEGER NOT NULL DEFAULT 0")


def _to_3(conn: sqlite3.Connection) -> None:
    """2 -> 3: each draft's text digest (a client that saves it again unchanged has not
    edited it), and the history of follow-ups for ``stats``, begun from the ledger (its
    rule unknown: "")."""
    if "text_digest" not in columns(conn, "nudges"):
        conn.execute("ALTER TABLE nudges ADD COLUMN text_digest TEXT")
    conn.execute(
        "INSERT OR IGNORE INTO history (nudge_id, account, outbound_id, thread_id, rule, stage, "
        "drafted_at, sent_at, dismissed_at, withdrawn_at) SELECT nudge_id, account, outbound_id, "
        "outbound_id, '', stage, appended_at, CASE fate WHEN 'sent' THEN fate_at END, "
        "CASE fate WHEN 'dismissed' THEN fate_at END, CASE fate WHEN 'withdrawn' THEN fate_at END "
        "FROM nudges WHERE fate != 'appending'")
    for _ in range(10):  # a later stage follows up the one before: its thread is the first's
        moved = conn.execute(
            "UPDATE history SET thread_id = (SELECT h.thread_id FROM history h WHERE "
            "h.nudge_id = history.outbound_id) WHERE thread_id != (SELECT h.thread_id FROM "
            "history h WHERE h.nudge_id = history.outbound_id)")
        if not moved.rowcount:
            break


def tables(conn: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns ``table`` has (an older file read as it is may lack the newer ones)."""
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def file_id(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what is at ``path`` now; None if nothing is."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def inode(path: Path) -> int | None:
    found = file_id(path)
    return found[1] if found is not None else None


def open_for_run(state_dir: Path, rebuild: bool) -> sqlite3.Connection:
    """The state file of a run, created if need be; a damaged one is set aside and a new
    one started (unless not ``rebuild``: a dry run changes nothing, so it stops there)."""
    path = state_dir / FILE_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise translate(exc, state_dir) from exc
    check_writable(path)
    try:
        return connect(path)
    except StateCorrupt as exc:
        if not rebuild:
            raise StateCorrupt(f"{exc}: {REBUILD_HINT}") from None
        aside = set_aside(path)
        log.warning("%s; set it aside as %s and rebuilding the state from the server", exc,
                    aside.name)
    return connect(path)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to write ``path``: its schema checked, created or migrated."""
    with soundness.guard:  # (the first connection of a process decides on the check)
        check = soundness.wanted(path)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            prepare(conn, path, readonly=False, check=check)
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, path) from exc
        except BaseException:
            conn.close()
            raise
        soundness.opened(path, checked=check)
    return conn


def close(conn: sqlite3.Connection, path: Path | None, sound: bool = True) -> None:
    """Close a connection of ``connect`` (``sound``: not one found damaged)."""
    conn.close()
    if path is not None:
        soundness.closed(path, sound)


def open_for_reading(state_dir: Path) -> sqlite3.Connection:
    """The state file for ``status``/``explain``: they never write it, never rename it (they
    cannot rebuild it: they never connect), and create nothing beside a file that is not
    theirs to write."""
    path = state_dir / FILE_NAME
    uri = f"file:{quote(str(path))}?mode=ro" if writable(path) else reading_uri(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        prepare(conn, path, readonly=True, check=soundness.wanted(path))
    except (sqlite3.Error, StateCorrupt) as exc:
        if conn is not None:
            conn.close()
        problem = exc if isinstance(exc, StateError) else translate(exc, path)
        if isinstance(problem, StateCorrupt):
            raise StateCorrupt(f"{problem}: {REBUILD_HINT}") from None
        raise problem from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn
