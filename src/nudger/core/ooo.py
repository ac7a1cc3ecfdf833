"""When is an out-of-office sender back? Read from the auto-reply's text, with guard rails.

Pure: the text and the auto-reply's own Date in, a date (or None) out. A phrase that
announces a return ("back on", "zurück am", "de retour le" ...) is found first; only
the words after it are handed to dateparser, in that language, relative to the
auto-reply's Date, and the result must lie within a sane bound after it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

MAX_AHEAD = timedelta(days=120)  # nobody's out-of-office plans further; beyond is a misread

_TRIGGERS = {
    "en": r"(?:back|return(?:ing)?|in the office again|available again)(?: to the office)?"
          r"(?: on| by| from| at)?",
    "de": r"(?:zurück|wieder (?:im büro|erreichbar|da|im haus))(?: am| ab)?",
    "fr": r"(?:de retour|retour au bureau|serai de retour)(?: le| à partir du| dès le)?",
    "es": r"(?:de vuelta|regreso|volveré|regresaré)(?: el| a partir del)?",
    "it": r"(?:rientro|di ritorno|tornerò|sarò di nuovo in ufficio)(?: il| dal| a partire dal)?",
    "nl": r"(?:terug op|weer aanwezig(?: op)?|weer op kantoor(?: op)?|terug vanaf)",
    "pt": r"(?:de volta|retorno|regressarei)(?: em| no dia| a| dia)?",
    "sv": r"(?:tillbaka|åter på kontoret)(?: den| på| från)?",
}
_PATTERNS = [(lang, re.compile(r"\b" + trigger + r"\s+(?P<rest>[^\n]{3,60})", re.IGNORECASE))
             for lang, trigger in _TRIGGERS.items()]
_CUT = re.compile(r"[.;!?)(]\s|,\s(?!\d)|\s(?:and|und|et|y|e|en|och|but|aber|mais)\s", re.IGNORECASE)


def return_date(text: str, sent: datetime) -> datetime | None:
    """The first plausible return date announced in ``text``, or None."""
    for lang, pattern in _PATTERNS:
        for found in pattern.finditer(text):
            import dateparser  # here: only an announced return needs it, and it loads slowly

            rest = _CUT.split(found.group("rest"), maxsplit=1)[0].strip(" ,:")
            words = rest.split()
            for n in range(min(len(words), 5), 0, -1):
                candidate = " ".join(words[:n])
                if not any(ch.isdigit() for ch in candidate) and n < 2:
                    continue  # a lone word ("Je", "Monday") is too easily misread
                parsed = dateparser.parse(
                    candidate, languages=[lang],
                    settings={"RELATIVE_BASE": sent.replace(tzinfo=None),
                              "PREFER_DATES_FROM": "future",
                              "DATE_ORDER": "MDY" if lang == "en" and "/" in candidate else "DMY",
                              "RETURN_AS_TIMEZONE_AWARE": False})
                if parsed is None:
                    continue
                when = parsed.replace(tzinfo=sent.tzinfo)
                if sent.date() <= when.date() and when - sent <= MAX_AHEAD:
                    return when.replace(hour=0, minute=0, second=0, microsecond=0)
    return None
