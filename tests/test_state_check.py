"""The state file is read whole for damage (quick_check) only when it may be damaged: not
closed cleanly, changed by something else since, or last checked a day ago."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nudger.cycle import statefile
from nudger.cycle.state import State


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files quick_check read, in order."""
    seen: list[Path] = []
    real = statefile.is_corrupt

    def counting(conn):  # type: ignore[no-untyped-def]
        seen.append(Path(conn.execute("PRAGMA database_list").fetchone()[2]))
        return real(conn)

    monkeypatch.setattr(statefile, "is_corrupt", counting)
    return seen


def _write(state_dir: Path) -> None:
    state = State.open(state_dir)
    state.conn.execute("INSERT OR REPLACE INTO meta VALUES ('test', 'k', 'v')")
    state.close()


def test_a_state_closed_cleanly_is_not_read_whole_again(tmp_path: Path, checks: list[Path]) -> None:
    _write(tmp_path)  # a new file: checked once
    assert len(checks) == 1
    for _ in range(3):  # `run --once` from a timer, poll after poll
        _write(tmp_path)
    reader = State.open_for_reading(tmp_path)  # `status` too
    reader.close()
    assert len(checks) == 1
    # One service: its workers' connections beside the first are not checked either.
    first, second = State.open(tmp_path), State.open(tmp_path)
    first.close()
    second.close()
    assert len(checks) == 1


def test_a_state_not_closed_cleanly_is_checked(tmp_path: Path, checks: list[Path]) -> None:
    _write(tmp_path)
    # A run killed mid-cycle: its write-ahead log is left beside the file.
    code = ("import os, sys; from pathlib import Path; from nudger.cycle.state import State; "
            "s = State.open(Path(sys.argv[1])); "
            "s.conn.execute(\"INSERT OR REPLACE INTO meta VALUES ('test', 'x', 'y')\"); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 9
    _write(tmp_path)
    assert len(checks) == 2
    _write(tmp_path)
    assert len(checks) == 2


def test_a_state_changed_by_something_else_or_checked_a_day_ago_is_checked(
        tmp_path: Path, checks: list[Path]) -> None:
    _write(tmp_path)
    path = tmp_path / statefile.FILE_NAME
    with path.open("ab") as f:  # appended to by something else (same bytes, new size)
        f.write(b"\0" * 4096)
    _write(tmp_path)
    assert len(checks) == 2
    mark = path.with_name(path.name + ".checked")
    identity, _, _ = mark.read_text().strip().rpartition(" ")
    mark.write_text(f"{identity} {(datetime.now(UTC) - timedelta(days=1, seconds=1)).isoformat()}\n")
    _write(tmp_path)
    assert len(checks) == 3
    mark.write_text("garbled")
    _write(tmp_path)
    assert len(checks) == 4
