"""The two baselines nudger is measured against, run as separate processes.

naive: what a quick script does: every message of every folder, whole, parsed.
floor: the least any header-based tool must transfer: one FETCH of the needed header
       fields for the look-back window, 1000 UIDs per command, nothing stored.
"""

from __future__ import annotations

import email
import sys
from datetime import UTC, datetime, timedelta
from email import policy

import imapclient

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/src")
from nudger.core.headers import HEADER_FIELDS

SKIP = ("Drafts", "Trash", "Junk")


def folders(client: imapclient.IMAPClient) -> list[str]:
    return [name for flags, _, name in client.list_folders()
            if name not in SKIP and b"\\Noselect" not in flags]


def naive(client: imapclient.IMAPClient) -> int:
    parsed = 0
    for folder in folders(client):
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), 100):
            for data in client.fetch(uids[start : start + 100], ["BODY.PEEK[]"]).values():
                email.message_from_bytes(data[b"BODY[]"], policy=policy.default)
                parsed += 1
    return parsed


def floor(client: imapclient.IMAPClient, days: int) -> int:
    since = (datetime.now(UTC) - timedelta(days=days)).date()
    item = "BODY.PEEK[HEADER.FIELDS (" + " ".join(HEADER_FIELDS) + ")]"
    fetched = 0
    for folder in folders(client):
        client.select_folder(folder, readonly=True)
        uids = client.search(["SINCE", since])
        for start in range(0, len(uids), 1000):
            fetched += len(client.fetch(uids[start : start + 1000], [item]))
    return fetched


def main() -> None:
    mode, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=120)
    client.login(user, password)
    n = naive(client) if mode == "naive" else floor(client, int(sys.argv[5]))
    client.logout()
    print(n)


if __name__ == "__main__":
    main()
