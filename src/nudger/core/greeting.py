"""How to greet the recipient: their name read from the display name (a title is not a
first name: "Dr. Weiß" has none), and the greeting line in the follow-up's language.

Pure: an address and a language in, text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nudger.core.record import Addr
from nudger.core.templates import GREETINGS, SUFFIXES, TITLES

GENERIC_LOCAL_PARTS = frozenset(
    "info sales contact support team hello office admin billing accounts help service "
    "mail enquiries inquiries jobs hr press marketing".split()
)
# "Jane (ACME)", "Jane | ACME" (no leading \s*: retried at each space of a long run)
_NOISE = re.compile(r"\([^)]*\)|\[[^\]]*\]|[|/].*")


@dataclass(frozen=True)
class Name:
    """A display name read into its parts; any of them may be empty."""

    first: str = ""
    last: str = ""
    titles: tuple[str, ...] = ()  # as written: ("Frau", "Dr.")
    gender: str = ""  # "m" or "f" when a title says so


def _title(word: str) -> tuple[str, bool] | None:
    key = word.lower()
    return TITLES.get(key) or TITLES.get(key.rstrip("."))


def _kind(title: str) -> tuple[str, bool]:
    """A title's gender ("m", "f", "") and whether it is a civil one."""
    return _title(title) or ("", False)


def read_name(display: str) -> Name:
    """The parts of a display name: "Frau Dr. Anna Weiß", "Weiß, Jörg", "Dr. Weiß"."""
    name = _NOISE.sub("", display.strip().strip("'\"")).strip()
    if "@" in name:
        return Name()
    if name.count(",") == 1:  # "Doe, Jane"; "Weiß, Dr. Jörg"
        last, first = (part.strip() for part in name.split(","))
        name = f"{first} {last}"
    words = [w for w in name.replace(",", " ").split() if w.lower() not in SUFFIXES]
    titles: list[str] = []
    while words and _title(words[0]) is not None:
        titles.append(words.pop(0))
    gender = next((g for t in titles if (g := _kind(t)[0])), "")
    if not words:
        return Name(titles=tuple(titles), gender=gender)
    if titles and len(words) == 1:
        return Name(last=words[0], titles=tuple(titles), gender=gender)
    first = words[0] if not _initial(words[0]) else ""
    return Name(first, " ".join(words[1:]), tuple(titles), gender)


def _initial(word: str) -> bool:
    return len(word.rstrip(".")) <= 1


def _from_address(email: str, name: Name) -> str:
    """A first name guessed from the address (anna.berg@ -> Anna), or ""."""
    parts = re.split(r"[._+-]", email.partition("@")[0])
    local = parts[0]
    if not (local.isalpha() and len(local) > 1 and local.lower() not in GENERIC_LOCAL_PARTS
            and _title(local) is None):
        return ""
    # "Dr. Weiß <weiss@...>": the address holds the surname, not a first name.
    if name.last and (len(parts) < 2 or _folded(local) == _folded(name.last.split()[-1])):
        return ""
    return local.capitalize()


def _folded(text: str) -> str:
    return (text.lower().replace("ß", "ss").replace("ä", "ae").replace("ö", "oe")
            .replace("ü", "ue"))


def first_name(addr: Addr) -> str:
    """The recipient's first name, "" when there is none to be had."""
    name = read_name(addr.name)
    return name.first or _from_address(addr.email, name)


def greeting(addr: Addr, language: str) -> str:
    """The greeting line in ``language``: by title and surname when the display name has
    a title the language greets with (a civil one in the language's own words: Mme Dubois
    is "Frau Dubois" in German), else by first name, else the neutral one."""
    style = GREETINGS.get(language, GREETINGS["en"])
    name = read_name(addr.name)
    if name.last and name.titles:
        academic = [t for t in name.titles if not _kind(t)[1]] if style.academic else []
        if name.gender == "f" and style.feminine:
            academic = [style.feminine.get(t.lower().rstrip("."), t) for t in academic]
        has_civil = any(_kind(t)[1] for t in name.titles)
        civil = style.civil.get(name.gender, "") if has_civil else ""
        if academic and not style.civil_with_academic:
            civil = ""
        shown = " ".join(filter(None, [civil, *academic]))
        if shown:
            last = name.last[:1].upper() + name.last[1:] if language == "nl" else name.last
            return style.titled[name.gender].format(title=shown, last=last)  # (De Vries)
    first = name.first or _from_address(addr.email, name)
    return style.first.format(first=first) if first else style.none
