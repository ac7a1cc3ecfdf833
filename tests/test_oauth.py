"""Signing in with OAuth2: `nudger auth` by device code and by browser, against a fake
authorization server (tests/support/oauth_server.py) whose tokens a private Dovecot
checks by introspection; then real cycles with them, refreshes, and a revoked grant."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import private_server

from support.dovecot import Dovecot
from support.harness import Box
from support.mail import NOW, days_ago, message
from support.oauth_server import FakeOAuth
from support.smtpd import SmtpServer

pytestmark = pytest.mark.imap


@pytest.fixture(scope="session")
def idp() -> Iterator[FakeOAuth]:
    server = FakeOAuth()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(idp: FakeOAuth) -> Iterator[Dovecot]:
    with private_server(20, oauth2_url=idp.url) as server:
        yield server


@pytest.fixture
def fake(idp: FakeOAuth) -> Iterator[FakeOAuth]:
    """The shared server, with this test's settings (undone afterwards)."""
    yield idp
    idp.expires_in, idp.rotate, idp.device_script, idp.token_status = 3600, True, [], 200
    idp.client_secret = ""
    idp.log.clear()


def write_config(path: Path, dovecot: Dovecot, idp: FakeOAuth, user: str, *,
                 sasl: str = "xoauth2", extra: str = "") -> Path:
    path.write_text(f"""
[daemon]
state_dir = "{path.parent / 'state'}"

[accounts.work]
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "{user}"
auth = "oauth2"
name = "Mia Example"
timezone = "Europe/Berlin"

[accounts.work.oauth2]
provider = "custom"
client_id = "nudger-test"
authorize_url = "{idp.url}/authorize"
token_url = "{idp.url}/token"
device_authorization_url = "{idp.url}/device"
scopes = ["imap", "offline_access"]
sasl = "{sasl}"
{extra}
[[rules]]
name = "default"
after = "3 business days"
template = "gentle"
""")
    return path


@pytest.fixture
def box(oauth_dovecot: Dovecot, fake: FakeOAuth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Box:
    user = oauth_dovecot.take_user()
    fake.user = user
    return Box(oauth_dovecot, user, write_config(tmp_path / "config.toml", oauth_dovecot, fake, user), capsys)


def sent(box: Box, mid: str, subject: str, days: float = 6) -> None:
    date = days_ago(days)
    box.seed("Sent", message(mid, sender=f"Mia Example <{box.user}>", to="Bob <bob@client.example>",
                             subject=subject, date=date), when=date)


def device_sign_in(box: Box, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str, list[float]]:
    """`nudger auth work --device`, in this process; the polling intervals it waited."""
    from nudger.oauth import flows

    waited: list[float] = []
    monkeypatch.setattr(flows, "_wait", waited.append)
    code, out, err = box.cli("auth", "work", "--device")
    return code, out, err, waited


def token_file(box: Box) -> Path:
    return box.config.parent / "state" / "tokens" / "work.json"


def never_leaks(fake: FakeOAuth, *texts: str) -> None:
    for value in fake.issued:
        for text in texts:
            assert value not in text, "a token or code appeared in the output"


# -- signing in -----------------------------------------------------------------------------


def test_device_flow_signs_in_honours_slow_down_and_a_cycle_writes_drafts(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    sent(box, "o1@example.com", "Quarterly plan")
    fake.device_script = ["authorization_pending", "slow_down", "authorization_pending"]
    code, out, err, waited = device_sign_in(box, monkeypatch)
    assert code == 0, err
    assert f"open {fake.url}/devicelogin" in out and "and enter the code " in out
    assert "work: signed in" in out
    assert waited == [1, 1, 6, 6]  # slow_down adds 5 seconds to every later poll
    path = token_file(box)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    box.run()
    assert box.last_code == 0, box.last_err
    assert [d["Subject"] for d in box.drafts()] == ["Re: Quarterly plan"]
    never_leaks(fake, out, err, box.last_err)



def test_the_code_a_provider_hands_out_is_shown_without_its_control_characters(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    # A hostile (or broken) provider's code must not retitle or clear the user's terminal.
    fake.user_code = "WDJB-MJHT\x1b]0;owned\x07\x1b[2J"
    code, out, err, _ = device_sign_in(box, monkeypatch)
    assert code == 0, err
    assert "and enter the code WDJB-MJHT\\x1b]0;owned\\x07\\x1b[2J\n" in out
    assert "\x1b" not in out + err and "\x07" not in out + err


def _start_auth(box: Box, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`nudger auth work --browser --no-browser ...` as its user runs it; the address it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(box.config), "auth",
                             "work", "--browser", "--no-browser", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("http"):
            return proc, line.strip()
    raise AssertionError(f"no address printed: {proc.communicate()}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _redirected(url: str) -> str:
    """Where the provider sends the browser after the user signed in."""
    try:
        urllib.request.build_opener(_NoRedirect).open(url)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        return str(exc.headers["Location"])
    raise AssertionError("the authorize endpoint did not redirect")


def test_browser_flow_by_the_loopback_redirect_then_drafts(box: Box, fake: FakeOAuth) -> None:
    from support.dovecot import free_port

    sent(box, "o2@example.com", "Venue booking")
    port = free_port()
    proc, url = _start_auth(box, "--port", str(port))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and query["redirect_uri"] == f"http://127.0.0.1:{port}/"
    with urllib.request.urlopen(url, timeout=10) as page:  # the browser follows the redirect home
        assert b"signed in" in page.read()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "work: signed in" in out
    box.run()
    assert box.last_code == 0, box.last_err
    assert [d["Subject"] for d in box.drafts()] == ["Re: Venue booking"]
    never_leaks(fake, out, err, box.last_err)


def test_browser_flow_with_the_redirected_address_pasted(box: Box, fake: FakeOAuth) -> None:
    proc, url = _start_auth(box)
    out, err = proc.communicate(_redirected(url) + "\n", timeout=20)
    assert proc.returncode == 0, err
    assert token_file(box).exists()
    box.run()
    assert box.last_code == 0, box.last_err


def test_a_redirect_with_another_state_is_refused_and_nothing_kept(box: Box, fake: FakeOAuth) -> None:
    proc, url = _start_auth(box)
    forged = _redirected(url).replace("state=", "state=x")
    out, err = proc.communicate(forged + "\n", timeout=20)
    assert proc.returncode == 77
    assert "work: refused a sign-in answer that is not the one nudger asked for" in err
    assert not token_file(box).exists()


def _signs_in_by_the_redirect(box: Box, proc: subprocess.Popen[str], real: str) -> None:
    assert proc.poll() is None  # still waiting
    with urllib.request.urlopen(real, timeout=5) as page:
        assert b"signed in" in page.read()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "work: signed in" in out and token_file(box).exists()


def test_a_silent_client_on_the_loopback_does_not_hold_up_the_sign_in(box: Box, fake: FakeOAuth) -> None:
    import socket

    from support.dovecot import free_port

    port = free_port()
    proc, url = _start_auth(box, "--port", str(port))
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # connects, says nothing
        _signs_in_by_the_redirect(box, proc, _redirected(url))


def test_stray_requests_to_the_loopback_are_answered_and_the_sign_in_goes_on(
        box: Box, fake: FakeOAuth) -> None:
    """A favicon, a redirect with another state (a stale tab, a forgery): answered 404 and
    400, nothing kept from them; the real redirect after them signs in."""
    from support.dovecot import free_port

    port = free_port()
    proc, url = _start_auth(box, "--port", str(port))
    real = _redirected(url)
    for stray, status in ((f"http://127.0.0.1:{port}/favicon.ico", 404),
                          (real.replace("state=", "state=x"), 400)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stray, timeout=5)
        assert refused.value.code == status
    assert not token_file(box).exists()
    _signs_in_by_the_redirect(box, proc, real)


def test_run_before_signing_in_says_to_run_auth(box: Box) -> None:
    box.run()
    assert box.last_code == 77
    assert "work: not signed in yet; run: nudger auth work" in box.last_err


# -- tokens in use --------------------------------------------------------------------------


def test_a_token_near_expiry_is_refreshed_before_login_and_the_rotated_one_kept(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    assert device_sign_in(box, monkeypatch)[0] == 0
    kept = json.loads(token_file(box).read_text())
    kept["expires_at"] = time.time() + 60  # 59 minutes later: within the 5 nudger refreshes ahead
    token_file(box).write_text(json.dumps(kept))
    first = token_file(box).read_text()
    sent(box, "o3@example.com", "Contract")
    box.run()
    assert box.last_code == 0, box.last_err
    assert fake.log.count("refresh_token") == 1
    assert token_file(box).read_text() != first  # the rotated refresh token was saved
    box.run()  # and it is the one used next (the old one is spent)
    assert box.last_code == 0, box.last_err
    assert "auth failed" not in _logged(box, "Login: ", 2)  # never a login with the stale token


def _log_of(box: Box) -> str:
    return "\n".join(line for line in box.dovecot.log_path.read_text().splitlines() if box.user in line)


def _logged(box: Box, text: str, count: int = 1) -> str:
    """Dovecot's log of this user once ``text`` is in it ``count`` times (its log process
    writes a moment after the login), or as it is after 10 s."""
    deadline = time.monotonic() + 10
    while (log := _log_of(box)).count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def test_oauthbearer_and_check_say_what_they_found(box: Box, fake: FakeOAuth,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(box.config, box.dovecot, fake, box.user, sasl="oauthbearer")
    assert device_sign_in(box, monkeypatch)[0] == 0
    fake.rotate = False  # as Google: a refresh brings no new refresh token; the kept one stays
    code, out, err = box.cli("auth", "work", "--check")
    assert code == 0, err
    assert fake.log.count("refresh_token") == 1
    assert "work: the sign-in is alive" in out
    assert f"work: logged in to 127.0.0.1:{box.dovecot.port} as {box.user} (OAUTHBEARER)" in out
    assert "method=OAUTHBEARER" in _logged(box, "method=OAUTHBEARER")
    code, out, err = box.cli("auth", "work", "--check")  # the kept refresh token still works
    assert code == 0, err
    never_leaks(fake, out, err)


def test_a_revoked_grant_exits_77_with_the_sentence(box: Box, fake: FakeOAuth,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert device_sign_in(box, monkeypatch)[0] == 0
    fake.revoke(box.user)
    fake.expire_access()
    box.run()
    assert box.last_code == 77
    assert ("work: the sign-in has ended: the grant was revoked or has expired (AADSTS70000); "
            "run: nudger auth work") in box.last_err
    code, out, err = box.cli("auth", "work", "--check")
    assert code == 77 and "run: nudger auth work" in err
    never_leaks(fake, box.last_err, err)


def test_signed_in_as_someone_else_is_refused_after_one_fresh_try(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.user = box.dovecot.take_user()  # the browser was signed in to another account
    assert device_sign_in(box, monkeypatch)[0] == 0
    box.run()
    assert box.last_code == 77
    assert (f"work (127.0.0.1:{box.dovecot.port}): the server refused the access token for "
            f"{box.user}, also a fresh one; check that accounts.work.username is the account "
            "you signed in with, then run: nudger auth work") in box.last_err
    assert fake.log.count("refresh_token") == 1  # once, not in a loop


def test_the_client_secret_comes_from_its_command_and_a_wrong_one_is_named(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.client_secret = "app-secret-7f3a"
    write_config(box.config, box.dovecot, fake, box.user,
                 extra='client_secret_command = ["echo", "app-secret-7f3a"]')
    code, out, err, _ = device_sign_in(box, monkeypatch)
    assert code == 0, err
    box.run()
    assert box.last_code == 0, box.last_err
    fake.client_secret = "rotated-by-the-admin"
    code, out, err = box.cli("auth", "work", "--check")
    assert code == 77, err
    assert ("work: the provider refused nudger's app (invalid_client); check "
            "accounts.work.oauth2.client_id and client_secret_command") in err
    for text in (out, err, box.last_err):
        assert "app-secret-7f3a" not in text
    never_leaks(fake, out, err, box.last_err)


def test_a_token_endpoint_that_is_down_is_temporary(box: Box, fake: FakeOAuth,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert device_sign_in(box, monkeypatch)[0] == 0
    fake.expire_access()
    fake.token_status = 503
    box.run()
    assert box.last_code == 75
    assert "work: refreshing the access token: 127.0.0.1:" in box.last_err
    assert "answered 503" in box.last_err


# -- the service ----------------------------------------------------------------------------


def test_service_refreshes_pauses_a_dead_grant_alone_and_resumes_after_auth(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = box.dovecot.take_user()
    box.config.write_text(box.config.read_text().replace("[[rules]]", f"""
[accounts.home]
host = "127.0.0.1"
port = {box.dovecot.port}
tls = "none"
username = "{home}"
password_env = "HOME_PASSWORD"
timezone = "Europe/Berlin"

[[rules]]"""))
    home_box = Box(box.dovecot, home, box.config, box.capsys)
    assert device_sign_in(box, monkeypatch)[0] == 0
    sent(box, "s1@example.com", "Work one")
    sent(home_box, "h1@example.com", "Home one")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nudger", "--config", str(box.config), "run",
                                 "--now", NOW.isoformat()], stdout=log, stderr=log,
                                env={**os.environ, "HOME_PASSWORD": "secret", "JOURNAL_STREAM": "1:1"})
    try:
        _wait_log(log_path, "ready:", "for 'Work one'", "for 'Home one'")
        # The access token expires under the running service: its next login is refused
        # once, refreshed, and the cycle goes through.
        fake.expire_access()
        proc.send_signal(signal.SIGHUP)
        _wait_log(log_path, "reloading the configuration")
        _wait_log(log_path, "cycle done: work", after="reloading the configuration")
        assert "cycle failed" not in log_path.read_text() and fake.log.count("refresh_token") == 1
        # Revoked: that account pauses, the other goes on.
        fake.revoke(box.user)
        fake.expire_access()
        proc.send_signal(signal.SIGHUP)
        _wait_log(log_path, "work: the sign-in has ended", "this account is paused until then")
        sent(home_box, "h2@example.com", "Home two")
        home_box.seed("INBOX", message("wake@example.com", sender="x@client.example", to=home))
        _wait_log(log_path, "cycle done: home", after="this account is paused")
        assert sorted(d["Subject"] for d in home_box.drafts()) == ["Re: Home one", "Re: Home two"]
        # Signed in again: picked up without a restart.
        sent(box, "s2@example.com", "Work two")
        assert device_sign_in(box, monkeypatch)[0] == 0
        _wait_log(log_path, "work: signed in again; resuming")
        _wait_log(log_path, "cycle done: work", after="resuming")
        assert sorted(d["Subject"] for d in box.drafts()) == ["Re: Work one", "Re: Work two"]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    never_leaks(fake, log_path.read_text())


def _wait_log(path: Path, *texts: str, after: str = "", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        tail = text.rsplit(after, 1)[1] if after and after in text else ("" if after else text)
        if all(t in tail for t in texts):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {texts!r} in the log:\n{path.read_text(errors='replace')}")


# -- sending with the same sign-in ----------------------------------------------------------


def test_a_follow_up_is_sent_with_the_accounts_tokens_by_xoauth2(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An OAuth2 account that lets nudger send (send_after) logs in to SMTP with its access
    token (AUTH XOAUTH2), the one the identity provider holds live: no password anywhere."""
    smtp = SmtpServer(tmp_path / "smtp", {})
    smtp.handler.check_token = lambda user, token: (
        token in fake.access and fake.access[token][0] == user and fake.access[token][2] > time.monotonic())
    try:
        write_config(box.config, box.dovecot, fake, box.user, extra=f"""
[accounts.work.smtp]
host = "127.0.0.1"
port = {smtp.port}
tls = "starttls"
ca_file = "{smtp.cert}"

[[rules]]
name = "send"
after = "3 business days"
send_after = "1 day"
""")
        sent(box, "o1@example.com", "Quarterly plan")
        code, out, err, _ = device_sign_in(box, monkeypatch)
        assert code == 0, err
        box.run()
        assert box.last_code == 0, box.last_err
        [draft] = box.drafts()
        fake.expire_access()  # an hour later: the token nudger holds is refused, then refreshed
        box.run(now=NOW + timedelta(days=3, hours=1))  # Monday 11:00 in Berlin
        assert box.last_code == 0, box.last_err
        [got] = smtp.received
        assert got.login == box.user and got.rcpt_tos == ["bob@client.example"]
        assert got.message["Message-ID"] == draft["Message-ID"] and box.drafts() == []
        never_leaks(fake, out, err, box.last_err)
    finally:
        smtp.stop()


def test_cycles_that_send_nothing_do_not_read_the_client_secret_for_smtp(
        box: Box, fake: FakeOAuth, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The client secret is read when connecting: for the IMAP sign-in each run, and for
    SMTP only when a follow-up is sent, not at every poll."""
    reads = tmp_path / "secret-reads"
    fake.client_secret = "app-secret-7f3a"
    write_config(box.config, box.dovecot, fake, box.user, extra=f"""
client_secret_command = ["sh", "-c", "echo read >> '{reads}'; echo app-secret-7f3a"]

[accounts.work.smtp]
host = "127.0.0.1"
port = 9
tls = "none"
""")
    sent(box, "q1@example.com", "Nothing to send")
    code, _, err, _ = device_sign_in(box, monkeypatch)
    assert code == 0, err
    reads.unlink()  # the sign-in's own read
    for day in range(3):
        box.run(now=NOW + timedelta(days=day))
        assert box.last_code == 0, box.last_err
    assert [d["Subject"] for d in box.drafts()] == ["Re: Nothing to send"]
    assert reads.read_text().splitlines() == ["read"] * 3  # the three IMAP sign-ins alone
