"""A realistic synthetic account, written straight into a Maildir (fast, no IMAP).

Threads over a time span: the user's messages (Sent), replies in INBOX or filed in
Archive and user folders, out-of-office answers, bounces carrying the original's
Message-ID, and mailing-list traffic. Deterministic for a given seed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

FOLDERS = ("INBOX", "Sent", "Archive", "Projects", "Receipts", "Lists")
WORDS = ("proposal budget meeting contract invoice schedule report review draft plan update "
         "question offer delivery launch design hiring travel quarterly roadmap").split()
BODY = ("Hello,\n\nthanks for the update. Here are a few thoughts on the points we discussed; "
        "let me know what you think, and whether the dates still work on your side.\n\n"
        "Best regards\n") * 3


def _msg(mid: str, sender: str, to: str, subject: str, when: datetime, *, parent: str | None = None,
         refs: list[str] | None = None, extra: str = "", body: str = BODY) -> bytes:
    lines = [f"Message-ID: <{mid}>", f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Date: {format_datetime(when)}", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if parent:
        lines.append(f"In-Reply-To: <{parent}>")
        lines.append("References: " + " ".join(f"<{r}>" for r in (refs or [parent])))
    if extra:
        lines += extra.split("\n")
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def generate(user: str, count: int, start: datetime, end: datetime,
             seed: int = 1) -> Iterator[tuple[str, bytes, datetime, bool]]:
    """Yield (folder, bytes, internaldate, seen) until ``count`` messages."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    made = 0
    n = 0
    while made < count:
        n += 1
        when = start + timedelta(seconds=rng.random() * span)
        peer = f"person{rng.randrange(2000)}@{rng.choice(['client', 'vendor', 'partner', 'corp'])}.example"
        topic = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{n}"
        kind = rng.random()
        if kind < 0.15:  # mailing-list traffic
            mid = f"list{n}@lists.example"
            yield "Lists", _msg(mid, peer, "dev@lists.example", f"[dev] {topic}", when,
                                extra="List-Id: <dev.lists.example>"), when, True
            made += 1
            continue
        if kind < 0.25:  # receipts and notifications
            yield "Receipts", _msg(f"rcpt{n}@shop.example", "no-reply@shop.example", user,
                                   f"Your receipt {n}", when), when, True
            made += 1
            continue
        # A conversation: the user starts it, or answers someone.
        ours_first = kind < 0.75
        chain: list[str] = []
        length = 1 + int(rng.expovariate(0.7))
        t = when
        for i in range(length):
            mine = (i % 2 == 0) == ours_first
            mid = f"c{n}.{i}@{'me.example' if mine else 'them.example'}"
            subject = topic if i == 0 else f"Re: {topic}"
            parent = chain[-1] if chain else None
            data = _msg(mid, user if mine else peer, peer if mine else user, subject, t,
                        parent=parent, refs=chain[-5:] or None)
            folder = "Sent" if mine else ("INBOX" if (end - t).days < 60 else
                                          rng.choice(["Archive", "Archive", "Projects"]))
            yield folder, data, t, True
            made += 1
            chain.append(mid)
            if mine and rng.random() < 0.04:  # an out-of-office answer
                yield "INBOX", _msg(f"ooo{n}.{i}@them.example", peer, user, f"Automatic reply: {topic}",
                                    t + timedelta(minutes=2), parent=mid,
                                    extra="Auto-Submitted: auto-replied"), t, True
                made += 1
            if mine and rng.random() < 0.01:  # a bounce
                yield "INBOX", _msg(f"dsn{n}.{i}@mx.example", "MAILER-DAEMON@mx.example", user,
                                    "Undelivered Mail Returned to Sender", t + timedelta(minutes=1),
                                    parent=mid, extra=f"X-Failed-Recipients: {peer}"), t, True
                made += 1
            t += timedelta(hours=rng.uniform(1, 96))
            if t > end or made >= count:
                break


def write_maildir(home: Path, messages: Iterator[tuple[str, bytes, datetime, bool]],
                  uid: int, gid: int) -> dict[str, int]:
    """Files in cur/ named the way Dovecot expects; INTERNALDATE from the file's mtime."""
    counts: dict[str, int] = {}
    root = home / "Maildir"
    for folder in FOLDERS:
        base = root if folder == "INBOX" else root / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    for i, (folder, data, when, seen) in enumerate(messages):
        base = root if folder == "INBOX" else root / f".{folder}"
        name = f"{int(when.timestamp())}.M{i}P{pid}.bench,S={len(data)}:2,{'S' if seen else ''}"
        path = base / "cur" / name
        path.write_bytes(data)
        ts = when.timestamp()
        os.utime(path, (ts, ts))
        counts[folder] = counts.get(folder, 0) + 1
    (root / "subscriptions").write_text("\n".join(f for f in FOLDERS if f != "INBOX") + "\n")
    for dirpath, _subdirs, filenames in os.walk(home):
        os.chown(dirpath, uid, gid)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), uid, gid)
    return counts


def account(home: Path, user: str, count: int, days: int, now: datetime, uid: int, gid: int,
            seed: int = 1) -> dict[str, int]:
    return write_maildir(home, generate(user, count, now - timedelta(days=days), now, seed), uid, gid)


if __name__ == "__main__":  # a quick look at what it makes
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    for folder, data, when, _ in generate("me@me.example", count, start, end):
        print(folder, when.date(), data.split(b"\r\n")[3].decode())
