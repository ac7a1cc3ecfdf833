"""Configuration: what a user writes, and what they are told when it is wrong."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from nudger.cli import main
from nudger.config.load import load_config
from nudger.core.durations import Delay, parse_delay, parse_duration
from nudger.errors import EX_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parents[1]

ACCOUNT = """
[accounts.work]
host = "imap.example.com"
username = "me@example.com"
password_env = "X"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def problems(tmp_path: Path, text: str, mode: int = 0o600) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text, mode))
    return info.value.problems


@pytest.mark.parametrize("text,seconds", [
    ("90s", 90), ("5m", 300), ("2h", 7200), ("3d", 259200), ("3 days", 259200),
    ("1 week", 604800), ("1h 30m", 5400), ("36 hours", 129600),
])
def test_calendar_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_delay(text) == Delay(calendar=timedelta(seconds=seconds))


@pytest.mark.parametrize("text,days", [
    ("2 business days", 2), ("1 business day", 1), ("3 working days", 3), ("5bd", 5)])
def test_business_day_durations(text: str, days: int) -> None:
    assert parse_delay(text) == Delay(business_days=days)


@pytest.mark.parametrize("text", ["", "3", "3 dayz", "d3", "three days", "3 days later",
                                  "2 bussiness days", "-3d", "3.5d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_delay(text)


def test_example_config_is_valid_and_mentions_every_key(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml")
    assert [r.name for r in config.rules] == ["clients", "resources", "thanks", "default"]
    assert set(config.templates) >= {"gentle", "informational", "thank_you"}
    text = (ROOT / "config.example.toml").read_text()
    from nudger.config.model import PLACEHOLDERS

    account_keys = ["host", "port", "tls", "username", "password_command", "password_env",
                    "password_file", "password", "identities", "name", "timezone", "lookback",
                    "sent_folder", "drafts_folder", "watch_folders", "ca_file", "timeout",
                    "max_new_drafts", "workdays", "holidays", "quiet_hours", "subject_threading",
                    "return_grace", "recipients", "poll_interval", "state_dir", "match", "after", "stages", "template",
                    "send_after", "save_sent", "at", "accounts"]
    for key in account_keys:
        assert re.search(rf"^#? ?{key} =|\b{key} = ", text, re.M), key
    for placeholder in PLACEHOLDERS:
        assert "{" + placeholder + "}" in text, placeholder


def test_three_mistakes_are_reported_at_once_with_key_paths(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, ACCOUNT + """
timezone = "Europe/Berln"
[[rules]]
name = "one"
after = "3 dayz"
[[rules]]
name = "two"
after = "2d"
tempalte = "gentle"
""")
    code = main(["check-config", str(path)])
    err = capsys.readouterr().err
    assert code == EX_CONFIG
    assert 'config.toml: accounts.work.timezone: "Europe/Berln" is not an IANA time zone' in err
    assert 'config.toml: rules[0].after: "3 dayz" is not a duration (try "3d" or "2 business days")' in err
    assert 'config.toml: rules[1].tempalte: unknown key (did you mean "template"?)' in err
    assert "Traceback" not in err


@pytest.mark.parametrize("section", ["accounts", "templates", "rules", "daemon"])
def test_a_section_that_is_not_a_table_is_a_config_error(tmp_path: Path, section: str,  # type: ignore[no-untyped-def]
                                                          capsys) -> None:
    path = write(tmp_path, f"{section} = 3\n" + ("" if section == "accounts" else ACCOUNT))
    assert main(["check-config", str(path)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert f"config.toml: {section}: expected " in err and "internal error" not in err, err


def test_missing_file_names_the_paths_tried(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NUDGER_CONFIG", str(tmp_path / "env.toml"))
    assert main(["check-config"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert str(tmp_path / "env.toml") in err and str(tmp_path / "xdg/nudger/config.toml") in err
    assert main(["--config", str(tmp_path / "nope.toml"), "check-config"]) == EX_CONFIG
    assert "nope.toml" in capsys.readouterr().err


def _on_path(monkeypatch, tmp_path: Path, *programs: str) -> None:  # type: ignore[no-untyped-def]
    """PATH holds only these (do-nothing) programs, whatever this machine has installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in programs:
        (bin_dir / name).write_text("#!/bin/sh\necho pw\n")
        (bin_dir / name).chmod(0o700)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_check_config_prints_a_summary(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _on_path(monkeypatch, tmp_path, "pass")
    assert main(["check-config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "account work: me@example.com at imap.example.com:993 (implicit)" in out
    assert "2 business days (gentle), then 5 business days" in out
    # Rules are numbered as the error messages name them: rules[0] is the first [[rules]].
    assert "  rules[0] clients: " in out and "  rules[3] default: " in out and "rule 1" not in out


def test_check_config_on_the_unedited_example_names_the_missing_password_program(
        tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _on_path(monkeypatch, tmp_path)  # no `pass` here
    assert main(["check-config", str(ROOT / "config.example.toml")]) == EX_CONFIG
    err = capsys.readouterr().err
    assert err.startswith('nudger: config.example.toml: accounts.work.password_command: program "pass" '
                          "not found on PATH")
    assert "OK" not in err


def test_password_command_given_as_a_path_must_be_an_executable_file(
        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "pw.sh"
    path = write(tmp_path, ACCOUNT.replace('password_env = "X"', f'password_command = "{script} work"'))
    assert main(["check-config", str(path)]) == EX_CONFIG
    assert f'accounts.work.password_command: program "{script}": no such file' in capsys.readouterr().err
    script.write_text("#!/bin/sh\necho pw\n")
    script.chmod(0o600)
    assert main(["check-config", str(path)]) == EX_CONFIG
    assert f'program "{script}" is not executable (run: chmod +x {script})' in capsys.readouterr().err
    script.chmod(0o700)
    assert main(["check-config", str(path)]) == 0


def test_run_names_a_missing_password_program_before_connecting(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                               monkeypatch) -> None:
    _on_path(monkeypatch, tmp_path)
    # 127.0.0.1:1 would refuse the connection (75): the config error comes first.
    text = ACCOUNT.replace("imap.example.com", "127.0.0.1").replace(
        'password_env = "X"', 'password_command = "pass show mail"\nport = 1\ntls = "none"')
    path = write(tmp_path, text)
    assert main(["--config", str(path), "run", "--once"]) == EX_CONFIG
    assert 'accounts.work.password_command: program "pass" not found' in capsys.readouterr().err


def test_time_zone_by_iana_name(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACCOUNT + 'timezone = "America/New_York"\n'))
    assert config.accounts[0].timezone.key == "America/New_York"


def test_not_toml_is_reported_with_its_position(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[accounts.work\nhost=1")
    assert problem.startswith(f"{tmp_path / 'config.toml'}: not valid TOML") and "line 1" in problem


def test_rules_match_recipient_globs_and_subject_regex(tmp_path: Path) -> None:
    from nudger.core.parse import parse_record
    from nudger.core.record import Addr
    from nudger.core.rules import match_rule

    config = load_config(ROOT / "config.example.toml")
    record = parse_record(b"From: me@example.com\r\nTo: x@y.example\r\nSubject: Thanks for today\r\n\r\n",
                          folder="Sent", uid=1)

    def rule_for(to: str, subject: str) -> str:
        r = record.__class__(**{**record.__dict__, "subject": subject})
        found = match_rule(config.rules, "work", r, (Addr("", to),))
        return found.name if found else ""

    assert rule_for("bob@acme.example", "Thanks for today") == "clients"  # first match wins
    assert rule_for("BOB@bigcorp.example".lower(), "Hello") == "clients"
    assert rule_for("ann@else.example", "Here are the slides") == "resources"
    assert rule_for("ann@else.example", "thanks for the call") == "thanks"
    assert rule_for("ann@else.example", "Lunch?") == "default"


def test_rule_match_on_account_name_must_exist(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[[rules]]\nmatch = { account = "home" }\n')
    assert p == 'config.toml: rules[0].match.account: no account named "home"'


def test_bad_subject_regex(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[[rules]]\nmatch = { subject = "(unclosed" }\n')
    assert p.startswith('config.toml: rules[0].match.subject: "(unclosed" is not a regular expression')


def test_unknown_template_placeholder(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[templates.gentle]\nbody = "Hi {firstname}, {my_name}"\n')
    assert p == ('config.toml: templates.gentle.body: unknown placeholder "{firstname}" '
                 '(did you mean "{first_name}"?)')


def test_broken_template_braces(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[templates.gentle]\nbody = "Hi {first_name"\n')
    assert p.startswith("config.toml: templates.gentle.body: broken placeholder")


def test_rule_naming_a_missing_template(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[[rules]]\ntemplate = "nice"\n')
    assert p.startswith('config.toml: rules[0].template: no template "nice"')


def test_stages_as_list_and_as_count(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACCOUNT + """
[[rules]]
name = "a"
after = "2d"
stages = 3
[[rules]]
name = "b"
stages = [{ after = "1 business day" }, { after = "1 week", template = "gentle" }]
"""))
    a, b = config.rules
    assert len(a.stages) == 3 and all(s.after == Delay(calendar=timedelta(days=2)) for s in a.stages)
    assert [s.after for s in b.stages] == [Delay(business_days=1), Delay(calendar=timedelta(days=7))]
    ps = problems(tmp_path, ACCOUNT + "[[rules]]\nstages = 0\n[[rules]]\nstages = [{}]\n")
    assert "config.toml: rules[0].stages: 0 is not between 1 and 10" in ps
    assert "config.toml: rules[1].stages[0].after: missing (required)" in ps


def test_after_beside_a_list_of_stages_is_refused(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + '[[rules]]\nname = "a"\n[[rules]]\nafter = "2d"\n'
                   'stages = [ { after = "1d" }, { after = "3d" } ]\n')
    assert p == ('config.toml: rules[1].after: not used with a list of stages: give each stage '
                 'its own "after" (or write stages = N)')
    config = load_config(write(tmp_path, ACCOUNT + '[[rules]]\nafter = "2d"\nstages = 2\n'))
    assert [s.after for s in config.rules[0].stages] == [Delay(calendar=timedelta(days=2))] * 2


def test_plaintext_only_to_loopback(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + 'tls = "none"\n')
    assert p.startswith('config.toml: accounts.work.tls: "none" sends the password in clear text')
    for host in ("127.0.0.1", "localhost", "::1"):
        text = ACCOUNT.replace("imap.example.com", host) + 'tls = "none"\n'
        assert load_config(write(tmp_path, text)).accounts[0].port == 143


def test_password_command_as_string_or_argv(tmp_path: Path) -> None:
    text = ACCOUNT.replace('password_env = "X"', "password_command = \"pass show 'mail/my work'\"")
    assert load_config(write(tmp_path, text)).accounts[0].password.command == (
        "pass", "show", "mail/my work")
    text = ACCOUNT.replace('password_env = "X"', 'password_command = ["secret-tool", "lookup", "a"]')
    assert load_config(write(tmp_path, text)).accounts[0].password.command[0] == "secret-tool"


def test_each_password_source_is_read(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nudger.app.passwords import read_password

    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\nprintf 'from-command\\nsecond line\\n'\n")
    script.chmod(0o700)
    monkeypatch.setenv("MY_PW", "from-env")
    sources = {
        f'password_file = "{secret}"': "from-file",
        f'password_command = "{script}"': "from-command",
        'password_env = "MY_PW"': "from-env",
        'password = "inline"': "inline",
    }
    for line, expected in sources.items():
        text = ACCOUNT.replace('password_env = "X"', line)
        account = load_config(write(tmp_path, text)).accounts[0]
        assert read_password(account.password, "work") == expected


def test_password_file_readable_by_others_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    path = write(tmp_path, ACCOUNT.replace('password_env = "X"', f'password_file = "{secret}"'))
    assert main(["check-config", str(path)]) == EX_CONFIG
    [p] = capsys.readouterr().err.splitlines()
    assert "accounts.work.password_file" in p and "readable by others" in p and "chmod 600" in p
    assert "hunter2" not in p
    from nudger.app.passwords import read_password

    with pytest.raises(ConfigError, match="readable by others"):  # nor is it read at connect time
        read_password(load_config(path).accounts[0].password, "work")


def test_inline_password_needs_a_private_config_file(tmp_path: Path) -> None:
    text = ACCOUNT.replace('password_env = "X"', 'password = "hunter2"')
    [p] = problems(tmp_path, text, mode=0o644)
    assert p.startswith("config.toml: accounts.work.password: a password in a file others can read")
    assert "hunter2" not in p
    assert load_config(write(tmp_path, text, 0o600)).accounts[0].password.kind == "inline"
    assert "hunter2" not in repr(load_config(write(tmp_path, text, 0o600)))


def test_failing_password_command_says_so_without_its_output(tmp_path: Path) -> None:
    from nudger.app.passwords import read_password
    from nudger.errors import AuthError

    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho hunter2\necho 'gpg: decryption failed' >&2\nexit 2\n")
    script.chmod(0o700)
    account = load_config(write(tmp_path, ACCOUNT.replace(
        'password_env = "X"', f'password_command = "{script}"'))).accounts[0]
    with pytest.raises(AuthError) as info:
        read_password(account.password, "work")
    assert "exited with 2: gpg: decryption failed" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_two_password_sources_and_none(tmp_path: Path) -> None:
    [p] = problems(tmp_path, ACCOUNT + 'password_file = "/x"\n')
    assert p == "config.toml: accounts.work: choose one password source, not password_env and password_file"
    [p] = problems(tmp_path, ACCOUNT.replace('password_env = "X"\n', ""))
    assert "no password source" in p


def test_missing_required_keys_and_no_account(tmp_path: Path) -> None:
    ps = problems(tmp_path, '[accounts.a]\npassword_env = "X"\n')
    assert "config.toml: accounts.a.host: missing (required)" in ps
    assert "config.toml: accounts.a.username: missing (required)" in ps
    [p] = problems(tmp_path, "[daemon]\n")
    assert "no account configured" in p


def test_wrong_types_are_named(tmp_path: Path) -> None:
    ps = problems(tmp_path, ACCOUNT + 'port = "993"\nidentities = "me"\n[daemon]\npoll_interval = 5\n')
    assert 'config.toml: accounts.work.port: expected a port number, got "993" (a string)' in ps
    assert 'config.toml: accounts.work.identities[0]: "me" is not an email address' in ps
    assert "config.toml: daemon.poll_interval: expected a string, got 5 (int)" in ps


def test_state_dir_defaults_to_xdg_state_home(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    assert load_config(write(tmp_path, ACCOUNT)).daemon.state_dir == tmp_path / "st" / "nudger"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config(write(tmp_path, ACCOUNT)).daemon.state_dir == (
        tmp_path / "home" / ".local" / "state" / "nudger")


def test_state_dir_defaults_to_systemds_state_directory(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # nudger@work.service with StateDirectory=nudger/%i: each instance its own directory.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/nudger/work")
    assert load_config(write(tmp_path, ACCOUNT)).daemon.state_dir == Path("/var/lib/nudger/work")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/nudger/work:/var/lib/other")  # several: the first
    assert load_config(write(tmp_path, ACCOUNT)).daemon.state_dir == Path("/var/lib/nudger/work")
    # The unedited example sets none, so the service's directory is used ...
    assert load_config(ROOT / "config.example.toml").daemon.state_dir == Path("/var/lib/nudger/work")
    # ... and a state_dir the user writes still wins.
    text = ACCOUNT + f'[daemon]\nstate_dir = "{tmp_path / "mine"}"\n'
    assert load_config(write(tmp_path, text)).daemon.state_dir == tmp_path / "mine"


def test_a_password_source_is_not_needed_to_load_the_config(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # What status and explain load: they never connect, so a missing program, variable or
    # file (a service's credential) does not stop them.
    _on_path(monkeypatch, tmp_path)
    monkeypatch.delenv("X", raising=False)
    for line in ('password_command = "pass show mail"', 'password_env = "X"',
                 f'password_file = "{tmp_path / "absent"}"'):
        load_config(write(tmp_path, ACCOUNT.replace('password_env = "X"', line)))


def test_timing_keys_are_validated(tmp_path: Path) -> None:
    ps = problems(tmp_path, ACCOUNT + 'workdays = ["mon", "fry"]\nholidays = "XX-YY"\n'
                  'quiet_hours = "25:00-08:00"\nreturn_grace = "soon"\n[[rules]]\nrecipients = "some"\n')
    assert 'config.toml: accounts.work.workdays[1]: "fry" is not a weekday (mon, tue, ... sun)' in ps
    assert any(p.startswith('config.toml: accounts.work.holidays: "XX-YY" is not a known country') for p in ps)
    assert 'config.toml: accounts.work.quiet_hours: "25:00-08:00" (a string) is not a time range like "20:00-08:00"' in ps
    assert 'config.toml: accounts.work.return_grace: "soon" is not a duration (try "1 business day" or "2d")' in ps
    assert 'config.toml: rules[0].recipients: "some" is not "all" or "non-repliers"' in ps
    ok = load_config(write(tmp_path, ACCOUNT + 'workdays = ["sun", "mon", "tue", "wed", "thu"]\n'
                           'holidays = "IL"\nquiet_hours = "21:30-07:15"\n')).accounts[0]
    assert ok.workdays == frozenset({6, 0, 1, 2, 3}) and ok.holidays == "IL"
    assert str(ok.quiet_hours) == "(datetime.time(21, 30), datetime.time(7, 15))"


def test_each_system_instance_keeps_its_own_state(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # What systemd gives nudger@NAME.service: its Environment= lines, and StateDirectory=
    # as $STATE_DIRECTORY under /var/lib. The unedited example must not override it.
    unit = (ROOT / "systemd" / "nudger@.service").read_text().splitlines()
    [state] = [line.split("=", 1)[1] for line in unit if line.startswith("StateDirectory=")]
    seen = set()
    for instance in ("work", "home"):
        env = dict(line.split("=", 1)[1].split("=", 1) for line in unit if line.startswith("Environment="))
        env["STATE_DIRECTORY"] = "/var/lib/" + state.replace("%i", instance)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        state_dir = load_config(ROOT / "config.example.toml").daemon.state_dir
        assert state_dir == Path("/var/lib/nudger") / instance
        seen.add(state_dir)
    assert len(seen) == 2


@pytest.mark.parametrize("key,value,where", [
    ("lookback", "0d", "accounts.work.lookback"), ("lookback", "0 days", "accounts.work.lookback"),
    ("timeout", "0s", "accounts.work.timeout"), ("after", "0d", "rules[0].after"),
    ("after", "0 business days", "rules[0].after"), ("send_after", "0h", "rules[0].send_after"),
])
def test_a_duration_of_no_time_is_refused_not_taken_for_the_default(
        tmp_path: Path, capsys, key: str, value: str, where: str) -> None:  # type: ignore[no-untyped-def]
    text = ACCOUNT + (f'{key} = "{value}"\n[[rules]]\n' if key in ("lookback", "timeout")
                      else f'[[rules]]\n{key} = "{value}"\n')
    code = main(["check-config", str(write(tmp_path, text))])
    err = capsys.readouterr().err
    assert code == EX_CONFIG
    assert f'config.toml: {where}: "{value}" is no time at all: it must be above zero (try ' in err


def test_a_stage_of_no_time_and_other_non_durations_are_refused(tmp_path: Path) -> None:
    ps = problems(tmp_path, ACCOUNT + 'lookback = ""\ntimeout = "-30s"\n[[rules]]\n'
                  'stages = [{after = "0d"}]\n[daemon]\npoll_interval = "0s"\n')
    assert 'config.toml: accounts.work.lookback: "" is not a duration (try "30d" or "8 weeks")' in ps
    assert 'config.toml: accounts.work.timeout: "-30s" is not a duration (try "30s" or "2m")' in ps
    assert any(p.startswith('config.toml: rules[0].stages[0].after: "0d" is no time at all') for p in ps)
    assert "config.toml: daemon.poll_interval: must be at least 10s, to be kind to the server" in ps
    # Zero keeps its meaning where it has one: no grace after a return, a thank-you at the end.
    config = load_config(write(tmp_path, ACCOUNT + 'return_grace = "0d"\n[meetings]\nafter = "0h"\n'))
    assert config.accounts[0].return_grace == Delay() and config.meetings.after == timedelta(0)
