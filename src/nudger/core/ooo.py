"""When is an out-of-office sender back? Read from the auto-reply's text, with guard rails.

Pure: the text and the auto-reply's own Date in, a date (or None) out. A phrase that
announces a return ("back on", "zurück am", "de retour le" ...) is found first; only
the words after it are handed to dateparser, in that language, relative to the
auto-reply's Date, and the result must lie within a sane bound after it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

MAX_AHEAD = timedelta(days=120)  # nobody's out-of-office plans further; beyond is a misread

# What announces a return ("back on"), and what announces an absence that ends on a day
# ("until"): the date follows either.
_TRIGGERS = {
    "en": r"(?:(?:back|return(?:ing)?|in the office again|available again)(?: to the office)?"
          r"(?: on| by| from| at)?|until|till|through)",
    "de": r"(?:(?:zurück|wieder (?:im büro|erreichbar|(?:für sie )?da|im haus))(?: am| ab)?"
          r"|bis(?: einschließlich| einschl\.)?(?: zum| am)?)",
    "fr": r"(?:(?:de retour|retour au bureau|serai de retour)(?: le| à partir du| dès le)?"
          r"|jusqu(?:'|’)(?:au|à|a)(?: lundi| mardi| mercredi| jeudi| vendredi)?)",
    "es": r"(?:(?:de vuelta|regreso|volveré|regresaré)(?: el| a partir del)?|hasta(?: el)?)",
    "it": r"(?:(?:rientro|di ritorno|tornerò|sarò di nuovo in ufficio)(?: il| dal| a partire dal)?"
          r"|fino al(?:l'|l’)?|fino a)",
    "nl": r"(?:terug op|weer aanwezig(?: op)?|weer op kantoor(?: op)?|terug vanaf|tot en met|t/m|tot)",
    "pt": r"(?:(?:de volta|retorno|regressarei)(?: em| no dia| a| dia)?|até(?: (?:o )?dia| ao dia)?)",
    "sv": r"(?:(?:tillbaka|åter på kontoret)(?: den| på| från)?|till och med|t\.o\.m\.|till)",
}
# What comes before a date that a return phrase follows ("ab dem 7.12. wieder erreichbar").
_LEADS = {
    "en": r"(?:from|as of|starting|on)",
    "de": r"(?:ab dem|ab|am|vom)",
    "fr": r"(?:à partir du|dès le|le)",
    "es": r"(?:a partir del|desde el|el)",
    "it": r"(?:a partire dal|dal|il)",
    "nl": r"(?:vanaf|per|op)",
    "pt": r"(?:a partir de|a partir do dia|desde|em|no dia)",
    "sv": r"(?:från och med|fr\.o\.m\.|från|den)",
}
_AFTER = [(lang, re.compile(r"\b" + trigger + r"\s+(?P<rest>[^\n]{3,60})", re.IGNORECASE))
          for lang, trigger in _TRIGGERS.items()]
# (The parts cannot share a run of spaces: "on" and thousands of spaces would cost
# quadratic time in a hostile auto-reply.)
_BEFORE = [(lang, re.compile(r"\b" + _LEADS[lang] + r"[ \t]+(?P<rest>\S[^\n]{1,39}?)[\s,]{1,4}"
                             + _TRIGGERS[lang], re.IGNORECASE))
           for lang in _TRIGGERS]
# Either kind of phrase holds its language's trigger where a word starts, so one scan for
# any trigger tells which languages' patterns can match at all (in most texts one or none:
# the patterns of all eight on every auto-reply cost most of reading it).
# (The letters that start a trigger come first: trying every trigger at every word costs
# twice as much.)
_ANY_TRIGGER = re.compile(r"\b(?=[abdfhijrstuvwzå])(?=" + "|".join(_TRIGGERS.values()) + ")", re.IGNORECASE)
_TRIGGER_AT = [(lang, re.compile(trigger, re.IGNORECASE)) for lang, trigger in _TRIGGERS.items()]
# Where the words of a date end: a sentence (not the dot of "14." or "7.12."), a bracket,
# a conjunction. Not a comma: "Monday, December 14".
_CUT = re.compile(r"[;!?)(]\s|(?<!\d)\.\s|\s(?:and|und|et|y|e|en|och|but|aber|mais)\s"
                  r"|\s(?:uhr|o'clock|heures?|horas|ore|uur)\b", re.IGNORECASE)  # (a time, not a day)
# A day.month. without a year (German, Dutch, Scandinavian): dateparser reads "7.12." as
# a clock time.
_DAY_MONTH = re.compile(r"\b(\d{1,2})\.(\d{1,2})(?!\.?\d)\.?")


def return_date(text: str, sent: datetime) -> datetime | None:
    """The return date announced in ``text``, or None: after a phrase that announces it,
    or before one ("ab dem 7.12. wieder erreichbar"). Of several ("bis 4.12. nicht
    erreichbar, ab dem 7.12. wieder da"), the last day: the sender is back by then."""
    return max(_dates(text, sent), default=None)


def _dates(text: str, sent: datetime) -> list[datetime]:
    """Every return date ``text`` announces, in the order of its phrases' languages."""
    return [when for lang, rest in _phrases(text) if (when := _date_in(rest, lang, sent)) is not None]


def _phrases(text: str) -> list[tuple[str, str]]:
    """(language, the words after or before its phrase) of each return phrase in ``text``,
    as each language's patterns find them; only those of the languages whose trigger the
    text holds are run."""
    starts = [found.start() for found in _ANY_TRIGGER.finditer(text)]
    if not starts:
        return []
    langs = {lang for lang, trigger in _TRIGGER_AT if any(trigger.match(text, at) for at in starts)}
    return [(lang, match.group("rest")) for patterns in (_AFTER, _BEFORE) for lang, pattern in patterns
            if lang in langs for match in pattern.finditer(text)]


def _date_in(rest: str, lang: str, sent: datetime) -> datetime | None:
    """The date the first words of ``rest`` name, on or after ``sent`` and within
    ``MAX_AHEAD``; a date without a year is its next occurrence after ``sent``."""
    import dateparser  # here: only an announced return needs it, and it loads slowly

    rest = _CUT.split(rest, maxsplit=1)[0].strip(" ,:")
    rest = _DAY_MONTH.sub(lambda m: _with_year(int(m.group(1)), int(m.group(2)), sent) or m.group(0), rest)
    words = rest.split()
    for n in range(min(len(words), 5), 0, -1):
        candidate = " ".join(words[:n]).strip(" ,")
        if (not any(ch.isdigit() for ch in candidate) and n < 2) or candidate.isdigit():
            continue  # a lone word ("Je", "Monday") or number ("bis 14 Uhr") is easily misread
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


def _with_year(day: int, month: int, sent: datetime) -> str | None:
    """"7.12." as "7.12.2026": the next 7 December on or after ``sent``."""
    for year in (sent.year, sent.year + 1):
        try:
            if date(year, month, day) >= sent.date():
                return f"{day}.{month}.{year}"
        except ValueError:
            return None
    return None
