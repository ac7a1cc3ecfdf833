"""nudger over a distant server: an account of 200+ folders behind a latency proxy.

    .venv/bin/python bench/latency.py [--runs 3] [--folders 200] [--rtt 0.05]

One account (``--folders`` folders of 10 messages each, plus INBOX and Sent with 10
each) on two private Dovecots: one as it is, one whose ``imap_capability`` hides
LIST-STATUS. Each is reached through a loopback proxy that delays every chunk by RTT/2
each way without limiting bandwidth (tests/support/proxy.py), at RTT 0 and at ``--rtt``.
Prints, side by side, the wall time of nudger and of a minimal pipelined client
(pipelined_floor.py) for the no-op poll (``run --once``, nothing changed) and the first
cycle (``run --once --dry-run`` on a fresh state), and their round trips: the time the
delay added, divided by the RTT. Medians of ``--runs`` runs. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.dovecot import Dovecot, find_dovecot  # noqa: E402
from support.mail import message  # noqa: E402
from support.proxy import LatencyProxy  # noqa: E402

PYTHON = sys.executable
ME = "many@me.example"


def seed(server: Dovecot, user: str, folders: int) -> None:
    """Each folder a client's: 10 messages of the last three weeks, some answering the
    user's messages in Sent."""
    now = datetime.now(UTC)
    client = server.client(user)
    try:
        names = [f"Clients/Client {i:03d}" for i in range(folders)]
        for name in names:
            client.create_folder(name)
    finally:
        client.logout()
    server.seed(user, "Sent", [message(f"out{i}@me.example", sender=user, to=f"c{i}@client.example",
                                       subject=f"Proposal {i}", date=now - timedelta(days=20 - i))
                               for i in range(10)])
    server.seed(user, "INBOX", [message(f"in{i}@client.example", sender=f"c{i}@client.example",
                                        to=user, subject=f"Question {i}", date=now - timedelta(days=i))
                                for i in range(10)])
    for f, name in enumerate(names):
        server.seed(user, name, [
            message(f"f{f}.{i}@client.example", sender=f"c{f}@client.example", to=user,
                    subject=f"Re: Proposal {f % 10}", date=now - timedelta(days=i, hours=f % 24),
                    reply_to=f"out{f % 10}@me.example" if i == 0 else None)
            for i in range(10)])


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])}... failed:\n{done.stderr.decode()[-2000:]}")
    return seconds


class Runner:
    """nudger and the floor through one proxy."""

    def __init__(self, server: Dovecot, user: str, proxy: LatencyProxy, work: Path):
        self.server, self.user, self.proxy = server, user, proxy
        self.state = work / f"state-{proxy.port}"
        self.config = work / f"config-{proxy.port}.toml"
        self.config.write_text(f"""
[daemon]
state_dir = "{self.state}"
[accounts.many]
host = "127.0.0.1"
port = {proxy.port}
tls = "none"
username = "{user}"
password_env = "BENCH_PASSWORD"
timezone = "UTC"
lookback = "30d"
[[rules]]
name = "bench"
after = "365d"
""")
        self.env = {**os.environ, "BENCH_PASSWORD": server.users[user]}

    def nudger(self, *args: str) -> float:
        return timed([PYTHON, "-m", "nudger", "--config", str(self.config), "run", "--once", *args],
                     self.env)

    def floor(self, mode: str) -> float:
        return timed([PYTHON, str(ROOT / "bench" / "pipelined_floor.py"), mode, str(self.proxy.port),
                      self.user, self.server.users[self.user]])

    def first(self) -> float:
        shutil.rmtree(self.state, ignore_errors=True)
        return self.nudger("--dry-run")

    def settle(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        self.nudger()
        self.nudger()


def measure(runner: Runner, runs: int) -> dict[str, float]:
    """Medians, the two clients taken in turns (a machine slowing down weighs on both),
    and the times each waited for the server in its last run ("... turns"), counted at
    the proxy: the round trips of a run, whatever the machine's load."""
    got: dict[str, list[float]] = {}

    def take(key: str, run: Callable[[], float]) -> None:
        mark = len(runner.proxy.events)
        got.setdefault(key, []).append(run())
        got[f"{key} turns"] = [len(runner.proxy.turns(mark))]

    for _ in range(runs):
        take("first", runner.first)
        take("floor first", lambda: runner.floor("first"))
    runner.settle()
    for _ in range(runs):
        take("noop", runner.nudger)
        take("floor noop", lambda: runner.floor("noop"))
    return {k: statistics.median(v) for k, v in got.items()}


def hidden_list_status(server: Dovecot, user: str) -> str:
    client = server.client(user)
    try:
        names = [c.decode() for c in client.capabilities() if c.upper() != b"LIST-STATUS"]
    finally:
        client.logout()
    return " ".join(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--rtt", type=float, default=0.05, help="seconds (default 0.05)")
    args = parser.parse_args()
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("bench: Dovecot is not installed (apt-get install dovecot-imapd)")
    # Compiled bytecode, as an install has (see run.py): not a compile at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "nudger")], check=True)
    work = Path(tempfile.mkdtemp(prefix="nudger-latency-"))
    work.chmod(0o755)
    rows: list[str] = []
    capability: str | None = None
    try:
        for label in ("LIST-STATUS", "no LIST-STATUS"):
            server = Dovecot(binary, root=work / label.replace(" ", "-"), capability=capability)
            user = server.add_user(ME, "bench")
            server.start()
            proxies: list[LatencyProxy] = []
            try:
                if capability is None:
                    capability = hidden_list_status(server, user)
                started = time.perf_counter()
                seed(server, user, args.folders)
                print(f"{label}: seeded {args.folders + 2} folders in "
                      f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
                figures = {}
                for rtt in (0.0, args.rtt):
                    proxies.append(LatencyProxy(server.port, rtt))
                    print(f"  measuring at RTT {rtt * 1000:.0f} ms...", file=sys.stderr)
                    figures[rtt] = measure(Runner(server, user, proxies[-1], work), args.runs)
                rows += table_rows(label, figures, args.rtt)
            finally:
                for proxy in proxies:
                    proxy.close()
                server.stop()
        print(f"nudger latency bench, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
              f"{args.folders + 2} watched folders (10 messages each), median of {args.runs} runs; "
              f"round trips = (time at RTT {args.rtt * 1000:.0f} ms - time at 0) / RTT; "
              "turns = the times the client waited for the server, counted at the proxy")
        ms = f"{args.rtt * 1000:.0f} ms"
        print(f"| what | server | nudger s (0 / {ms}) | nudger round trips (turns) "
              f"| floor s (0 / {ms}) | floor round trips (turns) | x floor round trips "
              f"| x floor time at {ms} |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table_rows(label: str, figures: dict[float, dict[str, float]], rtt: float) -> list[str]:
    rows = []
    near, far = figures[0.0], figures[rtt]
    for key, name in (("noop", "no-op poll"), ("first", "first cycle")):
        ours = (far[key] - near[key]) / rtt
        floor = (far[f"floor {key}"] - near[f"floor {key}"]) / rtt
        rows.append(f"| {name} | {label} | {near[key]:.2f} / {far[key]:.2f} "
                    f"| {ours:.1f} ({far[f'{key} turns']:.0f}) "
                    f"| {near[f'floor {key}']:.2f} / {far[f'floor {key}']:.2f} "
                    f"| {floor:.1f} ({far[f'floor {key} turns']:.0f}) "
                    f"| {ours / max(floor, 0.1):.2f} | {far[key] / far[f'floor {key}']:.2f} |")
    return rows


if __name__ == "__main__":
    main()
