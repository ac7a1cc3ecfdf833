"""`nudger stats`: what the follow-ups achieved, counted from a real sequence of cycles on
Dovecot (drafted, sent by the user, answered, deleted), from the state alone."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from nudger.cycle.statefile import SCHEMA_VERSION
from support.harness import Box, by_subject, make_box
from support.mail import NOW, days_ago, message

pytestmark = pytest.mark.imap

RULES = '''[[rules]]
name = "clients"
stages = [ { after = "2d", template = "gentle" }, { after = "4d", template = "gentle" } ]'''
SUBJECTS = ("Quote", "Invoice", "Silent", "Dismissed", "Answered first")


def later(days: float) -> Any:
    return NOW + timedelta(days=days)


def draft_of(box: Box, subject: str) -> tuple[int, bytes]:
    for uid, (data, _) in box.raw("Drafts").items():
        if f"Subject: Re: {subject}\r\n".encode() in data:
            return uid, data
    raise AssertionError(f"no draft for {subject!r}")


def send(box: Box, subject: str) -> str:
    """What the user's client does on Send: the draft goes to Sent, unchanged, and leaves
    Drafts. Returns its Message-ID."""
    uid, data = draft_of(box, subject)
    box.seed("Sent", data)
    box.delete_drafts([uid])
    return data.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()


def reply(box: Box, n: int, to_id: str, subject: str, days: float) -> None:
    box.seed("INBOX", message(f"reply{n}@client.example", sender="Bob Smith <bob@client.example>",
                              to=box.user, subject=f"Re: {subject}", date=later(days),
                              reply_to=to_id.strip("<>")), flags=())


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES)
    for n, subject in enumerate(SUBJECTS):
        box.seed("Sent", message(f"s{n}@example.com", sender=f"Mia Example <{box.user}>",
                                 to="Bob Smith <bob@client.example>", subject=subject,
                                 date=days_ago(3)))
    return box


def stats(box: Box, *args: str, now: Any = None) -> tuple[int, str]:
    code, out, err = box.cli("stats", "--now", (now or later(8)).isoformat(), *args)
    assert err == ""
    return code, out


def live_sequence(box: Box) -> None:
    """Five threads, one rule: answered after stage 1, answered after stage 2, silent,
    dismissed, answered while the draft still waited."""
    first = by_subject(box.run())
    assert {first[s]["action"] for s in SUBJECTS} == {"appended"}
    quote, invoice = send(box, "Quote"), send(box, "Invoice")
    send(box, "Silent")
    box.delete_drafts([draft_of(box, "Dismissed")[0]])
    reply(box, 1, quote, "Quote", 1)  # a day after the follow-up
    reply(box, 2, "s4@example.com", "Answered first", 0.5)
    d = by_subject(box.run(now=later(1.1)))
    assert (d["Quote"]["status"], d["Answered first"]["action"]) == ("replied", "withdrawn")
    d = by_subject(box.run(now=later(5)))
    assert d["Invoice"]["action"] == d["Silent"]["action"] == "appended"  # stage 2
    assert invoice != (invoice2 := send(box, "Invoice"))
    reply(box, 3, invoice2, "Invoice", 7)  # two days after the second follow-up
    assert by_subject(box.run(now=later(8)))["Invoice"]["status"] == "replied"
    assert box.last_code == 0


def test_stats_counts_what_the_follow_ups_achieved(box: Box) -> None:
    live_sequence(box)
    code, out = stats(box, "--json")
    assert code == 0
    [account] = json.loads(out)["accounts"]
    assert (account["threads_nudged"], account["answered"], account["reply_rate"]) == (3, 2, 0.667)
    [rule] = account["rules"]
    assert rule["rule"] == "clients" and rule["threads"] == 5
    assert (rule["waiting"], rule["dismissed"], rule["answered_before_sent"]) == (1, 1, 1)
    day = 86400
    assert rule["median_to_answer_seconds"] == 1.5 * day
    assert rule["stages"] == [
        {"stage": 1, "label": "follow-up 1", "sent": 3, "answered": 1, "median_to_answer_seconds": day},
        {"stage": 2, "label": "follow-up 2", "sent": 1, "answered": 1, "median_to_answer_seconds": 2 * day},
    ]
    code, out = stats(box)
    assert code == 0
    lines = out.splitlines()
    assert "test: since 2026-09-06, 3 threads got a follow-up, 2 answered after one (67%)" in out
    stage1 = next(line for line in lines if "clients" in line)
    assert "1 │ " in stage1 and "████····" in stage1 and "33%" in stage1 and "1d" in stage1
    assert "1 waiting, 1 dismissed, 1 answered before sent" in stage1
    stage2 = lines[lines.index(stage1) + 1]
    assert "2 │" in stage2 and "████████████ 100%" in stage2 and "2d" in stage2
    whole = lines[lines.index(stage1) + 2]
    assert "all │    3 │        2 │ ████████····  67% │ 1d 12h" in whole


def test_a_state_of_schema_2_opens_cleanly_and_its_ledger_starts_the_history(
        box: Box, tmp_path: Path) -> None:
    box.run()
    send(box, "Quote")
    box.run(now=later(1))
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.sqlite3")) as conn:
        conn.executescript("DROP TABLE history; ALTER TABLE nudges DROP COLUMN text_digest; "
                           "PRAGMA user_version=2")
    code, out = stats(box, "--json", now=later(1))  # read as it is: no history yet
    assert code == 0 and json.loads(out)["accounts"][0]["rules"] == []
    assert box.cli("status", "--now", later(1).isoformat())[0] == 0
    reply(box, 1, "s0@example.com", "Quote", 1.5)
    assert by_subject(box.run(now=later(2)))["Quote"]["status"] == "replied"
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.sqlite3")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    _, out = stats(box, "--json", now=later(2))
    [rule] = json.loads(out)["accounts"][0]["rules"]
    assert (rule["rule"], rule["threads"], rule["nudged"], rule["answered"]) == (None, 5, 1, 1)


def test_stats_outlive_the_mail_window_and_are_pruned_after_a_year(box: Box) -> None:
    live_sequence(box)
    # Months later the mail itself is long forgotten (twice the 30-day window), the counts not.
    box.run(now=later(200))
    assert box.last_code == 0
    _, out = stats(box, "--json", "--since", "400d", now=later(200))
    assert json.loads(out)["accounts"][0]["threads_nudged"] == 3
    # A year after a thread's latest follow-up, it is forgotten, whole.
    box.run(now=later(368))
    _, out = stats(box, "--json", "--since", "400d", now=later(368))
    [rule] = json.loads(out)["accounts"][0]["rules"]
    assert (rule["threads"], rule["nudged"], rule["answered"], rule["waiting"]) == (2, 2, 1, 1)
    assert [s["sent"] for s in rule["stages"]] == [2, 1]  # both stages of both threads
    box.run(now=later(372))
    _, out = stats(box, "--json", "--since", "400d", now=later(372))
    assert json.loads(out)["accounts"][0]["rules"] == []
    _, out = stats(box, now=later(372))
    assert "0 threads got a follow-up" in out and "(no follow-ups in this period)" in out


def test_stats_since_counts_the_follow_ups_of_that_period(box: Box) -> None:
    live_sequence(box)
    _, out = stats(box, "--json", "--since", "8d")  # the first follow-ups: 8 days ago
    assert json.loads(out)["accounts"][0]["threads_nudged"] == 3
    _, out = stats(box, "--json", "--since", "7d")
    assert json.loads(out)["accounts"][0]["rules"] == []
    code, _, err = box.cli("stats", "--since", "a while")
    assert code == 2 and '--since: "a while" is not a duration' in err


def test_reply_counts_for_the_digest_count_threads_in_which_a_follow_up_went_out() -> None:
    from nudger.core.stats import NudgeOutcome, reply_counts

    def row(n: int, thread: str, stage: int, sent: float | None,
            answered: float | None = None) -> NudgeOutcome:
        return NudgeOutcome(f"n{n}", "work", thread, "r", stage, later(stage),
                            sent_at=later(sent) if sent is not None else None,
                            answered_at=later(answered) if answered is not None else None)

    rows = [row(1, "a", 1, 1, answered=9), row(2, "a", 2, 5, answered=9),  # after stage 2
            row(3, "b", 1, 1), row(4, "c", 1, None, answered=2),  # silent; answered first
            row(5, "d", 1, None)]  # never sent: not counted
    assert reply_counts(rows) == (1, 2)
    assert reply_counts(rows, since=later(1.5)) == (0, 0)  # every thread began before
    assert reply_counts([]) == (0, 0)
