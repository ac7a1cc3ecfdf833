"""The validator's tools: typed reads of the parsed TOML that collect every problem.

Each read names the key path it looks at, so that a mistake is reported as
``config.toml: accounts.work.port: ...`` and the walk goes on to find the next one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from nudger.core.durations import Delay
from nudger.errors import ConfigError


class Checker:
    """Collects the problems of one file, each with the file's name and its key path."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path.name}: {key}: {message}")

    def raise_problems(self) -> None:
        """Report everything found at once, if anything was."""
        if self.problems:
            raise ConfigError(self.problems)

    def table(self, value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        """``value`` as a table whose keys are all ``known`` ({} if it is no table)."""
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {kind_of(value)}")
            return {}
        for name in value:
            if name not in known:
                close = close_matches(name, known)
                hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
                self.fail(f"{key}.{name}" if key else name, f"unknown key{hint}")
        return value

    def typed(self, value: Any, key: str, kind: type, label: str) -> Any:
        """``value`` if it is a ``kind`` (a bool is no int), else None; None stays None."""
        if value is None:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"expected {label}, got {kind_of(value)}")
            return None
        return value

    def string(self, table: dict[str, Any], name: str, key: str) -> str | None:
        return self.typed(table.get(name), f"{key}.{name}", str, "a string")

    def strings(self, table: dict[str, Any], name: str, key: str) -> tuple[str, ...] | None:
        """A list of strings; one string stands for a list of one."""
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{key}.{name}", f"expected a list of strings, got {kind_of(value)}")
            return None
        return tuple(value)

    def command(self, value: Any, key: str) -> tuple[str, ...]:
        """A program and its arguments: a list of words, or one string split into words as
        a shell would (none ever runs it through one); () when absent or not one."""
        if value is None:
            return ()
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, str) and value.strip():
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                self.fail(key, f"cannot split into words: {exc}")
                return ()
        self.fail(key, "expected a command string or a list of words")
        return ()

    def parsed(self, value: Any, key: str, parse: Callable[[str], Any], hint: str,
               above_zero: bool = False) -> Any:
        """A duration or delay read by ``parse``; None if absent or not one (or, where
        ``above_zero``, no time at all: a zero never stands for the default unsaid)."""
        if value is None or self.typed(value, key, str, "a string") is None:
            return None
        try:
            parsed = parse(value)
        except ValueError:
            self.fail(key, f'"{value}" is not a duration ({hint})')
            return None
        if above_zero and parsed in (timedelta(0), Delay()):
            self.fail(key, f'"{value}" is no time at all: it must be above zero ({hint})')
            return None
        return parsed


def kind_of(value: Any) -> str:
    """What a TOML value is, as a problem names it: a table, "5m" (a string), 3 (int)..."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}" (a string)'
    return f"{value!r} ({type(value).__name__})"


def close_matches(word: str, known: Iterable[str]) -> list[str]:
    """The known word closest to a misspelt one, for a "did you mean" hint (or none)."""
    import difflib  # here: only a mistake in the file needs it

    return difflib.get_close_matches(word, list(known), n=1)
