"""A private Dovecot on a loopback port, in a temporary directory, for tests and benchmarks.

Started with ``dovecot -F`` (foreground) and stopped by its PID. The facts it relies on
were measured on Debian 12 / Dovecot 2.3 (see shared/notes/dovecot.md).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

SPECIAL_FOLDERS = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash",
                   "Archive": "\\Archive", "Junk": "\\Junk"}
WEAK_CAPABILITY = "IMAP4rev1 LITERAL+ SASL-IR ID IDLE UIDPLUS MOVE CHILDREN NAMESPACE UNSELECT"


def find_dovecot() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as this lasts: bound, never
    listening (a port merely free now may be taken meanwhile, by a server of another test
    or any program)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def free_port(besides: int = 0) -> int:
    """A loopback port free now, other than ``besides`` (two asks in a row may be
    answered the same port: it is free again as soon as the first socket closes)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != besides:
            return port


class Dovecot:
    """One private server. ``add_user`` gives each test its own empty mailbox."""

    def __init__(self, binary: str, *, folders: dict[str, str] | None = None,
                 capability: str | None = None, root: Path | None = None, tls: bool = False,
                 max_connections: int = 100, cert_names: str = "DNS:localhost,IP:127.0.0.1",
                 auth_mechanisms: str = "plain login", oauth2_url: str | None = None):
        self.binary = binary
        self.max_connections = max_connections
        self.dir = Path(root or tempfile.mkdtemp(prefix="nudger-dovecot-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # the auth worker runs as Dovecot's user and must read users
        self.port = free_port()
        self.folders = folders if folders is not None else SPECIAL_FOLDERS
        self.capability = capability
        self.cert_names, self.auth_mechanisms = cert_names, auth_mechanisms
        # Bearer tokens (XOAUTH2, OAUTHBEARER) checked against an OAuth2 server's
        # /introspect (tests/support/oauth_server.py); passwords keep working beside them.
        self.oauth2_url = oauth2_url
        if oauth2_url:
            self.auth_mechanisms += " xoauth2 oauthbearer"
        self.tls = tls
        self.tls_port = free_port(besides=self.port) if tls else 0
        self.process: subprocess.Popen[bytes] | None = None
        self.users: dict[str, str] = {}
        self.free_users: list[str] = []  # made by pool(), handed out by take_user()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.uid, self.gid = nobody.pw_uid, nobody.pw_gid  # mail processes must not be root
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()
        for sub in ("run", "state", "log", "home"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "home").chmod(0o755)
        (self.dir / "users").write_text("")
        if tls:
            self._make_certificate()
        if oauth2_url:
            (self.dir / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {oauth2_url}/introspect\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n")
        (self.dir / "dovecot.conf").write_text(self._config())

    @property
    def cert_path(self) -> Path:
        return self.dir / "cert.pem"

    def _make_certificate(self) -> None:
        """A self-signed certificate for ``cert_names`` (localhost and 127.0.0.1 unless
        told); clients trust it as their CA."""
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", f"subjectAltName={self.cert_names}",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.cert_path)],
            check=True, capture_output=True)
        (self.dir / "key.pem").chmod(0o644)  # read by Dovecot's config parser as root

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "dovecot.log"

    def _config(self) -> str:
        mailboxes = "\n".join(
            f'  mailbox "{name}" {{\n    special_use = {flag}\n    auto = subscribe\n  }}'
            if flag else f'  mailbox "{name}" {{\n    auto = subscribe\n  }}'
            for name, flag in self.folders.items())
        lines = [
            f"base_dir = {self.dir}/run",
            f"state_dir = {self.dir}/state",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            f"instance_name = nudger-test-{self.port}",
            "protocols = imap",
            "listen = 127.0.0.1",
            "first_valid_uid = 1",
            "first_valid_gid = 1",
            "mail_location = maildir:~/Maildir",
            "disable_plaintext_auth = no",
            f"auth_mechanisms = {self.auth_mechanisms}",
            *(["ssl = yes", f"ssl_cert = <{self.cert_path}", f"ssl_key = <{self.dir}/key.pem"]
              if self.tls else ["ssl = no"]),
            f"mail_max_userip_connections = {self.max_connections}",
            # A refused token is answered at once: no failure delay (2 s), and no per-IP
            # penalty (2 s, doubling up to 15 s, for every later login from 127.0.0.1),
            # which the auth process skips when it cannot reach anvil's penalty socket.
            *([f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
               f"  args = {self.dir}/oauth2.conf.ext\n}}", "auth_failure_delay = 0",
               "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}"]
              if self.oauth2_url else []),
            f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {self.dir}/users\n}}",
            f"userdb {{\n  driver = static\n  args = uid={self.uid} gid={self.gid} home={self.dir}/home/%u\n}}",
            f"namespace inbox {{\n  inbox = yes\n  separator = /\n{mailboxes}\n}}",
            "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n"
            f"    port = {self.port}\n  }}\n  inet_listener imaps {{\n"
            + (f"    address = 127.0.0.1\n    port = {self.tls_port}\n" if self.tls else "    port = 0\n")
            + "  }\n"
            + ("  chroot =\n" if os.geteuid() != 0 else "") + "}",
        ]
        if os.geteuid() != 0:
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = user
            lines += [f"default_login_user = {user}", f"default_internal_user = {user}",
                      f"default_internal_group = {group}", "service anvil {\n  chroot =\n}"]
        if self.capability:
            lines.append(f"imap_capability = {self.capability}")
        return "\n".join(lines) + "\n"

    def add_user(self, name: str, password: str = "secret") -> str:
        """Add a mailbox. Dovecot notices a changed users file by its mtime, in whole
        seconds: add users before ``start`` (or use ``pool``) rather than while running."""
        self.users[name] = password
        home = self.dir / "home" / name
        home.mkdir(exist_ok=True)
        os.chown(home, self.uid, self.gid) if os.geteuid() == 0 else None
        with open(self.dir / "users", "a", encoding="utf-8") as f:
            f.write(f"{name}:{{PLAIN}}{password}::::::\n")
        return name

    def pool(self, count: int, prefix: str = "user") -> list[str]:
        users = [self.add_user(f"{prefix}{i}@example.com") for i in range(1, count + 1)]
        self.free_users += users
        return users

    def take_user(self) -> str:
        """An unused, empty mailbox (from the pool made before start)."""
        return self.free_users.pop(0)

    def clear_folder(self, user: str, folder: str, uids: list[int] | None = None) -> None:
        """Delete messages (all, or these UIDs) the way a user's client does."""
        client = self.client(user)
        try:
            client.select_folder(folder)
            targets = uids or client.search(["ALL"])
            if targets:
                client.delete_messages(targets)
                client.expunge()
        finally:
            client.logout()

    def start(self, timeout: float = 15.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "log" / "stderr.log", "wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}: "
                                   + (self.dir / "log" / "stderr.log").read_text()[-2000:]
                                   + (self.log_path.read_text()[-2000:] if self.log_path.exists() else ""))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"* OK"):  # not just a connect: wait for the greeting
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sessions(self, user: str) -> list[dict[str, int]]:
        """Per-session transfer figures Dovecot logs at logout: in, out, hdr_count, body_count..."""
        if not self.log_path.exists():
            return []
        result = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f"imap({user})" in line and "Disconnected" in line and " in=" in line:
                fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
                result.append({k: int(v) for k, v in fields.items() if v.isdigit()})
        return result

    def client(self, user: str):  # type: ignore[no-untyped-def]
        import imapclient

        client = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        if self.users[user].isascii():
            client.login(user, self.users[user])
        else:  # LOGIN takes only ASCII; PLAIN is UTF-8 (RFC 4616)
            client.plain_login(user, self.users[user])
        return client

    def seed(self, user: str, folder: str, messages: Iterable[bytes | tuple[bytes, Iterable[str], datetime | None]]) -> list[int]:
        """APPEND messages (raw bytes, or (bytes, flags, internaldate)); returns their UIDs."""
        client = self.client(user)
        uids = []
        try:
            for item in messages:
                data, flags, when = (item, (), None) if isinstance(item, bytes) else item
                answer = client.append(folder, data, flags=[f.encode() for f in flags], msg_time=when)
                uids.append(int(answer.split(b"APPENDUID ")[1].split(b" ")[1].rstrip(b"]")))
        finally:
            client.logout()
        return uids
