"""One nudger per state directory: an exclusive lock the kernel drops when the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nudger.cycle.statefile import file_id


class StateLocked(Exception):
    """Another nudger process holds this state directory."""


def lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state directory for this process's lifetime.

    The kernel drops it when the process dies, SIGKILL included, so a crash never leaves
    a stale lock behind. Returns the descriptor (keep it open); ``lock_is_current`` tells
    whether the directory still holds the file it locks.
    """
    for _ in range(10):
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateLocked(f"another nudger (pid {holder}) is already using {state_dir}") from None
        if lock_is_current(state_dir, fd):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        # Deleted (or replaced) between our open and our lock: that lock guards nothing.
        os.close(fd)
    raise StateLocked(f"{state_dir} keeps disappearing; is something deleting it?")


def lock_is_current(state_dir: Path, fd: int) -> bool:
    """Whether ``state_dir/lock`` is still the file locked through ``fd``: deleting or
    replacing the directory leaves the lock on an unlinked file, guarding nothing."""
    held = os.fstat(fd)
    return file_id(state_dir / "lock") == (held.st_dev, held.st_ino)
