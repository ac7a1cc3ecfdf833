"""When an out-of-office sender is back, in the words real auto-replies use (issue 15, 5-9).

The texts follow the phrasing of the autoresponders named (Exchange/Outlook, Gmail,
Apple iCloud, Zimbra, Mimecast templates filled in by people) in the eight languages;
real ones from the shared corpus are read from there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudger.core import ooo
from nudger.core.bodytext import text_of
from nudger.core.ooo import return_date
from nudger.core.parse import parse_record
from support.harness import Box, by_subject, make_box
from support.mail import message

MON = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


@pytest.mark.parametrize("text,back", [
    # en: "until", "till", after the phrase and before it
    ("I am out of the office until Monday, December 14.", "2026-12-14"),  # Exchange
    ("I will be back on Monday, December 14, please contact Jane meanwhile.", "2026-12-14"),
    ("I'm on vacation till 5 January with no access to email.", "2027-01-05"),  # Gmail
    ("From 14 December I am back in the office.", "2026-12-14"),
    ("Thanks for your email. I'm out of office from 7 December until 18 December with limited "
     "email access.", "2026-12-18"),  # (a published Outlook/Gmail template, filled in)
    # de
    ("Ich bin ab dem 7.12. wieder erreichbar.", "2026-12-07"),
    ("Ich bin zurück am 7.12. Bitte wenden Sie sich an Jan.", "2026-12-07"),
    ("Vielen Dank für Ihre Nachricht. Ich bin bis zum 11.12.2026 nicht im Büro.", "2026-12-11"),
    ("Ich bin bis 11. Dezember im Urlaub.", "2026-12-11"),
    ("Ich bin vom 30.11. bis einschließlich 04.12.2026 nicht erreichbar. Ab dem 07.12.2026 bin "
     "ich wieder für Sie da.", "2026-12-07"),  # (the later day: back by then)
    # fr
    ("Je suis absent jusqu'au 14 décembre inclus.", "2026-12-14"),  # Zimbra
    ("À partir du 14 décembre je serai de retour au bureau.", "2026-12-14"),
    # es
    ("Estoy fuera de la oficina hasta el 14 de diciembre.", "2026-12-14"),
    ("A partir del 14 de diciembre estaré de vuelta.", "2026-12-14"),
    # it
    ("Sono fuori ufficio fino al 14 dicembre.", "2026-12-14"),
    ("Dal 14 dicembre sarò di nuovo in ufficio.", "2026-12-14"),
    # nl
    ("Ik ben afwezig tot en met 11 december.", "2026-12-11"),
    ("Vanaf 14 december ben ik weer aanwezig.", "2026-12-14"),
    # pt
    ("Estou fora do escritório até 14 de dezembro.", "2026-12-14"),  # Mimecast
    ("A partir de 14 de dezembro estarei de volta.", "2026-12-14"),
    # sv
    ("Jag är på semester till och med 11 december.", "2026-12-11"),
    ("Från och med 14 december är jag tillbaka.", "2026-12-14"),
])
def test_return_date_after_or_before_the_phrase(text: str, back: str) -> None:
    found = return_date(text, MON)
    assert found is not None and found.date().isoformat() == back, found


@pytest.mark.parametrize("text", [
    "I am travelling with limited access to email.",
    "I will reply until then as soon as I can.",
    "Ich bin bis 14 Uhr in einem Termin.",
])
def test_no_return_date_where_none_is_announced(text: str) -> None:
    found = return_date(text, MON)
    assert found is None or found.date() == MON.date(), found  # (today delays nothing)


def test_a_date_without_a_year_is_the_next_one_after_the_auto_reply() -> None:
    december = datetime(2026, 12, 20, 9, tzinfo=UTC)
    assert return_date("Ich bin ab dem 7.1. wieder erreichbar.", december) == datetime(2027, 1, 7, tzinfo=UTC)


def test_the_corpus_auto_replies_that_name_a_return(corpus: Path) -> None:
    # Real ones: Sendmail vacation ("returning to the office on May 5th"), Outlook ("back
    # on Tuesday 9:00"); the rest announce none.
    found = {}
    for path in sorted((corpus / "auto_replies").glob("*.eml")):
        raw = path.read_bytes()
        back = return_date(text_of(raw), parse_record(raw, folder="INBOX", uid=1).date)
        found[path.name] = back.date().isoformat() if back else None
    assert found["auto_submitted_away.eml"] == "2005-05-05"
    assert found["outlook_ooo_latvian_thread-index.eml"] == "2009-02-10"
    assert sum(v is not None for v in found.values()) == 2, found


# -- what the user sees ---------------------------------------------------------------------


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def _away(box: Box, mid: str, subject: str, body: str) -> None:
    box.seed("Sent", message(mid, sender=f"Mia <{box.user}>", subject=subject, date=MON))
    box.seed("INBOX", message(f"ooo-{mid}", sender="bob@client.example", to=box.user,
                              subject=f"Automatic reply: {subject}", date=MON.replace(hour=10),
                              reply_to=mid, body=body, headers={"Auto-Submitted": "auto-replied"}))


@pytest.mark.imap
def test_until_a_day_waits_for_it_and_falls_due_at_the_time_the_user_wrote(box: Box) -> None:
    _away(box, "u1@example.com", "Offer", "I am out of the office until Monday, December 14.")
    d = by_subject(box.run(now=datetime(2026, 11, 30, 12, tzinfo=UTC)))["Offer"]
    assert d["status"] == "waiting" and "out of office until Mon 14 Dec" in d["reason"], d
    # The user wrote at 10:00 Berlin time: one business day of grace after the 14th, at
    # 10:00, not at one in the night.
    assert d["due_at"] == "2026-12-15T10:00:00+01:00", d
    assert box.drafts() == []


@pytest.mark.imap
def test_german_day_month_is_a_day_not_a_clock_time(box: Box) -> None:
    _away(box, "u2@example.com", "Angebot", "Ich bin zurück am 7.12. Bitte wenden Sie sich an Jan.")
    d = by_subject(box.run(now=datetime(2026, 11, 30, 12, tzinfo=UTC)))["Angebot"]
    assert d["status"] == "waiting" and d["due_at"].startswith("2026-12-08"), d


@pytest.mark.imap
def test_explain_says_when_an_auto_reply_named_no_return_date(box: Box) -> None:
    _away(box, "u3@example.com", "Quote", "I am travelling with limited access to email.")
    box.run(now=datetime(2026, 11, 30, 12, tzinfo=UTC))
    _, out, _ = box.cli("explain", "u3@example.com", "--now", "2026-11-30T12:00:00+00:00")
    assert "no return date recognised" in out, out


def test_a_hostile_run_of_spaces_is_read_in_linear_time() -> None:
    """An auto-reply padded with spaces after a lead word ("on", "am", "le" ...): the
    pattern took quadratic time on it (15 s for 4,000 spaces, minutes at the 32 KB an
    auto-reply is read to); now it is one pass, and the date after the padding still counts."""
    sent = datetime(2026, 12, 1, 9, tzinfo=UTC)
    padded = "on" + " " * 30_000 + "x"
    assert return_date(padded, sent) is None
    assert return_date(padded + "\nI am back on December 14.", sent) == return_date(
        "I am back on December 14.", sent) is not None


# -- one scan for every language's trigger, then only the languages found ------------------


def _per_language(text: str) -> list[tuple[str, str]]:
    """What each language's patterns find in ``text``, all eight run over all of it."""
    return [(lang, match.group("rest")) for patterns in (ooo._AFTER, ooo._BEFORE)
            for lang, pattern in patterns for match in pattern.finditer(text)]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(ooo._TRIGGERS)), st.data())
def test_every_trigger_a_language_knows_is_found_by_the_one_scan(lang: str, data: st.DataObject) -> None:
    trigger = data.draw(st.from_regex(re.compile(ooo._TRIGGERS[lang], re.IGNORECASE), fullmatch=True))
    assert ooo._ANY_TRIGGER.match(trigger), trigger  # (where a word starts: at the beginning)


_PIECES = st.sampled_from([
    "I am out of the office until", "Back on", "I'm away till", "RETURNING to the office on",
    "from", "as of", "Ich bin bis zum", "wieder erreichbar", "ab dem", "zurück am", "Je serai de retour le",
    "jusqu’au", "à partir du", "hasta el", "de vuelta", "fino al", "dal", "rientro il", "tot en met",
    "vanaf", "weer op kantoor op", "até o dia", "a partir de", "de volta", "till och med", "från",
    "tillbaka den", "t.o.m.", "t/m", "14 December", "Monday, December 14", "7.12.", "5 January 2027",
    "11. Dezember", "14 décembre", "14 de diciembre", "14 dicembre", "11 december", "14 de dezembro",
    "still", "total", "bistro", "through", "on", "am", "le", "and", "\n", ", ", ". ", "   ", "–",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=14).map(" ".join))
def test_the_one_scan_finds_the_phrases_each_language_finds(text: str) -> None:
    assert ooo._phrases(text) == _per_language(text)


@pytest.mark.parametrize("text", [
    "Out of office until Monday, December 14. Ich bin bis zum 11.12.2026 nicht im Büro.",
    "Je suis absent jusqu'au 14 décembre. Estoy fuera hasta el 18 de diciembre. Tot en met 11 december.",
    "Sono fuori fino al 14 dicembre; até 16 de dezembro; till och med 17 december; back by 5 January",
    "STILL away. Vanaf 14 december ben ik weer aanwezig. A partir de 15 de dezembro estarei de volta.",
])
def test_the_one_scan_finds_the_dates_each_language_finds(text: str) -> None:
    expected = [when for lang, rest in _per_language(text) if (when := ooo._date_in(rest, lang, MON))]
    assert len(expected) >= 2 and ooo._dates(text, MON) == expected
