"""Read the account password from its configured source, at connect time only.

The secret is returned to the caller and never logged; errors name the source,
never the value.
"""

from __future__ import annotations

import os
import subprocess

from nudger.config import PasswordSource
from nudger.errors import AuthError, ConfigError


def read_password(source: PasswordSource, account: str) -> str:
    key = f"accounts.{account}"
    if source.kind == "inline":
        return source.inline
    if source.kind == "env":
        value = os.environ.get(source.env)
        if not value:
            raise ConfigError([f"{key}.password_env: ${source.env} is not set or empty"])
        return value
    if source.kind == "file":
        assert source.file is not None
        try:
            text = source.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{key}.password_file: cannot read {source.file}: {exc.strerror}"]) from exc
        return text.rstrip("\r\n")
    try:
        # No shell: the command is an argv, so nothing in it is interpreted twice.
        done = subprocess.run(
            list(source.command), capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise ConfigError([f"{key}.password_command: {source.command[0]!r} not found"]) from exc
    except subprocess.TimeoutExpired as exc:
        raise AuthError(f"{key}.password_command: {source.command[0]!r} took over 60s") from exc
    if done.returncode != 0:
        # Its stderr may be useful ("gpg: decryption failed"), its stdout may be the secret.
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[-1][:200]}" if err else ""
        raise AuthError(
            f"{key}.password_command: {source.command[0]!r} exited with {done.returncode}{detail}")
    # First line only, as mail clients do with `pass` output.
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise AuthError(f"{key}.password_command: {source.command[0]!r} printed no password")
    return lines[0]
