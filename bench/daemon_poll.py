"""The service's own poll on an account of many folders, nothing changed: the lines it
writes, the times it waits for the server (round trips, counted at tests/support/proxy.py's
LatencyProxy) and the time a poll takes beyond its wait at ``--rtt`` (half each way), with
NOTIFY (the suite's Dovecot) and without (a Dovecot whose capabilities hide NOTIFY and
LIST-STATUS, like Office 365).

One service worker runs in this process at one poll a second (the configuration allows
10 s at least); the delay starts after its first cycle.

    .venv/bin/python bench/daemon_poll.py [--folders 200] [--rtt 0.05] [--polls 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from nudger.app.worker import Clock, Home, Worker, open_mailbox  # noqa: E402
from nudger.config.load import load_config  # noqa: E402
from nudger.cycle.cycle import CycleResult  # noqa: E402
from support.dovecot import WEAK_CAPABILITY, Dovecot, find_dovecot  # noqa: E402
from support.mail import NOW, config_text, days_ago, message  # noqa: E402
from support.proxy import LatencyProxy  # noqa: E402

# The capabilities of Dovecot that matter here, without NOTIFY.
NO_NOTIFY = ("IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS MOVE CHILDREN NAMESPACE UNSELECT "
             "CONDSTORE SPECIAL-USE LIST-EXTENDED LIST-STATUS")


def account(server: Dovecot, folders: int) -> str:
    user = server.add_user("mia@example.com")
    server.start()
    client = server.client(user)
    try:
        for i in range(folders):
            name = f"Clients/C{i:03d}"
            client.create_folder(name)
            client.append(name, message(f"c{i}@example.com", sender="ann@client.example",
                                        to=user, date=days_ago(3, now=NOW)))
    finally:
        client.logout()
    return user


def measure(server: Dovecot, user: str, work: Path, rtt: float,
            polls: int) -> tuple[float, float, float]:
    """Lines written, round trips and seconds (beyond the wait), each per poll."""
    proxy = LatencyProxy(server.port)
    path = work / "config.toml"
    path.write_text(config_text(proxy.port, user, work / f"state-{server.port}"))
    os.environ["NUDGER_TEST_PASSWORD"] = server.users[user]
    config = load_config(path)
    config = replace(config, daemon=replace(config.daemon, poll_interval=timedelta(seconds=1)))
    cycles: list[tuple[float, CycleResult]] = []
    home = Home(config.daemon.state_dir)
    worker = Worker(config, config.accounts[0], lambda _n, r: cycles.append((time.monotonic(), r)),
                    open_mailbox, home=home, clock=Clock(NOW))
    worker.start()
    try:
        while not cycles:
            time.sleep(0.05)
        proxy.rtt = rtt
        while len(cycles) < 2:
            time.sleep(0.05)
        turns, first = len(proxy.turns()), len(cycles)
        lines = sum(map(len, proxy.turns()))
        while len(cycles) < first + polls:
            time.sleep(0.05)
        seen = len(cycles) - first
        lines = sum(map(len, proxy.turns())) - lines
        turns = len(proxy.turns()) - turns
        took = cycles[-1][0] - cycles[first - 1][0] - seen * 1.0  # less the 1 s waits
    finally:
        worker.stop.set()
        worker.join(30)
        home.close()
        proxy.close()
    return lines / seen, turns / seen, max(0.0, took / seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--rtt", type=float, default=0.05)
    parser.add_argument("--polls", type=int, default=5)
    args = parser.parse_args()
    binary = find_dovecot()
    if binary is None:
        raise SystemExit("Dovecot is not installed")
    print(f"{'server':<30} {'lines/poll':>10} {'round trips/poll':>16} {'s/poll':>7}")
    for label, capability in (("Dovecot (NOTIFY)", None),
                              ("without NOTIFY, LIST-STATUS", NO_NOTIFY),
                              ("without NOTIFY or LIST-STATUS", WEAK_CAPABILITY)):
        work = Path(tempfile.mkdtemp(prefix="nudger-poll-"))
        work.chmod(0o755)
        server = Dovecot(binary, root=work / "dovecot", capability=capability)
        try:
            user = account(server, args.folders)
            lines, turns, took = measure(server, user, work, args.rtt, args.polls)
        finally:
            server.cleanup()
        print(f"{label:<30} {lines:>10.1f} {turns:>16.1f} {took:>7.2f}")


if __name__ == "__main__":
    main()
