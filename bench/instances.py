"""Two installations of nudger, each with its own state directory, against one mailbox,
started at the same instant round after round. Prints the duplicates left behind, the
drafts lost, and how often both instances really appended the same follow-up (a race
the second look after APPEND resolved).

    .venv/bin/python bench/instances.py [--rounds 40] [--threads 5] [--instances 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.dovecot import Dovecot, find_dovecot  # noqa: E402
from support.mail import NOW, config_text, days_ago, message  # noqa: E402


def drafts(server: Dovecot, user: str) -> tuple[Counter[str], int]:
    """The Message-IDs in Drafts, counted, and Drafts' UIDNEXT (every APPEND moves it)."""
    client = server.client(user)
    try:
        got = client.select_folder("Drafts", readonly=True)
        uids = client.search(["ALL"])
        heads = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
        values = (next(v for k, v in d.items() if k.startswith(b"BODY")) for d in heads.values())
        ids = Counter(v.decode().partition(":")[2].strip() for v in values)
        return ids, int(got[b"UIDNEXT"])
    finally:
        client.logout()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=5, help="follow-ups due per round")
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("Dovecot is not installed")
    work = Path(tempfile.mkdtemp(prefix="nudger-instances-"))
    work.chmod(0o755)  # Dovecot's auth worker reads the users file below it
    server = Dovecot(binary, root=work / "dovecot")
    user = server.add_user("mia@example.com")
    server.start()
    env = {**os.environ, "NUDGER_TEST_PASSWORD": server.users[user]}
    configs = []
    for n in range(args.instances):
        path = work / f"instance{n}.toml"
        path.write_text(config_text(server.port, user, work / f"state{n}"))
        configs.append(path)
    duplicates = lost = raced = failed = pairs_with_duplicates = 0
    started = time.perf_counter()
    try:
        _, uidnext = drafts(server, user)
        for r in range(args.rounds):
            ids = [f"inst{r}-{i}@example.com" for i in range(args.threads)]
            server.seed(user, "Sent", [message(mid, sender=user, subject=f"Round {r} thread {i}",
                                               date=days_ago(6)) for i, mid in enumerate(ids)])
            procs = [subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(c), "run",
                                       "--once", "--now", NOW.isoformat()], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for c in configs]
            for proc in procs:
                _, err = proc.communicate(timeout=120)
                if proc.returncode != 0:
                    failed += 1
                    print(f"round {r}: exit {proc.returncode}: {err.decode()[-300:]}", file=sys.stderr)
            found, after = drafts(server, user)
            extra = sum(n - 1 for n in found.values())  # (duplicates of earlier rounds too)
            pairs_with_duplicates += extra > duplicates
            duplicates = extra
            lost += args.threads * (r + 1) - len(found)
            raced += (after - uidnext) - args.threads  # appends beyond one per follow-up
            uidnext = after
        # A later run of each instance must write nothing and remove nothing.
        before, _ = drafts(server, user)
        for c in configs:
            subprocess.run([sys.executable, "-m", "nudger", "--config", str(c), "run", "--once",
                            "--now", NOW.isoformat()], env=env, capture_output=True, check=False)
        changed = drafts(server, user)[0] != before
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"instances: {args.instances} instances x {args.rounds} rounds x {args.threads} "
          f"follow-ups in {time.perf_counter() - started:.0f}s; duplicates left: {duplicates} "
          f"(in {pairs_with_duplicates} rounds); drafts lost: {lost}; APPENDs beyond one per "
          f"follow-up (races): {raced}; failed runs: {failed}; later runs changed Drafts: "
          f"{'yes' if changed else 'no'}")
    raise SystemExit(1 if duplicates or lost or failed or changed else 0)


if __name__ == "__main__":
    main()
