"""Many accounts in one service: an organisation running one nudger for N mailboxes on
one Dovecot. For each N, the service (``nudger run --now``) is started on N small
mailboxes and, once every account finished its first cycle, measured while idle:
peak RSS, threads, open sockets (from /proc/PID/fd) and CPU seconds.

CPU per idle hour at the default poll_interval of 5 minutes is measured in two runs of
``--window`` seconds each: one at poll_interval 5m (the waits alone: no poll falls in
the window) and one at 10s (waits plus polls); the difference, per poll, is what a poll
costs, taken 12 times an hour:  hour = rate(5m) * 3600 + (rate(10s) - rate(5m)) * 3600 * 10 / 300.

    .venv/bin/python bench/accounts.py [--sizes 1,50,200] [--window 60]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.dovecot import Dovecot, find_dovecot  # noqa: E402
from support.mail import NOW, days_ago, message  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    accounts: int
    poll: str
    rss_peak_mb: float
    threads: int
    sockets: int
    files: int  # open file descriptors, sockets included
    cpu_per_s: float  # CPU seconds per second of the idle window


def server(binary: str, root: Path, users: int) -> Dovecot:
    """A Dovecot for ``users`` connections kept open (one imap process each)."""
    dovecot = Dovecot(binary, root=root, max_connections=10)
    dovecot.pool(users, prefix="staff")
    conf = dovecot.dir / "dovecot.conf"
    conf.write_text(conf.read_text() + f"service imap {{\n  process_limit = {users + 50}\n}}\n"
                    "default_client_limit = 4000\n")
    dovecot.start()
    return dovecot


def seed(dovecot: Dovecot, user: str, i: int) -> None:
    """A small mailbox: two messages of yours (one due, one answered), a reply, a newsletter."""
    me = f"Staff {i} <{user}>"
    dovecot.seed(user, "Sent", [
        (message(f"s1.{i}@example.com", sender=me, to="Ann <ann@client.example>", subject="Offer",
                 date=days_ago(8, now=NOW)), ("\\Seen",), days_ago(8, now=NOW)),
        (message(f"s2.{i}@example.com", sender=me, to="Bob <bob@client.example>", subject="Call",
                 date=days_ago(6, now=NOW)), ("\\Seen",), days_ago(6, now=NOW)),
    ])
    dovecot.seed(user, "INBOX", [
        (message(f"r2.{i}@client.example", sender="bob@client.example", to=user, subject="Re: Call",
                 date=days_ago(5, now=NOW), reply_to=f"s2.{i}@example.com"), (), days_ago(5, now=NOW)),
        (message(f"n.{i}@news.example", sender="news@news.example", to=user, subject="News",
                 date=days_ago(2, now=NOW)), (), days_ago(2, now=NOW)),
    ])


def config(dovecot: Dovecot, users: list[str], state: Path, poll: str) -> str:
    parts = [f'[daemon]\nstate_dir = "{state}"\npoll_interval = "{poll}"\n']
    for n, user in enumerate(users):
        parts.append(f'[accounts.staff{n}]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
                     f'username = "{user}"\npassword_env = "NUDGER_BENCH_PASSWORD"\n'
                     f'timezone = "Europe/Berlin"\nholidays = "DE-BY"\n')
    return "\n".join(parts)


def proc_figures(pid: int) -> tuple[float, int, int, int, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    sockets = files = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        files += 1
        try:
            sockets += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return hwm, threads, sockets, files, cpu


def measure(dovecot: Dovecot, users: list[str], work: Path, poll: str, window: float) -> Figures:
    state = work / f"state-{len(users)}-{poll}"
    shutil.rmtree(state, ignore_errors=True)
    path = work / f"config-{len(users)}-{poll}.toml"
    path.write_text(config(dovecot, users, state, poll))
    log = work / f"service-{len(users)}-{poll}.log"
    env = {**os.environ, "NUDGER_BENCH_PASSWORD": "secret"}
    env.pop("NOTIFY_SOCKET", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(path), "run",
                                 "--now", NOW.isoformat()], stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # every account's first cycle done
            text = log.read_text(errors="replace")
            if len(set(re.findall(r"(?:ready|cycle done): (staff\d+):", text))) >= len(users):
                break
            if proc.poll() is not None:
                raise SystemExit(f"the service stopped:\n{text[-2000:]}")
            time.sleep(0.5)
        else:
            raise SystemExit(f"not every account finished its first cycle:\n{log.read_text()[-2000:]}")
        time.sleep(3)  # the last first cycles settle into their waits
        *_, cpu0 = proc_figures(proc.pid)
        t0 = time.monotonic()
        time.sleep(window)
        hwm, threads, sockets, files, cpu1 = proc_figures(proc.pid)
        rate = (cpu1 - cpu0) / (time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
    failed = log.read_text(errors="replace").count("cycle failed")
    if failed:
        print(f"  ({failed} failed cycle(s) with {len(users)} accounts; see {log})", file=sys.stderr)
    return Figures(len(users), poll, hwm, threads, sockets, files, rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,50,200")
    parser.add_argument("--window", type=float, default=60.0, help="idle seconds measured")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("Dovecot is not installed")
    work = Path(tempfile.mkdtemp(prefix="nudger-accounts-"))
    work.chmod(0o755)
    dovecot = server(binary, work / "dovecot", max(sizes))
    try:
        users = dovecot.free_users
        started = time.monotonic()
        for i, user in enumerate(users):
            seed(dovecot, user, i)
        print(f"seeded {len(users)} mailboxes in {time.monotonic() - started:.0f}s", file=sys.stderr)
        rows = []
        for size in sizes:
            idle = measure(dovecot, users[:size], work, "5m", args.window)
            polling = measure(dovecot, users[:size], work, "10s", args.window)
            hour = idle.cpu_per_s * 3600 + (polling.cpu_per_s - idle.cpu_per_s) * 3600 * 10 / 300
            rows.append((size, max(idle.rss_peak_mb, polling.rss_peak_mb), idle.threads,
                         idle.sockets, idle.files, hour))
            print(f"  {size} accounts done", file=sys.stderr)
    finally:
        dovecot.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'accounts':>8} {'peak RSS MB':>11} {'threads':>7} {'sockets':>7} {'files':>5} "
          f"{'CPU s/idle h':>12}")
    for size, rss, threads, sockets, files, hour in rows:
        print(f"{size:>8} {rss:>11.1f} {threads:>7} {sockets:>7} {files:>5} {hour:>12.1f}")
    for (n0, r0, t0, s0, f0, h0), (n1, r1, t1, s1, f1, h1) in zip(rows, rows[1:], strict=False):
        extra = n1 - n0
        print(f"per extra account ({n0} -> {n1}): {(r1 - r0) / extra * 1024:.0f} KB RSS, "
              f"{(t1 - t0) / extra:.2f} threads, {(s1 - s0) / extra:.2f} sockets, "
              f"{(f1 - f0) / extra:.2f} files, {(h1 - h0) / extra:.2f} CPU s per idle hour")


if __name__ == "__main__":
    main()
