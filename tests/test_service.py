"""The service: a real daemon process under real signals, draft fates, and faults."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from support.harness import Box, by_subject, make_box
from support.mail import NOW, days_ago, message
from support.proxy import FaultyProxy

pytestmark = pytest.mark.imap
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def sent(box: Box, mid: str, subject: str, days: float, to: str = "Bob <bob@client.example>",
         due: bool = True) -> None:
    """Your message of ``days`` ago by the real clock, which the daemon runs on: one that is
    due now (or, with ``due=False``, not yet). 6 days is due on any day at any hour: the harness's 3 business days (no
    holidays, no quiet hours) are at most 5 calendar days (Thursday to Tuesday), and a DST
    change moves it by an hour. Checked here, so a rule made slower fails on every day
    rather than on some weekdays. Its INTERNALDATE is its date too: the daemon's first sync
    searches SINCE the look-back, which the server answers by INTERNALDATE, by its own clock."""
    from nudger.config.load import load_config
    from nudger.core.rules import due_at

    now = NOW_REAL()
    config = load_config(box.config)
    account = config.accounts[0]
    for rule in config.rules:
        when = due_at(days_ago(days, now=now), rule.stages[0].after, account)
        assert (when <= now) == due, f"a message of {days}d ago is due at {when} under {rule.name}"
    date = days_ago(days, now=now)
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to=to, subject=subject,
                             date=date), when=date)


def NOW_REAL():  # type: ignore[no-untyped-def]
    """The daemon's clock: started at NOW by `run --now` (see Daemon), so that what it
    finds due does not depend on the day the suite runs; a little later by now."""
    return NOW


def reply(box: Box, to_mid: str, folder: str = "INBOX") -> None:
    now = NOW_REAL()
    box.seed(folder, message(f"re-{to_mid}", sender="bob@client.example", to=box.user,
                             subject="Re: x", date=now, reply_to=to_mid), when=now)


# -- the daemon as a process ------------------------------------------------------------------


class Daemon:
    def __init__(self, box: Box, tmp_path: Path, *extra: str):
        self.notify_path = tmp_path / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.2)
        self.log = open(tmp_path / "daemon.log", "wb")
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), "WATCHDOG_USEC": "2000000",
               "NUDGER_TEST_PASSWORD": box.dovecot.users[box.user], "JOURNAL_STREAM": "1:1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(box.config),
                                      "run", "--now", NOW.isoformat(), *extra],
                                     stdout=self.log, stderr=self.log, env=env)
        self.messages: list[str] = []
        self.tmp_path = tmp_path

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                pass
            hits = [m for m in self.messages if text in m]
            if hits:
                return hits[-1]
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"no {text!r} from the daemon; log:\n{self.output()}")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the log:\n{self.output()}")

    def output(self) -> str:
        return (self.tmp_path / "daemon.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.notify.close()
            self.log.close()


@contextmanager
def running(box: Box, tmp_path: Path, *extra: str) -> Iterator[Daemon]:
    """The service, once it said READY=1; stopped (by its PID) however the test ends."""
    daemon = Daemon(box, tmp_path, *extra)
    try:
        daemon.wait_for("READY=1")
        yield daemon
    finally:
        daemon.stop()


def test_daemon_drafts_keeps_watching_withdraws_on_reply_and_stops_on_sigterm(box: Box,
                                                                             tmp_path: Path) -> None:
    sent(box, "d1@example.com", "Daemon one", 6)
    with running(box, tmp_path) as daemon:
        assert "STATUS=test: 1 awaiting a reply (1 in Drafts); this cycle: looked at all 1 " \
               "thread, wrote 1 draft at " in daemon.wait_for("READY=1")  # (said already)
        assert [d["Subject"] for d in box.drafts()] == ["Re: Daemon one"]
        daemon.wait_for("WATCHDOG=1")
        # A reply lands in INBOX: IDLE wakes the daemon, and our untouched draft goes away.
        reply(box, "d1@example.com")
        withdrawn = daemon.wait_for("removed 1 after a reply", timeout=15)
        assert "STATUS=test: 0 awaiting a reply; 1 replied; this cycle: 1 changed" in withdrawn
        assert box.drafts() == []
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 5
    out = daemon.output()
    assert "Traceback" not in out and "received SIGTERM" in out
    assert box.dovecot.users[box.user] not in out
    assert "due       'Daemon one'" not in out  # decisions are logged with -v only


def test_a_notify_socket_nobody_reads_never_stops_the_daemon_from_stopping(box: Box,
                                                                          tmp_path: Path) -> None:
    # A busy systemd (or this suite, between its reads) leaves the socket's queue full: a
    # status or watchdog ping must then be dropped, never wait, or SIGTERM goes unheard.
    sent(box, "q1@example.com", "Queue full", 6)
    with running(box, tmp_path) as daemon:
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        with filler, pytest.raises(BlockingIOError):  # (the queue full: the next send would wait)
            for _ in range(100_000):
                filler.sendto(b"X=1", str(daemon.notify_path))
        time.sleep(1.5)  # (a watchdog ping or two meets the full queue)
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 5
    assert "received SIGTERM" in daemon.output()


def test_daemon_with_v_logs_every_decision(box: Box, tmp_path: Path) -> None:
    sent(box, "v1@example.com", "Loud one", 6)
    sent(box, "v2@example.com", "Loud two", 0.5, due=False)
    with running(box, tmp_path, "-v") as daemon:
        daemon.wait_log("test: -> due       'Loud one' to bob@client.example [follow-up 1]: no reply yet")
        daemon.wait_log("test:    waiting   'Loud two' to bob@client.example: no reply yet; due ")


def test_sighup_with_a_broken_config_keeps_the_running_one(box: Box, tmp_path: Path) -> None:
    with running(box, tmp_path) as daemon:
        good = box.config.read_text()
        box.config.write_text(good + '\n[[rules]]\nafter = "3 dayz"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log('rules[1].after: "3 dayz" is not a duration')
        daemon.wait_log("keeping the running configuration")
        assert daemon.proc.poll() is None
        box.config.write_text(good)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("reloading the configuration")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0


def test_second_instance_on_the_same_state_refuses(box: Box, tmp_path: Path) -> None:
    with running(box, tmp_path) as daemon:
        code, _, err = box.cli("run", "--once")
        assert code == 75 and f"pid {daemon.proc.pid}) is already using" in err


def test_daemon_with_a_refused_login_exits_77_instead_of_looping(box: Box, tmp_path: Path) -> None:
    box.dovecot.users[box.user] = "wrong"  # the daemon gets a wrong password
    try:
        daemon = Daemon(box, tmp_path)
        assert daemon.proc.wait(timeout=20) == 77
        daemon.stop()
        assert "refused the login" in daemon.output() and "Traceback" not in daemon.output()
    finally:
        box.dovecot.users[box.user] = "secret"


def test_systemd_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    nudger = Path(sys.executable).with_name("nudger")
    for name, target in (("nudger.service", "nudger.service"), ("nudger@.service", "nudger@t.service")):
        text = (ROOT / "systemd" / name).read_text()
        text = text.replace("%h/.local/bin/nudger", str(nudger)).replace("/usr/local/bin/nudger", str(nudger))
        (tmp_path / target).write_text(text)
        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / target)],
                              capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(tmp_path / "nudger@t.service")],
                          capture_output=True, text=True)
    score = float(done.stdout.rsplit("level for", 1)[1].split(":")[1].split()[0])
    assert score <= 2.0, done.stdout[-400:]


# -- the draft's fate is the user's answer --------------------------------------------------


def test_untouched_draft_is_withdrawn_when_a_reply_arrives(box: Box) -> None:
    box.seed("Sent", message("f1@example.com", sender=box.user, subject="Fate one", date=days_ago(6)))
    box.seed("Drafts", message("own@example.com", sender=box.user, subject="A draft of mine"),
             flags=("\\Draft", "\\Deleted"))  # marked deleted by the user's client, not expunged
    box.run()
    assert len(box.drafts()) == 2
    box.seed("Archive", message("r-f1@client.example", sender="bob@client.example", to=box.user,
                                subject="Re: Fate one", date=days_ago(1), reply_to="f1@example.com"))
    d = by_subject(box.run())["Fate one"]
    assert d["status"] == "replied" and d["action"] == "withdrawn"
    # Only ours went: the user's own message marked \Deleted is still there.
    assert [m["Subject"] for m in box.drafts()] == ["A draft of mine"]


def test_edited_draft_is_never_touched_again(box: Box) -> None:
    box.seed("Sent", message("f2@example.com", sender=box.user, subject="Fate two", date=days_ago(6)))
    box.run()
    [(uid, (raw, _))] = box.raw("Drafts").items()
    # The client saves an edited version (new UID, same Message-ID) and drops the old one.
    box.seed("Drafts", raw.replace(b"Just bringing", b"Edited: just bringing"), flags=("\\Draft",))
    box.delete_drafts([uid])
    box.run()
    box.seed("INBOX", message("r-f2@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Fate two", date=days_ago(1), reply_to="f2@example.com"))
    d = by_subject(box.run())["Fate two"]
    assert d["status"] == "replied" and d["action"] is None
    [draft] = box.drafts()
    assert b"Edited:" in bytes(draft)


def test_a_duplicated_draft_is_left_alone_when_a_reply_arrives(box: Box) -> None:
    # A client copied our draft: which copy is "ours, untouched" is ambiguous, so nudger
    # removes neither when the reply comes.
    box.seed("Sent", message("f3@example.com", sender=box.user, subject="Fate three", date=days_ago(6)))
    box.run()
    [(_, (raw, _))] = box.raw("Drafts").items()
    box.seed("Drafts", raw, flags=("\\Draft",))  # a client duplicated it
    box.seed("INBOX", message("r-f3@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Fate three", date=days_ago(1), reply_to="f3@example.com"))
    box.run()
    assert len(box.drafts()) == 2  # ambiguous: nudger removes nothing


def test_sent_draft_with_new_message_id_arms_the_next_stage_and_stages_cap(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rules = '''[[rules]]
name = "twice"
stages = [ { after = "2d", template = "gentle" }, { after = "3d", template = "gentle" } ]'''
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=rules)
    box.seed("Sent", message("f4@example.com", sender=box.user, subject="Fate four", date=days_ago(3)))
    box.run()
    [first] = box.drafts()
    # Sent from a client that gives it a new Message-ID and drops our X- header.
    del first["X-Nudger-For"]
    first.replace_header("Message-ID", "<client-made-id@example.com>")
    first.replace_header("Date", "Sat, 28 Nov 2026 09:00:00 +0000")
    box.seed("Sent", bytes(first))
    box.delete_drafts()
    later = days_ago(-2)  # Sunday: the second stage is due 3 days after Saturday
    d = by_subject(box.run(now=later))["Fate four"]
    assert d["status"] == "waiting" and d["stage"] == 2 and d["due_at"].startswith("2026-12-01")
    d = by_subject(box.run(now=days_ago(-5)))["Fate four"]
    assert d["action"] == "appended" and d["stage"] == 2
    [second] = box.drafts()
    assert second["In-Reply-To"] == "<client-made-id@example.com>"
    second.replace_header("Message-ID", "<client-made-id-2@example.com>")
    second.replace_header("Date", "Wed, 02 Dec 2026 09:00:00 +0000")
    box.seed("Sent", bytes(second))
    box.delete_drafts()
    d = by_subject(box.run(now=days_ago(-20)))["Fate four"]
    assert d["status"] == "limit" and box.drafts() == []


# -- faults -----------------------------------------------------------------------------------


def _seed_due(box: Box, n: int) -> None:
    for i in range(n):
        box.seed("Sent", message(f"fault{i}@example.com", sender=box.user, subject=f"Fault {i}",
                                 date=days_ago(6)))
    box.seed("INBOX", message("r-fault0@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Fault 0", date=days_ago(5), reply_to="fault0@example.com"))


def _assert_drafts(box: Box, expected: int) -> None:
    ids = Counter(d["Message-ID"] for d in box.drafts())
    assert all(n == 1 for n in ids.values()), ids
    assert len(ids) == expected


def test_cut_and_stalled_connections_never_duplicate_and_recover(box: Box) -> None:
    _seed_due(box, 4)
    proxy = FaultyProxy(box.dovecot.port)
    try:
        box.config.write_text(box.config.read_text().replace(
            f"port = {box.dovecot.port}", f"port = {proxy.port}\ntimeout = \"2s\""))
        # Measure one clean dry cycle's traffic, then cut at offsets spread over it.
        proxy.arm()
        box.run("--dry-run")
        total = proxy.sent
        assert total > 1000
        proxy.arm(stall_at=total // 2)  # the server goes silent mid-cycle
        box.run()
        assert box.last_code == 75 and "timed out" in box.last_err, box.last_err
        rng = random.Random(7)
        offsets = sorted({*range(0, total, max(1, total // 25)), *rng.sample(range(total), 10)})
        codes: Counter[int] = Counter()
        for offset in offsets:
            proxy.arm(cut_at=offset)
            box.run()
            assert box.last_code in (0, 75), (offset, box.last_err)
            codes[box.last_code] += 1
            assert "Traceback" not in box.last_err and "internal error" not in box.last_err
            _assert_drafts_at_most(box, 3)
        assert codes[75] >= len(offsets) // 2, codes  # the cuts really hit the cycles
        proxy.arm()
        decisions = box.run()
        assert box.last_code == 0
        assert sorted(d["subject"] for d in decisions if d["status"] in ("due", "drafted")) == [
            "Fault 1", "Fault 2", "Fault 3"]
        _assert_drafts(box, 3)
    finally:
        proxy.close()


def _assert_drafts_at_most(box: Box, n: int) -> None:
    ids = Counter(d["Message-ID"] for d in box.drafts())
    assert all(v == 1 for v in ids.values()) and len(ids) <= n, ids


def test_sigkill_at_random_points_never_duplicates(box: Box, tmp_path: Path) -> None:
    _seed_due(box, 4)
    env = {**os.environ, "NUDGER_TEST_PASSWORD": box.dovecot.users[box.user]}
    cmd = [sys.executable, "-m", "nudger", "--config", str(box.config), "run", "--once",
           "--now", NOW.isoformat()]
    started = time.monotonic()
    subprocess.run(cmd + ["--dry-run"], env=env, capture_output=True, check=True)
    span = time.monotonic() - started
    rng = random.Random(11)
    for _ in range(12):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0, span))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_drafts_at_most(box, 3)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    _assert_drafts(box, 3)


def test_one_failing_account_does_not_stop_the_others(box: Box, tmp_path: Path) -> None:
    from support.dovecot import refusing_port

    sent(box, "m1@example.com", "Still served", 6)
    with refusing_port() as port:
        _one_failing_account(box, tmp_path, port)


def _one_failing_account(box: Box, tmp_path: Path, port: int) -> None:
    broken = box.config.read_text().split("[[rules]]")[0].split("[accounts.test]")[1].replace(
        f"port = {box.dovecot.port}", f"port = {port}")
    box.config.write_text(box.config.read_text() + "\n[accounts.broken]" + broken)
    with running(box, tmp_path) as daemon:
        assert [d["Subject"] for d in box.drafts()] == ["Re: Still served"]
        daemon.wait_log("broken: cycle failed:")
        assert "retrying in" in daemon.output() and daemon.proc.poll() is None
        assert "cycle failed: broken" not in daemon.output()  # the account named once
        assert daemon.stop() == 0


# -- two instances, and the state under a running daemon ------------------------------------


def _instance(box: Box, tmp_path: Path, name: str) -> Path:
    """A second installation beside the first: same mailbox, its own state directory."""
    path = tmp_path / f"{name}.toml"
    path.write_text(box.config.read_text().replace(str(tmp_path / "state"), str(tmp_path / name)))
    return path


def _run_once(box: Box, config: Path, now: datetime = NOW) -> subprocess.Popen[str]:
    env = {**os.environ, "NUDGER_TEST_PASSWORD": box.dovecot.users[box.user]}
    return subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(config), "run",
                             "--once", "--now", now.isoformat()], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_instances_started_together_leave_one_draft_per_thread(box: Box, tmp_path: Path) -> None:
    configs = [box.config, _instance(box, tmp_path, "elsewhere")]
    rounds, per_round = 8, 3
    for n in range(rounds):
        for i in range(per_round):
            box.seed("Sent", message(f"two{n}-{i}@example.com", sender=box.user,
                                     subject=f"Two {n}.{i}", date=days_ago(6)))
        procs = [_run_once(box, c) for c in configs]  # started together, racing to APPEND
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "Traceback" not in err, err
        ids = Counter(d["Message-ID"] for d in box.drafts())
        assert all(v == 1 for v in ids.values()), (n, [v for v in ids.values() if v > 1])
        assert len(ids) == per_round * (n + 1)
    # Later runs by either instance, now and a day later, write nothing and remove nothing.
    before = box.raw("Drafts")
    for config, now in [(c, n) for n in (NOW, days_ago(-1)) for c in configs]:
        proc = _run_once(box, config, now=now)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert box.raw("Drafts") == before


@pytest.mark.parametrize("other_first", [True, False], ids=["other-first", "ours-first"])
def test_a_follow_up_appended_twice_at_once_is_left_once_and_the_survivor_withdrawable(
        box: Box, monkeypatch: pytest.MonkeyPatch, other_first: bool) -> None:
    import re

    from nudger.mail.imap import ImapMailbox

    box.seed("Sent", message("race@example.com", sender=box.user, subject="Race", date=days_ago(6)))
    real = ImapMailbox.append
    copies: list[bytes] = []

    def racing(self: ImapMailbox, folder: str, data: bytes, flags: tuple[str, ...], when: object) -> int | None:
        # Another instance appends the same follow-up, composed a second later, at the same moment.
        other = re.sub(rb"^Date: [^\r\n]*", b"Date: Fri, 27 Nov 2026 10:00:01 +0100", data, count=1,
                       flags=re.M)
        copies.append(other)
        if other_first:
            box.seed(folder, other, flags=flags)
        uid = real(self, folder, data, flags, when)  # type: ignore[arg-type]
        if not other_first:
            box.seed(folder, other, flags=flags)
        return uid

    monkeypatch.setattr(ImapMailbox, "append", racing)
    d = by_subject(box.run())["Race"]
    monkeypatch.setattr(ImapMailbox, "append", real)
    assert d["action"] == "appended"
    [(_, (kept, _))] = box.raw("Drafts").items()  # one copy: the lowest UID
    assert (kept == copies[0]) == other_first
    assert "Traceback" not in box.last_err
    # The ledger names the survivor as written: a reply withdraws it.
    box.seed("INBOX", message("re-race@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Race", date=days_ago(1), reply_to="race@example.com"))
    d = by_subject(box.run())["Race"]
    assert d["status"] == "replied" and d["action"] == "withdrawn"
    assert box.drafts() == []


STATE_GONE = "was deleted or replaced under the running daemon"


def test_deleting_the_state_under_the_daemon_is_noticed_and_never_shared(box: Box,
                                                                          tmp_path: Path) -> None:
    sent(box, "gone1@example.com", "Gone one", 6)
    with running(box, tmp_path) as daemon:
        shutil.rmtree(tmp_path / "state")
        daemon.wait_log(STATE_GONE, timeout=10)
        # Whatever happened next, a run on the recreated directory never runs beside it.
        code, _, err = box.cli("run", "--once")
        if daemon.proc.poll() is None:
            assert code == 75 and f"pid {daemon.proc.pid}) is already using" in err, err
        else:
            assert daemon.proc.returncode == 75
        time.sleep(1.5)  # more checks by the daemon: still one warning
        assert daemon.output().count(STATE_GONE) == 1
        _assert_drafts(box, 1)
    assert "Traceback" not in daemon.output()


def test_sighup_to_a_new_state_dir_moves_the_lock_with_it(box: Box, tmp_path: Path) -> None:
    from nudger.cycle.lock import lock_state_dir

    old = _instance(box, tmp_path, "state")  # a config that keeps the first directory
    with running(box, tmp_path) as daemon:
        # Another process holds the new directory: the daemon keeps running where it was.
        held = lock_state_dir(tmp_path / "held")
        try:
            box.config.write_text(old.read_text().replace(str(tmp_path / "state"),
                                                          str(tmp_path / "held")))
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_log(f"(pid {os.getpid()}) is already using {tmp_path / 'held'}")
            daemon.wait_log("keeping the running configuration")
        finally:
            os.close(held)
        assert daemon.proc.poll() is None
        proc = _run_once(box, old)
        assert proc.communicate(timeout=60)[1].count("already using") == 1 and proc.returncode == 75
        # A free new directory: the daemon takes its lock and lets go of the old one.
        box.config.write_text(old.read_text().replace(str(tmp_path / "state"), str(tmp_path / "new")))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log(f"using the state in {tmp_path / 'new'}")
        code, _, err = box.cli("run", "--once")
        assert code == 75 and f"pid {daemon.proc.pid}) is already using {tmp_path / 'new'}" in err
        proc = _run_once(box, old)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0


def test_daemon_stops_when_another_process_took_its_recreated_state(box: Box, tmp_path: Path) -> None:
    from nudger.cycle.lock import lock_state_dir

    with running(box, tmp_path) as daemon:
        shutil.rmtree(tmp_path / "state")
        held = lock_state_dir(tmp_path / "state")  # another nudger got there first
        try:
            assert daemon.proc.wait(timeout=10) == 75
        finally:
            os.close(held)
        out = daemon.output()
        assert out.count(STATE_GONE) == 1
        assert f"cannot start over: another nudger (pid {os.getpid()}) is already using" in out
        assert "Traceback" not in out


def test_a_lock_on_a_directory_deleted_meanwhile_is_taken_again(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from nudger.cycle import lock

    real, calls = fcntl.flock, []

    def flock(fd: int, op: int) -> None:
        if not calls:  # another process removes the directory between our open and our lock
            shutil.rmtree(tmp_path / "s")
        calls.append(fd)
        real(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock)
    held = lock.lock_state_dir(tmp_path / "s")
    monkeypatch.setattr(lock.fcntl, "flock", real)
    try:
        with pytest.raises(lock.StateLocked, match="already using"):
            os.close(lock.lock_state_dir(tmp_path / "s"))
    finally:
        os.close(held)
