"""Garbled answers: 64 random bytes injected at a random offset of a cycle's server
traffic (a private Dovecot behind the loopback proxy), then a clean cycle. Counts exit
codes, internal errors, and lost threads (the clean cycle does not end with exactly
the drafts a clean mailbox gets).

    .venv/bin/python bench/garble.py [--runs 144] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from nudger.cli import main as nudger  # noqa: E402
from support.dovecot import Dovecot, find_dovecot  # noqa: E402
from support.mail import NOW, config_text, days_ago, message  # noqa: E402
from support.proxy import FaultyProxy  # noqa: E402


def run(config: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = nudger(["--config", str(config), "run", "--once", "--now", NOW.isoformat()])
    return code, err.getvalue()


def seed(server: Dovecot, user: str, n: int) -> None:
    """Four messages of the user's, one answered: three drafts once all is read."""
    server.seed(user, "Sent", [message(f"f{i}-{n}@example.com", sender=user, to=f"p{i}@client.example",
                                       subject=f"F {i}", date=days_ago(6)) for i in range(4)])
    server.seed(user, "INBOX", [message(f"r-{n}@client.example", sender="p0@client.example", to=user,
                                        subject="Re: F 0", date=days_ago(5), reply_to=f"f0-{n}@example.com")])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=144)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("Dovecot is not installed")
    server = Dovecot(binary)
    users = server.pool(args.runs)
    server.start()
    proxy = FaultyProxy(server.port)
    rng = random.Random(args.seed)
    codes: Counter[int] = Counter()
    lost = internal = 0
    total = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, user in enumerate(users):
                os.environ["NUDGER_TEST_PASSWORD"] = server.users[user]
                seed(server, user, n)
                config = Path(tmp) / str(n) / "config.toml"
                config.parent.mkdir()
                config.write_text(config_text(proxy.port, user, config.parent / "state").replace(
                    'tls = "none"', 'tls = "none"\ntimeout = "3s"'))
                if not total:  # one measured cycle tells the traffic's size
                    proxy.arm()
                    run(config)
                    total = proxy.sent
                    server.clear_folder(user, "Drafts")
                    (config.parent / "state").rename(config.parent / "measured")
                proxy.arm(inject=(rng.randrange(total), rng.randbytes(64)))
                code, err = run(config)
                codes[code] += 1
                internal += "internal error" in err
                if code not in (0, 75):
                    print(f"run {n}: exit {code}: {err.strip()[-200:]}")
                proxy.arm()
                clean, err = run(config)
                client = server.client(user)
                client.select_folder("Drafts", readonly=True)
                drafts = len(client.search(["ALL"]))
                client.logout()
                if clean != 0 or drafts != 3:
                    lost += 1
                    print(f"run {n}: {drafts} draft(s) after a clean cycle (exit {clean})")
    finally:
        proxy.close()
        server.cleanup()
    print(f"{args.runs} runs over {total} bytes of traffic: exit codes {dict(sorted(codes.items()))}, "
          f"internal errors {internal}, lost threads {lost}")


if __name__ == "__main__":
    main()
