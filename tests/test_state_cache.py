"""The state is a cache of the server: lost, damaged, read-only or on a full disk, what
the user finds in their mailbox and reads on the terminal."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nudger.cycle.statefile import SCHEMA_VERSION
from support.harness import Box, by_subject, make_box
from support.mail import NOW, config_text, days_ago, message

pytestmark = pytest.mark.imap

TWO_STAGES = '''[[rules]]
name = "clients"
stages = [ { after = "2d", template = "gentle" }, { after = "4d", template = "gentle" } ]'''


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def sent(box: Box, mid: str, subject: str, days: float) -> None:
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to="Bob <bob@client.example>",
                             subject=subject, date=days_ago(days)))


def reply(box: Box, mid: str, subject: str, days: float) -> None:
    box.seed("INBOX", message(f"re-{mid}", sender="bob@client.example", to=box.user,
                              subject=f"Re: {subject}", date=days_ago(days), reply_to=mid))


def lose_state(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "state")  # a reinstall, a new laptop, a lost file


def to_trash(box: Box, uids: list[int] | None = None) -> None:
    """What a client does when the user deletes a draft: copy it to Trash, remove it."""
    client = box.dovecot.client(box.user)
    try:
        client.select_folder("Drafts")
        uids = uids or client.search(["ALL"])
        client.copy(uids, "Trash")
        client.delete_messages(uids)
        client.expunge()
    finally:
        client.logout()


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.sqlite3"


# -- the state lost ------------------------------------------------------------------------


def test_lost_state_then_a_reply_withdraws_the_untouched_follow_up(box: Box, tmp_path: Path) -> None:
    sent(box, "c1@example.com", "Proposal", 6)
    assert by_subject(box.run())["Proposal"]["action"] == "appended"
    lose_state(tmp_path)
    reply(box, "c1@example.com", "Proposal", 0.5)
    d = by_subject(box.run())["Proposal"]
    assert d["status"] == "replied"
    assert box.drafts() == []  # nudger knew its own untouched draft without the state


def test_lost_state_a_follow_up_you_changed_stays(box: Box, tmp_path: Path) -> None:
    sent(box, "c2@example.com", "Quote", 6)
    box.run()
    [(uid, (data, flags))] = box.raw("Drafts").items()
    # A client that keeps every header but the user changed a word: it is theirs now.
    box.seed("Drafts", data.replace(b"Hi Bob,", b"Hi Bobby,"), flags=("\\Draft", "\\Seen"))
    box.delete_drafts([uid])
    lose_state(tmp_path)
    reply(box, "c2@example.com", "Quote", 0.5)
    box.run()
    [draft] = box.drafts()
    assert "Hi Bobby," in draft.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_lost_state_a_follow_up_deleted_to_trash_is_not_written_again(box: Box,
                                                                     tmp_path: Path) -> None:
    sent(box, "c3@example.com", "Dismiss me", 6)
    box.run()
    to_trash(box)
    lose_state(tmp_path)
    d = by_subject(box.run(now=days_ago(-1)))["Dismiss me"]
    assert d["status"] == "dismissed" and "deleted" in d["reason"]
    assert box.drafts() == []
    code, out, _ = box.cli("status", "--now", days_ago(-1).isoformat())
    assert code == 0 and "Dismiss me" in out and "dismissed" in out
    assert box.drafts() == []


def test_lost_state_a_sent_follow_up_times_the_next_stage(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                                          monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=TWO_STAGES)
    sent(box, "c4@example.com", "Two stages", 3)
    box.run()
    [first] = box.drafts()
    box.seed("Sent", bytes(first))  # the user sent it as it was
    box.delete_drafts()
    lose_state(tmp_path)
    d = by_subject(box.run(now=days_ago(-3)))["Two stages"]
    assert d["status"] == "waiting" and d["stage"] == 2, d  # 4 days after the follow-up, not now
    assert box.drafts() == []
    d = by_subject(box.run(now=days_ago(-5)))["Two stages"]
    assert d["action"] == "appended" and d["stage"] == 2
    [second] = box.drafts()
    assert second["In-Reply-To"] == first["Message-ID"]


def test_status_after_a_rebuild_is_what_it_was(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                               monkeypatch) -> None:
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=TWO_STAGES)
    for mid, subject in [("s1", "Left in Drafts"), ("s2", "Sent, then answered"),
                         ("s3", "Deleted to Trash")]:
        sent(box, f"{mid}@example.com", subject, 3)
    box.run()
    drafts = {m["Subject"]: (uid, m) for uid, m in zip(box.raw("Drafts"), box.drafts(), strict=True)}
    uid, answered = drafts["Re: Sent, then answered"]
    box.seed("Sent", bytes(answered))
    box.delete_drafts([uid])
    box.seed("INBOX", message("late@client.example", sender="bob@client.example", to=box.user,
                              subject="Re: Sent, then answered", date=days_ago(-0.5),
                              reply_to=answered["Message-ID"].strip("<>")))
    to_trash(box, [drafts["Re: Deleted to Trash"][0]])
    later = days_ago(-1)
    box.run(now=later)
    code, before, _ = box.cli("status", "--json", "--now", later.isoformat())
    assert code == 0 and "Sent, then answered" in before and "dismissed" in before
    lose_state(tmp_path)
    box.run(now=later)
    code, after, _ = box.cli("status", "--json", "--now", later.isoformat())
    assert code == 0 and after == before
    assert sorted(m["Subject"] for m in box.drafts()) == ["Re: Left in Drafts"]


def test_marks_found_outside_drafts_sent_and_trash_are_not_believed(box: Box, tmp_path: Path) -> None:
    sent(box, "c5@example.com", "Archived copy", 6)
    box.run()
    [(_, (data, _flags))] = box.raw("Drafts").items()
    box.seed("Archive", data)  # a copy filed elsewhere (a forward, an export): not a dismissal
    to_trash(box)
    box.dovecot.clear_folder(box.user, "Trash")  # emptied: nothing says it was dismissed
    lose_state(tmp_path)
    d = by_subject(box.run(now=days_ago(-1)))["Archived copy"]
    assert d["status"] != "dismissed"


# -- the state damaged -----------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(20000))


def _half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _pages(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(4096 * 3)
        f.write(b"\xa5" * 4096 * 4)


@pytest.mark.parametrize("damage", [_garbage, _half, _pages], ids=["garbage", "half", "pages"])
def test_a_damaged_state_is_set_aside_and_rebuilt_with_one_warning(box: Box, tmp_path: Path,
                                                                   damage) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):  # enough mail that the state spans a few pages
        sent(box, f"d{i}@example.com", f"Damage {i}", 6 if i == 0 else 1)
    box.run()
    assert len(box.drafts()) == 1
    damage(state_file(tmp_path))
    before = state_file(tmp_path).read_bytes()

    code, out, err = box.cli("status")
    assert code == 1 and "internal error" not in err
    assert f"{state_file(tmp_path)}: the state file is damaged" in err
    assert "nudger run --once" in err and len(err.strip().splitlines()) == 1
    assert state_file(tmp_path).read_bytes() == before  # status never renames it
    code, _, err = box.cli("explain", "d0@example.com")
    assert code == 1 and "damaged" in err and "internal error" not in err

    d = by_subject(box.run())["Damage 0"]
    assert box.last_code == 0, box.last_err
    warnings = [line for line in box.last_err.splitlines() if "damaged" in line]
    assert len(warnings) == 1 and "set it aside as state.sqlite3.corrupt-" in warnings[0]
    [aside] = [p for p in (tmp_path / "state").glob("state.sqlite3.corrupt-*")
               if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes() == before  # kept, not deleted
    assert d["status"] == "drafted" and len(box.drafts()) == 1  # rebuilt, no duplicate
    box.run()
    assert "damaged" not in box.last_err and len(box.drafts()) == 1


def test_a_dry_run_on_a_damaged_state_changes_nothing(box: Box, tmp_path: Path) -> None:
    sent(box, "g1@example.com", "Dry", 6)
    box.run()
    _garbage(state_file(tmp_path))
    before = state_file(tmp_path).read_bytes()
    box.run("--dry-run")
    assert box.last_code == 1 and "internal error" not in box.last_err
    assert "the state file is damaged" in box.last_err and "nudger run --once" in box.last_err
    assert not list((tmp_path / "state").glob("*corrupt*"))
    assert state_file(tmp_path).read_bytes() == before


def test_a_state_from_a_newer_nudger_is_refused_with_a_sentence(box: Box, tmp_path: Path) -> None:
    sent(box, "n1@example.com", "Newer", 6)
    box.run()
    with contextlib.closing(sqlite3.connect(state_file(tmp_path))) as conn:
        conn.execute("PRAGMA user_version=9")
    box.run(now=days_ago(-1))
    assert box.last_code == 78
    assert (f"{state_file(tmp_path)}: written by a newer nudger (state schema 9; this nudger knows "
            f"schema {SCHEMA_VERSION} and older)") in box.last_err
    assert "Traceback" not in box.last_err and "internal error" not in box.last_err
    code, _, err = box.cli("status")
    assert code == 78 and "newer nudger" in err
    assert len(box.drafts()) == 1


def test_a_state_without_a_version_is_migrated(box: Box, tmp_path: Path) -> None:
    sent(box, "m1@example.com", "Old state", 6)
    box.run()
    with contextlib.closing(sqlite3.connect(state_file(tmp_path))) as conn:
        conn.execute("PRAGMA user_version=0")  # as every state before versions
    code, out, _ = box.cli("status", "--now", NOW.isoformat())  # read as it is, not migrated
    assert code == 0 and "Old state" in out
    with contextlib.closing(sqlite3.connect(state_file(tmp_path))) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert by_subject(box.run(now=days_ago(-1)))["Old state"]["status"] == "drafted"
    assert box.last_code == 0
    with contextlib.closing(sqlite3.connect(state_file(tmp_path))) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- read-only and full disks (a real tmpfs: root only) --------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                                            "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("needs root and mount(8) for a real read-only or full disk")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def fill(where: Path) -> Path:
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_read_only_state_directory_is_named_with_exit_77(box: Box, tmp_path: Path) -> None:
    sent(box, "r1@example.com", "Read only", 6)
    with tmpfs(tmp_path / "state", "4m") as state_dir:
        box.run()
        remount(state_dir, "ro")
        box.run(now=days_ago(-1))
        assert box.last_code == 77
        assert f"{state_dir}: cannot write the state: read-only file system" in box.last_err
        assert "internal error" not in box.last_err
        code, out, err = box.cli("status", "--now", NOW.isoformat())  # reading still works
        assert code == 0 and "Read only" in out, err
        remount(state_dir, "rw")
        assert sorted(p.name for p in state_dir.iterdir()) == ["lock", "state.sqlite3", "state.sqlite3.checked"]


def test_a_full_disk_writes_no_draft_and_says_so(box: Box, tmp_path: Path) -> None:
    sent(box, "f1@example.com", "Full disk", 1)
    with tmpfs(tmp_path / "state", "1m") as state_dir:
        assert by_subject(box.run())["Full disk"]["status"] == "waiting"
        filler = fill(state_dir)
        box.run(now=days_ago(-5))
        assert box.last_code == 75, box.last_err
        assert "the disk is full" in box.last_err and str(state_dir) in box.last_err
        assert box.drafts() == []
        filler.unlink()
        assert by_subject(box.run(now=days_ago(-5)))["Full disk"]["action"] == "appended"
        assert len(box.drafts()) == 1


def test_the_ledger_row_is_written_before_the_append(tmp_path: Path) -> None:
    """The disk fills while the APPEND travels: the draft on the server still has its row,
    and the next cycle finds it instead of writing it again."""
    from nudger.config.load import parse_config
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State
    from nudger.errors import StateFull
    from nudger.mail.memory import MemoryMailbox

    class FillsTheDisk(MemoryMailbox):
        def append(self, folder, data, flags, when):  # type: ignore[no-untyped-def]
            uid = super().append(folder, data, flags, when)
            self.filler = fill(state_dir)
            return uid

    config = parse_config(config_text(1, "me@example.com", tmp_path / "state").encode(),
                          tmp_path / "config.toml")
    account = config.accounts[0]
    mailbox = FillsTheDisk()
    mailbox.add("Sent", message("o1@example.com", subject="Appending", date=days_ago(6)),
                ("\\Seen",), days_ago(6))
    with tmpfs(tmp_path / "state", "1m") as state_dir:
        state = State.open(state_dir)
        with pytest.raises(StateFull):
            run_cycle(config, account, mailbox, state, NOW)
        state.close()
        mailbox.filler.unlink()
        [draft] = mailbox.messages("Drafts").values()
        state = State.open(state_dir)
        assert any(nudge_id.encode() in draft for nudge_id in state.ledger("test"))
        result = run_cycle(config, account, mailbox, state, NOW)
        state.close()
        assert result.written == [] and len(mailbox.messages("Drafts")) == 1
        assert [d.status for d in result.decisions] == ["drafted"]


def _open_cycle_setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    from nudger.config.load import parse_config
    from nudger.mail.memory import MemoryMailbox

    config = parse_config(config_text(1, "me@example.com", tmp_path / "state").encode(),
                          tmp_path / "config.toml")
    mailbox = MemoryMailbox()
    for i in range(200):  # a state of some pages
        mailbox.add("Sent", message(f"o{i}@example.com", subject=f"Open {i}", body="x" * 2000,
                                    date=days_ago(6 if i == 0 else 1)), ("\\Seen",), days_ago(1))
    return config, config.accounts[0], mailbox


def _answer(mailbox) -> None:  # type: ignore[no-untyped-def]
    mailbox.add("INBOX", message("re-o0@client.example", sender="bob@client.example",
                                 to="me@example.com", subject="Re: Open 0", date=days_ago(0.5),
                                 reply_to="o0@example.com"))


def _set_aside(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "state").glob("state.sqlite3.corrupt-*")
            if not p.name.endswith(("-wal", "-shm"))]


def test_a_state_damaged_while_open_is_set_aside_mid_cycle(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A daemon runs for months: the file may be damaged under it, and the cycle that trips
    over it starts again from an empty state instead of failing every cycle after."""
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    config, account, mailbox = _open_cycle_setup(tmp_path)
    state = State.open(tmp_path / "state")
    assert len(run_cycle(config, account, mailbox, state, NOW).written) == 1
    state.close()
    state = State.open(tmp_path / "state")  # sound when opened...
    state.conn.execute("PRAGMA cache_size=1")  # ...and its pages left the cache long ago
    _pages(state_file(tmp_path))
    _answer(mailbox)
    result = run_cycle(config, account, mailbox, state, NOW)
    state.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "set it aside" in warnings[0]
    assert len(_set_aside(tmp_path)) == 1
    # Rebuilt: its own untouched draft found again, and withdrawn for the reply.
    assert len(result.withdrawn) == 1 and mailbox.messages("Drafts") == {}


def test_a_second_connection_to_a_damaged_state_does_not_set_the_new_one_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon has one connection per account: the first to trip over the damage sets
    the file aside; the other opens the new file instead of renaming it too."""
    from nudger.cycle.cycle import run_cycle
    from nudger.cycle.state import State

    config, account, mailbox = _open_cycle_setup(tmp_path)
    state = State.open(tmp_path / "state")
    run_cycle(config, account, mailbox, state, NOW)
    state.close()
    first, second = State.open(tmp_path / "state"), State.open(tmp_path / "state")
    for s in (first, second):
        s.conn.execute("PRAGMA cache_size=1")
    _pages(state_file(tmp_path))
    _answer(mailbox)
    assert len(run_cycle(config, account, mailbox, first, NOW).withdrawn) == 1
    run_cycle(config, account, mailbox, second, NOW)
    assert second.inode == first.inode == state_file(tmp_path).stat().st_ino  # the new file
    first.close()
    second.close()
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert len(_set_aside(tmp_path)) == 1
