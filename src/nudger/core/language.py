"""Which language the user wrote their message in: the one its follow-up is written in.

Pure: the message's Content-Language and its text in, a language code out. A declared
Content-Language wins; otherwise py3langid reads the user's own words (quoted text and
the signature left out). It ships its model inside the package, so nothing is fetched;
the model loads once per process (under a second), the first time a draft is written.
Unsure means English: a follow-up in the wrong language is worse than one in English.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# The languages nudger writes follow-ups in: those whose out-of-office phrases it reads.
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "sv")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                  "nl": "Dutch", "pt": "Portuguese", "sv": "Swedish"}
# py3langid's probability (over all ~100 languages it knows) that the text is in the
# language it names. Two full sentences score over 0.9; "Thanks!" or "Ok, merci" under
# 0.1. Below this, English.
MIN_CONFIDENCE = 0.6
MAX_CHARS = 4000  # the opening of a long message says its language as well as all of it

# Where the user's own words end: a quoted original, a forwarded one, a signature.
_END_OF_OWN = re.compile(
    r"^(?:-- ?$|-{3,} ?(?:Original|Ursprüngliche|Message d'origine|Mensaje original|Messaggio "
    r"originale|Oorspronkelijk|Mensagem original|Ursprungligt|Forwarded|Weitergeleitete)"
    r"|_{10,}$|(?:On|Am|Le|El|Il|Op|Em|Den) .{6,120}(?:wrote|schrieb|a écrit|escribió|ha scritto"
    r"|schreef|escreveu|skrev)\b)",
    re.IGNORECASE | re.MULTILINE)


def declared(content_language: str) -> str | None:
    """The supported language a Content-Language header names first ("de-DE, en" -> "de")."""
    tag = content_language.split(",", 1)[0].strip().lower()
    primary = re.split(r"[-_;\s]", tag, maxsplit=1)[0]
    return primary if primary in LANGUAGES else None


def own_words(text: str) -> str:
    """The text the user wrote themselves: up to a quoted or forwarded original or a
    signature, without quoted lines."""
    end = _END_OF_OWN.search(text)
    own = text[: end.start()] if end else text
    return "\n".join(line for line in own.splitlines() if not line.lstrip().startswith(">"))[:MAX_CHARS]


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # here: loads its model

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detected(text: str) -> tuple[str, float]:
    """The language py3langid reads in ``text`` (any it knows) and its probability."""
    if not text.strip():
        return "und", 0.0
    lang, confidence = _identifier().classify(text)
    return str(lang), float(confidence)


def language_of(content_language: str, text: str) -> str:
    """The language to write the follow-up of this message in: its Content-Language when
    that names one of LANGUAGES, else the one its own words are surely in, else English."""
    named = declared(content_language)
    if named is not None:
        return named
    lang, confidence = detected(own_words(text))
    return lang if lang in LANGUAGES and confidence >= MIN_CONFIDENCE else DEFAULT_LANGUAGE
