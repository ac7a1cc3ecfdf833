"""nudger's sync measured against the alternatives, on a private Dovecot with big accounts.

    .venv/bin/python bench/run.py            # the full run (about 25 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # a small scale, a few minutes

Prints a table of wall time, peak RSS and bytes sent by the server (from Dovecot's own
per-session log) for: (a) nudger's first cycle, (b) a no-op cycle, (c) a cycle after 10
new messages, (d) naive full fetch + parse, (e) the headers-only floor for the window,
(f) mbsync + notmuch new + a notmuch query; then (a)-(c) again without CONDSTORE.
Medians of several runs. Everything stays on 127.0.0.1. (bench/latency.py: the same
over a distant server, an account of 200+ folders.)
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
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from mailgen import account  # noqa: E402

from support.dovecot import WEAK_CAPABILITY, Dovecot, find_dovecot  # noqa: E402
from support.mail import message  # noqa: E402

PYTHON = sys.executable
LOOKBACK_DAYS = 30


@dataclass
class Figure:
    seconds: float
    rss_mb: float
    server_bytes: int


def measure(cmd: list[str], server: Dovecot, user: str, env: dict[str, str] | None = None) -> Figure:
    """Run a command; its wall time, peak RSS (its own, via wait4) and server bytes sent."""
    mark = len(server.sessions(user))
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would block it
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        errors.seek(0)
        err = errors.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed:\n{err[-2000:]}")
    time.sleep(0.3)  # Dovecot writes the session line at logout
    sent = sum(s.get("out", 0) for s in server.sessions(user)[mark:])
    return Figure(seconds, usage.ru_maxrss / 1024, sent)


def median(figures: list[Figure]) -> Figure:
    return Figure(statistics.median(f.seconds for f in figures),
                  statistics.median(f.rss_mb for f in figures),
                  int(statistics.median(f.server_bytes for f in figures)))


class Bench:
    def __init__(self, server: Dovecot, user: str, work: Path):
        self.server, self.user, self.work = server, user, work
        self.config = work / f"{user}.toml"
        self.state = work / f"state-{user}"
        self.config.write_text(f"""
[daemon]
state_dir = "{self.state}"
[accounts.bench]
host = "127.0.0.1"
port = {server.port}
tls = "none"
username = "{user}"
password_env = "BENCH_PASSWORD"
timezone = "UTC"
lookback = "{LOOKBACK_DAYS}d"
# Nothing falls due: the cycles measured here sync and decide; writing drafts is bounded
# separately (max_new_drafts) and would make repeated first cycles differ.
[[rules]]
name = "bench"
after = "365d"
""")
        self.env = {**os.environ, "BENCH_PASSWORD": server.users[user]}

    def nudger(self) -> Figure:
        return measure([PYTHON, "-m", "nudger", "--config", str(self.config), "run", "--once"],
                       self.server, self.user, self.env)

    def first_cycle_once(self) -> Figure:
        shutil.rmtree(self.state, ignore_errors=True)
        self.server.clear_folder(self.user, "Drafts")
        return self.nudger()

    def first_cycle(self, runs: int) -> Figure:
        return median([self.first_cycle_once() for _ in range(runs)])

    def first_cycle_and_floor(self, runs: int) -> tuple[Figure, Figure]:
        """(a) and (e) taken in turns, so that a machine getting faster or slower during
        the run weighs on both alike: their ratio is the figure that matters."""
        firsts, floors = [], []
        for _ in range(runs):
            firsts.append(self.first_cycle_once())
            floors.append(self.baseline_once("floor"))
        return median(firsts), median(floors)

    def noop(self, runs: int) -> Figure:
        self.nudger()  # settle: the first cycle's own drafts are read back once
        return median([self.nudger() for _ in range(runs)])

    def after_new(self, runs: int) -> Figure:
        figures = []
        for r in range(runs):
            now = datetime.now(UTC)
            self.server.seed(self.user, "INBOX", [
                message(f"new{r}.{i}.{time.time_ns()}@them.example", sender="x@them.example",
                        to=self.user, subject=f"New {i}", date=now) for i in range(10)])
            figures.append(self.nudger())
        return median(figures)

    def baseline_once(self, mode: str) -> Figure:
        cmd = [PYTHON, str(ROOT / "bench" / "baselines.py"), mode, str(self.server.port), self.user,
               self.server.users[self.user], str(LOOKBACK_DAYS)]
        return measure(cmd, self.server, self.user)

    def baseline(self, mode: str, runs: int) -> Figure:
        return median([self.baseline_once(mode) for _ in range(runs)])

    def mbsync_notmuch(self) -> Figure:
        """A power user's script: mirror with mbsync, index with notmuch, query."""
        mail = self.work / f"mbsync-{self.user}"
        shutil.rmtree(mail, ignore_errors=True)
        (mail / "INBOX").mkdir(parents=True)
        rc = self.work / f"mbsyncrc-{self.user}"
        rc.write_text(f"""IMAPAccount bench
Host 127.0.0.1
Port {self.server.port}
User {self.user}
Pass {self.server.users[self.user]}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns * !Drafts !Trash !Junk
Create Near
Sync Pull
SyncState *
""")
        nm = self.work / f"notmuch-{self.user}"
        nm.write_text(f"[database]\npath={mail}\n[user]\nprimary_email={self.user}\n"
                      "[new]\ntags=new;\n[maildir]\nsynchronize_flags=false\n")
        script = (f"mbsync -q -c {rc} -a && NOTMUCH_CONFIG={nm} notmuch new --quiet && "
                  f"NOTMUCH_CONFIG={nm} notmuch count --output=threads "
                  f"'from:{self.user} date:{LOOKBACK_DAYS}days..'")
        return measure(["sh", "-c", script], self.server, self.user)


def start_server(binary: str, work: Path, name: str, sizes: dict[str, tuple[int, int]],
                 capability: str | None) -> tuple[Dovecot, dict[str, str]]:
    server = Dovecot(binary, capability=capability, root=work / name)
    users = {}
    now = datetime.now(UTC)
    for label, (count, days) in sizes.items():
        user = server.add_user(f"{label}@me.example", "bench")
        started = time.perf_counter()
        counts = account(server.dir / "home" / user, user, count, days, now, server.uid, server.gid,
                         seed=zlib.crc32(label.encode()))
        print(f"  seeded {user}: {sum(counts.values())} messages in {time.perf_counter() - started:.1f}s "
              f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})", file=sys.stderr)
        users[label] = user
    server.start()
    for user in users.values():  # let Dovecot build its indexes before anything is timed
        client = server.client(user)
        for _, _, folder in client.list_folders():
            client.select_folder(folder, readonly=True)
        client.logout()
    return server, users


def row(name: str, f: Figure) -> str:
    return f"| {name:<44} | {f.seconds:8.2f} | {f.rss_mb:7.1f} | {f.server_bytes / 1024:10.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10x smaller accounts, fewer runs")
    parser.add_argument("--runs", type=int, default=0, help="runs per figure (default 5, quick 3)")
    parser.add_argument("--no-mbsync", action="store_true", help="skip (f), the slowest column")
    args = parser.parse_args()
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("bench: Dovecot is not installed (apt-get install dovecot-imapd)")
    for tool in ("mbsync", "notmuch"):
        if not args.no_mbsync and shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing (apt-get install isync notmuch), or pass --no-mbsync")
    # An installed nudger has its bytecode compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module at each start (~70 ms here) and
    # weigh on every figure but the floor's.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "src" / "nudger")], check=True)
    scale = 10 if args.quick else 1
    runs = args.runs or (3 if args.quick else 5)
    sizes = {"acct10k": (10_000 // scale, 3 * 365), "acct100k": (100_000 // scale, 3 * 365),
             "heavy20k": (20_000 // scale, LOOKBACK_DAYS)}
    work = Path(tempfile.mkdtemp(prefix="nudger-bench-"))
    work.chmod(0o755)
    lines = []
    results: dict[str, dict[str, Figure]] = {}
    try:
        for path, capability in (("CONDSTORE", None), ("no CONDSTORE", WEAK_CAPABILITY)):
            print(f"server with {path}:", file=sys.stderr)
            server, users = start_server(binary, work, path.replace(" ", "-"), sizes, capability)
            try:
                for label, user in users.items():
                    b = Bench(server, user, work)
                    got = results.setdefault(f"{label} ({path})", {})
                    print(f"  measuring {label}...", file=sys.stderr)
                    if capability is None:
                        got["a"], got["e"] = b.first_cycle_and_floor(runs)
                    else:
                        got["a"] = b.first_cycle(runs)
                    got["b"] = b.noop(runs)
                    got["c"] = b.after_new(runs)
                    if capability is None:
                        got["d"] = b.baseline("naive", 1 if label == "acct100k" else min(runs, 3))
                        if not args.no_mbsync:
                            got["f"] = b.mbsync_notmuch()
            finally:
                server.stop()
        names = {"a": "(a) nudger first cycle", "b": "(b) nudger no-op cycle",
                 "c": "(c) nudger cycle after 10 new messages", "d": "(d) naive: fetch all + parse",
                 "e": "(e) floor: header fields of the window", "f": "(f) mbsync + notmuch new + query"}
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        lines.append(f"nudger bench, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
                     f"Dovecot {version}, "
                     f"median of {runs} runs ((a) and (e) in turns; (d) on 100k and (f): 1 run), "
                     f"look-back {LOOKBACK_DAYS} days")
        for account_name, figures in results.items():
            lines.append("")
            lines.append(f"### {account_name}")
            lines.append("| what | seconds | peak RSS MB | server KB sent |")
            lines.append("|---|---:|---:|---:|")
            for key in "abcdef":
                if key in figures:
                    lines.append(row(names[key], figures[key]))
            f = figures
            ratios = []
            if "d" in f:
                ratios.append(f"first cycle vs naive: {f['d'].seconds / f['a'].seconds:.1f}x faster")
            if "f" in f:
                ratios.append(f"vs mbsync+notmuch: {f['f'].seconds / f['a'].seconds:.1f}x faster")
            if "e" in f:
                ratios.append(f"first cycle / floor: {f['a'].seconds / f['e'].seconds:.2f}x time, "
                              f"{f['a'].server_bytes / max(1, f['e'].server_bytes):.2f}x bytes")
            ratios.append(f"after-10-new / no-op: {f['c'].seconds / f['b'].seconds:.2f}x time")
            lines.append("")
            lines.append("ratios: " + "; ".join(ratios))
        for path in ("CONDSTORE", "no CONDSTORE"):
            small, big = results.get(f"acct10k ({path})"), results.get(f"acct100k ({path})")
            if small and big:
                ratio = big["b"].seconds / small["b"].seconds
                lines.append(f"no-op flatness 10k -> 100k ({path}): time {ratio:.2f}x, "
                             f"server bytes {big['b'].server_bytes / max(1, small['b'].server_bytes):.2f}x, "
                             f"{big['b'].server_bytes / 5:.0f} bytes per watched folder (5 watched + Drafts)")
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
