"""When to read the whole state file for damage (SQLite's ``quick_check``).

The check reads every page: on a large state that is most of what opening it costs, and
``run --once`` from a timer opens it at every poll. So it runs only when the file may be
damaged: the last writer did not close it cleanly (a crash, a kill, a full disk), or
something else changed it since (its size, time or inode differ), or a day has passed.

A clean close leaves a mark beside the file, ``state.sqlite3.checked``: the file's
identity as it was closed and when it was last checked. The first connection of a
process takes the mark away (the file is in use from then on) and the last one puts it
back once SQLite has folded its write-ahead log into the file.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

CHECK_EVERY = timedelta(days=1)
MARK = ".checked"

guard = threading.Lock()  # the workers of one service open and close their connections at once
_open: Counter[Path] = Counter()  # connections this process holds, by file
# When this process's files were last checked (None: not known, so no mark is left).
_checked_at: dict[Path, datetime | None] = {}


def mark_of(path: Path) -> Path:
    return path.with_name(path.name + MARK)


def _identity(path: Path) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _last_checked(path: Path) -> datetime | None:
    """When the file was last checked, if it is still as it was closed cleanly then."""
    try:
        identity, _, when = mark_of(path).read_text().strip().rpartition(" ")
        checked = datetime.fromisoformat(when)
    except (OSError, ValueError):
        return None
    if identity != _identity(path) or checked.tzinfo is None:
        return None
    if _pending(path):  # a crash, or another process writing
        return None
    return checked


def _pending(path: Path) -> bool:
    """Whether the write-ahead log holds anything (a reader leaves an empty one)."""
    try:
        return os.stat(path.with_name(path.name + "-wal")).st_size > 0
    except OSError:
        return False


def wanted(path: Path) -> bool:
    """Whether opening ``path`` should check it (call with ``guard`` held when writing)."""
    if _open[path]:
        return False  # this process checked it when it opened it first, and holds it since
    checked = _last_checked(path)
    return checked is None or datetime.now(UTC) - checked >= CHECK_EVERY


def opened(path: Path, checked: bool) -> None:
    """A connection to write ``path`` is open (``checked`` now or not): until the last one
    of this process closes, the file is not known to be as it was closed."""
    if not _open[path]:
        # (Unknown when the file changed since wanted() asked, as a schema migration
        # changes it: then no mark is left, and the next open checks it.)
        _checked_at[path] = datetime.now(UTC) if checked else _last_checked(path)
        try:
            mark_of(path).unlink(missing_ok=True)
        except OSError:
            pass  # then it will not match the file once changed: it is checked then
    _open[path] += 1


def closed(path: Path, sound: bool = True) -> None:
    """A connection to write ``path`` was closed; after the last one, a file closed
    cleanly (``sound``, its log folded in) is marked so."""
    with guard:
        _open[path] -= 1
        if _open[path] > 0:
            return
        del _open[path]
        when = _checked_at.pop(path, None)
        if not sound or when is None or _pending(path):
            return
        identity = _identity(path)
        if identity is None:
            return
        try:
            mark_of(path).write_text(f"{identity} {when.isoformat()}\n")
        except OSError:
            pass  # no mark: the next open checks the file
