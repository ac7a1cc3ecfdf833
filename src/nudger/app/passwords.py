"""Read the account password from its configured source, at connect time only.

The secret is returned to the caller and never logged; errors name the source,
never the value.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from nudger.config.model import Account, Config, PasswordSource, is_private
from nudger.errors import AuthError, ConfigError


def check_password_sources(config: Config) -> None:
    """What would stop a password from being read, found without reading it.

    Asked by check-config and before run connects; status and explain never need the
    password, so the loader they share does not ask.
    """
    problems = [f"{config.path.name}: {problem}" for account in config.accounts
                if (problem := _account_problem(account))]
    problems += [f"{config.path.name}: {problem}" for account in config.accounts
                 if account.smtp is not None and account.smtp.password is not None
                 and account.smtp.password is not account.password
                 and (problem := source_problem(account.smtp.password,
                                                f"accounts.{account.name}.smtp"))]
    if problems:
        raise ConfigError(problems)


def _account_problem(account: Account) -> str | None:
    key = f"accounts.{account.name}"
    if account.oauth2 is not None:  # its client secret's program, if it has one
        command = account.oauth2.client_secret_command
        return _program_problem(command[0], f"{key}.oauth2.client_secret_command") if command else None
    assert account.password is not None
    return source_problem(account.password, key)


def source_problem(source: PasswordSource, key: str) -> str | None:
    """Why the password of account ``key`` could not be read (its program or file), or None."""
    where = f"{key}.{source.key}"
    if source.kind == "command":
        return _program_problem(source.command[0], where)
    if source.kind == "file":
        assert source.file is not None
        path = source.file
        if not path.is_file():
            return f"{where}: no such file: {path}"
        mode = path.stat().st_mode
        if not is_private(mode):
            return (f"{where}: {path} is readable by others (mode {oct(mode & 0o777)}); "
                    f"run: chmod 600 {shlex.quote(str(path))}")
    return None


def _program_problem(program: str, key: str) -> str | None:
    if os.sep not in program:
        import shutil  # (here: see read_password)

        if shutil.which(program) is None:
            return (f'{key}: program "{program}" not found on PATH (install it, give its full '
                    "path, or use password_env / password_file)")
        return None
    path = Path(program)
    if not path.is_file():
        return f'{key}: program "{program}": no such file'
    if not os.access(path, os.X_OK):
        return f'{key}: program "{program}" is not executable (run: chmod +x {shlex.quote(program)})'
    return None


def read_password(source: PasswordSource, account: str, where: str = "") -> str:
    """The secret itself; errors name the source's key (or ``where``), never the value."""
    key = f"accounts.{account}"
    where = where or f"{key}.{source.key}"
    if source.kind == "inline":
        return source.inline
    if source.kind == "env":
        value = os.environ.get(source.env)
        if not value:
            raise ConfigError([f"{where}: ${source.env} is not set or empty"])
        return value
    if source.kind == "file":
        assert source.file is not None
        if problem := source_problem(source, key):
            raise ConfigError([problem])
        try:
            text = source.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{where}: cannot read {source.file}: {exc.strerror}"]) from exc
        return text.rstrip("\r\n")
    # (Imported here, not with this module: run --once dials the server once this is
    # imported, and only a password command needs it; app/connect.py imports it ahead.)
    import subprocess

    try:
        # No shell: the command is an argv, so nothing in it is interpreted twice.
        done = subprocess.run(
            list(source.command), capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL
        )
    except OSError as exc:  # gone or not executable since it was checked
        problem = source_problem(source, key) or f"{where}: {exc.strerror}"
        raise ConfigError([problem]) from exc
    except subprocess.TimeoutExpired as exc:
        raise AuthError(f"{where}: {source.command[0]!r} took over 60s") from exc
    if done.returncode != 0:
        # Its stderr may be useful ("gpg: decryption failed"), its stdout may be the secret.
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[-1][:200]}" if err else ""
        raise AuthError(
            f"{where}: {source.command[0]!r} exited with {done.returncode}{detail}")
    # First line only, as mail clients do with `pass` output.
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise AuthError(f"{where}: {source.command[0]!r} printed no password")
    return lines[0]
