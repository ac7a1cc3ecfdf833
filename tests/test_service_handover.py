"""The service hands its state over only when it can: a reload waits for the running
cycle to end, and a state no worker can use stops the service with its status."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from test_service import Daemon

from support.harness import Box, make_box
from support.mail import days_ago, message
from support.proxy import FaultyProxy

pytestmark = pytest.mark.imap


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def test_a_reload_during_a_slow_cycle_waits_for_it_and_drafts_once(box: Box, tmp_path: Path) -> None:
    for i in range(6):
        box.seed("Sent", message(f"slow{i}@example.com", sender=box.user, subject=f"Slow {i}",
                                 date=days_ago(6)))
    proxy = FaultyProxy(box.dovecot.port)
    try:
        box.config.write_text(box.config.read_text().replace(
            f"port = {box.dovecot.port}", f"port = {proxy.port}\ntimeout = \"20s\""))
        proxy.arm(delay=0.12)  # each answer late: the first cycle takes well over 5 s
        daemon = Daemon(box, tmp_path)
        try:
            deadline = time.monotonic() + 20
            while proxy.sent < 2000 and time.monotonic() < deadline:  # logged in, reading
                time.sleep(0.05)
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_log("reload: waiting for the running cycle of test to end first")
            daemon.wait_log("reload: the running cycles ended after", timeout=60)
            proxy.arm()
            daemon.wait_for("READY=1", timeout=30)
            daemon.wait_log("cycle done: test:", timeout=30)  # the new worker's first cycle
            ids = Counter(d["Message-ID"] for d in box.drafts())
            assert len(ids) == 6 and set(ids.values()) == {1}, ids
            assert daemon.stop() == 0
        finally:
            daemon.stop()
        out = daemon.output()
        assert out.index("reload: the running cycles ended") < out.index("cycle done: test:")
        assert "Traceback" not in out
    finally:
        proxy.close()


def test_a_state_of_a_newer_nudger_stops_the_service_with_78(box: Box, tmp_path: Path) -> None:
    state = tmp_path / "state" / "state.sqlite3"
    daemon = Daemon(box, tmp_path)
    try:
        daemon.wait_for("READY=1")
        with contextlib.closing(sqlite3.connect(state)) as conn:  # a newer nudger's file
            conn.execute("PRAGMA user_version=99")
        daemon.proc.send_signal(signal.SIGHUP)  # the new workers open it again
        assert daemon.proc.wait(timeout=20) == 78
    finally:
        daemon.stop()
    out = daemon.output()
    assert f"{state}: written by a newer nudger (state schema 99;" in out
    assert "retrying" not in out and "Traceback" not in out


def test_a_state_directory_gone_read_only_stops_the_service_with_77(box: Box, tmp_path: Path) -> None:
    where = tmp_path / "state"
    daemon = Daemon(box, tmp_path)
    mounted = False
    try:
        daemon.wait_for("READY=1")
        # The directory turns read-only (a bind mount of itself; the daemon's open files stay).
        if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(where), str(where)],
                                               capture_output=True).returncode:
            pytest.skip("needs root and mount(8) for a read-only directory")
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True)
        daemon.proc.send_signal(signal.SIGHUP)
        assert daemon.proc.wait(timeout=20) == 77
    finally:
        try:
            daemon.stop()
        finally:
            if mounted:
                subprocess.run(["umount", "-l", str(where)], check=True)
    out = daemon.output()
    assert f"{where}: the state directory is read-only" in out
    assert "retrying" not in out and "Traceback" not in out
