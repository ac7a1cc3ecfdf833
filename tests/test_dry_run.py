"""`run --dry-run` prints what the run will do: the plan it shows is final."""

from __future__ import annotations

from typing import Any

import pytest

from support.dovecot import Dovecot
from support.harness import by_subject, make_box
from support.mail import days_ago, message

pytestmark = pytest.mark.imap

# What a dry run's "action" becomes once the run has done it.
DONE = {"append-draft": "appended", "withdraw-draft": "withdrawn", None: None}


def _plan(decisions: list[dict[str, Any]], dry_run: bool) -> dict[str, tuple[str, str | None]]:
    return {d["subject"]: (d["status"], DONE[d["action"]] if dry_run else d["action"])
            for d in decisions}


def test_the_dry_run_and_the_run_decide_the_same_threads_the_same_way(
        weak: Dovecot, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Without CONDSTORE the sync cannot see a keyword set on a message it already knows:
    # the flags read right before the plan is final must, in the dry run as in the run.
    user = weak.take_user()
    box = make_box(weak, user, tmp_path, capsys, monkeypatch,
                   extra_account="max_new_drafts = 3")
    for i in range(6):  # "Busy 0" is the oldest: the first to be written
        box.seed("Sent", message(f"busy{i}@example.com", sender=user, to=f"p{i}@client.example",
                                 subject=f"Busy {i}", date=days_ago(10 - i)))
    box.run(now=days_ago(9))  # the state knows every message, nothing is due yet
    later = days_ago(-3)
    before = box.run("--dry-run", now=later)
    assert by_subject(before)["Busy 0"]["action"] == "append-draft"
    client = weak.client(user)
    client.select_folder("Sent")
    client.add_flags(client.search(["HEADER", "Message-ID", "busy0@example.com"]), [b"$NoNudge"])
    client.logout()

    dry = box.run("--dry-run", now=later)
    assert box.last_code == 0 and box.drafts() == []
    real = box.run(now=later)
    assert box.last_code == 0
    assert _plan(dry, dry_run=True) == _plan(real, dry_run=False)
    assert by_subject(dry)["Busy 0"]["status"] == "excluded"
    assert "$NoNudge" in by_subject(dry)["Busy 0"]["reason"]
    written = [s for s, (status, action) in _plan(real, dry_run=False).items() if action]
    assert sorted(written) == ["Busy 1", "Busy 2", "Busy 3"]
    assert sorted(d["Subject"] for d in box.drafts()) == ["Re: Busy 1", "Re: Busy 2", "Re: Busy 3"]
    for later_one in ("Busy 4", "Busy 5"):
        d = by_subject(dry)[later_one]
        assert d["status"] == "due" and "at most 3 new follow-ups per cycle" in d["reason"]
