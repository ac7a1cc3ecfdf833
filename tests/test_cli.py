"""The command line as a newcomer meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nudger import __version__
from nudger.cli import main

ROOT = Path(__file__).resolve().parents[1]


# A Sunday night, a Monday night, the night clocks go forward in Berlin, New Year's Eve,
# a Friday afternoon: the demo dates its mailbox from "now", so it must read alike on each.
DEMO_DATES = ["2026-12-06T23:30:00+01:00", "2026-12-07T22:00:00+01:00", "2027-03-28T01:30:00+01:00",
              "2026-12-31T23:59:00+01:00", "2027-01-08T15:00:00+01:00"]


@pytest.mark.parametrize("now", [*DEMO_DATES, None])
def test_demo_shows_drafts_and_reasons_without_any_setup(tmp_path: Path, now: str | None) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    args = ["--now", now] if now else []  # (None: the real clock, whatever day it is)
    out = subprocess.run([sys.executable, "-m", "nudger", "demo", *args], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "wrote 4 drafts" in out.stdout
    assert "replied by dan@law.example" in out.stdout and "(Archive)" in out.stdout
    assert "every recipient bounced (frank@nowhere.example)" in out.stdout
    shown = out.stdout.split("as your mail client will show it:", 1)[1]
    assert "Subject: Re: Proposal for the Q1 rollout" in shown and "Hi Bob," in shown
    assert "Angebot für Ihre Anfrage – Übersicht" in out.stdout
    thanks = out.stdout.split("The thank-you after Bob's workshop", 1)[1]
    assert "Subject: Re: Q1 rollout workshop" in thanks and "Cc: Lena Fischer" in thanks
    assert "Thank you for taking the time to meet." in thanks and "elbe@" not in thanks
    assert "Running the cycle again writes 0 more" in out.stdout
    assert not (tmp_path / ".local").exists()  # the demo leaves nothing behind


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nudger: argument COMMAND: invalid choice") and "Traceback" not in err
    assert main(["run", "--now", "tuesday", "--once"]) in (2, 78)


def test_bad_now_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[accounts.a]\nhost = "h"\nusername = "u@x.org"\npassword_env = "P"\n')
    assert main(["--config", str(cfg), "run", "--once", "--now", "tuesday"]) == 2
    assert "--now: \"tuesday\" is not an ISO-8601 time" in capsys.readouterr().err


def test_internal_errors_are_one_line_unless_debug(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import nudger.app.demo

    def boom(as_json: bool = False, now: object = None) -> int:
        raise RuntimeError("kaputt")

    monkeypatch.setattr(nudger.app.demo, "run_demo", boom)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaputt" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "demo"])


@pytest.mark.imap
def test_status_and_explain_need_no_password(dovecot, imap_user, tmp_path, capsys,  # type: ignore[no-untyped-def]
                                             monkeypatch) -> None:
    from support.harness import make_box
    from support.mail import NOW, days_ago, message

    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    box.seed("Sent", message("np1@example.com", sender=box.user, subject="No password", date=days_ago(1)))
    box.run()
    assert box.last_code == 0
    # Then the password's program goes missing, its file (a service's credential) is absent
    # or its variable unset: status and explain read the state only, so they still answer.
    monkeypatch.delenv("NUDGER_TEST_PASSWORD")
    now = ["--now", NOW.isoformat()]
    for source in ('password_command = "no-such-password-program show mail"',
                   f'password_file = "{tmp_path / "absent"}"', 'password_env = "UNSET_PW"'):
        box.config.write_text(box.config.read_text().replace(
            next(line for line in box.config.read_text().splitlines() if line.startswith("password_")),
            source))
        code, out, err = box.cli("status", *now)
        assert code == 0 and "No password" in out, err
        code, out, err = box.cli("explain", "np1@example.com", *now)
        assert code == 0 and "Rule: default" in out, err
    code, _, err = box.cli("run", "--once", *now)
    assert code == 78 and "accounts.test.password_env: $UNSET_PW is not set or empty" in err



@pytest.mark.imap
def test_status_shows_a_subject_with_brackets_as_it_was_written(  # type: ignore[no-untyped-def]
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:
    # Brackets are the table library's markup: "[/]" would stop `status` (a markup error),
    # "[bold red]" would restyle the line and vanish.
    from support.harness import make_box
    from support.mail import NOW, days_ago, message

    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    subject = "Q3 [/] numbers [bold red]now"
    box.seed("Sent", message("br1@example.com", sender=box.user, subject=subject, date=days_ago(1)))
    box.run()
    assert box.last_code == 0, box.last_err
    code, out, err = box.cli("status", "--now", NOW.isoformat())
    assert code == 0, err
    assert subject in out

@pytest.mark.imap
def test_reload_with_a_missing_password_program_keeps_the_running_config(  # type: ignore[no-untyped-def]
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:
    import signal

    from test_service import Daemon

    from support.harness import make_box

    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)
    daemon = Daemon(box, tmp_path)
    try:
        daemon.wait_for("READY=1")
        box.config.write_text(box.config.read_text().replace(
            'password_env = "NUDGER_TEST_PASSWORD"', 'password_command = "no-such-password-program"'))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log('accounts.test.password_command: program "no-such-password-program" not found')
        daemon.wait_log("keeping the running configuration")
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
