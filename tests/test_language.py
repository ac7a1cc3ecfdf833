"""Follow-ups in the language of the user's message, greeted as a native speaker greets.

The language of each draft is checked by reading the draft's own text (above the quote)
with the same detector nudger uses, not by trusting nudger's choice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nudger.cli import main
from nudger.config.model import BUILTIN_TEMPLATES
from nudger.core.compose import DraftInput, compose_nudge, first_name
from nudger.core.greeting import greeting
from nudger.core.language import LANGUAGES, detected, language_of
from nudger.core.parse import parse_record
from nudger.core.record import Addr
from support.harness import Box, by_subject, make_box, text
from support.mail import NOW, days_ago, message

# -- the greeting ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "email", "lang", "expected"), [
    ("Jörg Müller", "joerg@kunde.example", "en", "Hi Jörg,"),
    ("Jörg Müller", "joerg@kunde.example", "de", "Hallo Jörg,"),
    ("Dr. Weiß", "weiss@kunde.example", "en", "Hello Dr. Weiß,"),   # never "Hi Dr.,"
    ("Dr. Weiß", "weiss@kunde.example", "de", "Guten Tag Dr. Weiß,"),
    ("Herr Weiß", "weiss@kunde.example", "de", "Guten Tag Herr Weiß,"),
    ("Frau Dr. Anna Weiß", "a.weiss@kunde.example", "de", "Guten Tag Frau Dr. Weiß,"),
    ("Frau Dr. Anna Weiß", "a.weiss@kunde.example", "en", "Hello Dr. Weiß,"),
    ("Prof. Dr. Weiß", "weiss@uni.example", "fr", "Bonjour,"),      # no academic titles in French
    ("Mme Claire Dubois", "c.dubois@client.fr", "fr", "Bonjour Madame Dubois,"),
    ("M. Dupont", "dupont@client.fr", "fr", "Bonjour Monsieur Dupont,"),
    ("Mme Claire Dubois", "c.dubois@client.fr", "de", "Guten Tag Frau Dubois,"),  # in German words
    ("Sr. Carlos García", "carlos@cliente.es", "es", "Estimado Sr. García:"),
    ("Sra. García", "garcia@cliente.es", "es", "Estimada Sra. García:"),
    ("Frau Dr. Anna Weiß", "a.weiss@kunde.example", "es", "Estimada Dra. Weiß:"),
    ("Dra. Ana Souza", "ana@cliente.com.br", "pt", "Cara Dra. Souza,"),
    ("Dott.ssa Laura Bianchi", "l.bianchi@studio.it", "it", "Gentile Dott.ssa Bianchi,"),
    ("Dhr. Jan de Vries", "jan@klant.nl", "nl", "Geachte heer De Vries,"),
    ("Ms Jane Smith", "jane@client.example", "en", "Hello Ms Smith,"),
    ("Mr", "mr@client.example", "en", "Hi there,"),
    ("", "info@client.example", "de", "Guten Tag,"),
    ("", "info@client.example", "fr", "Bonjour,"),
    ("", "info@client.example", "es", "Buenos días:"),
    ("", "info@client.example", "it", "Buongiorno,"),
    ("", "info@client.example", "nl", "Goedendag,"),
    ("", "info@client.example", "pt", "Olá,"),
    ("", "info@client.example", "sv", "Hej,"),
    ("", "anna.berg@client.example", "sv", "Hej Anna,"),
    ("Dr. Anna Berg", "anna@client.example", "sv", "Hej Anna,"),    # Swedish: no titles
    ("Weiß, Dr. Jörg", "j.weiss@kunde.example", "de", "Guten Tag Dr. Weiß,"),
    ("J. Smith", "js@client.example", "en", "Hi there,"),           # an initial is no name
])
def test_the_greeting_follows_the_language_and_never_takes_a_title_for_a_name(
        name: str, email: str, lang: str, expected: str) -> None:
    assert greeting(Addr(name, email), lang) == expected


@pytest.mark.parametrize(("name", "email", "expected"), [
    ("Dr. Weiß", "weiss@kunde.example", "there"),        # issue 15 item 13: was "Dr."
    ("Prof. Dr. Jörg Weiß", "jw@kunde.example", "Jörg"),
    ("Frau Weiß", "weiss@kunde.example", "there"),
    ("Mme Dubois", "dubois@client.fr", "there"),
    ("Dr. Weiß", "joerg.weiss@kunde.example", "Joerg"),  # the address still knows it
    ("Sig.ra Rossi", "rossi@cliente.it", "there"),
])
def test_a_title_is_not_a_first_name(name: str, email: str, expected: str) -> None:
    assert first_name(Addr(name, email)) == expected


# -- which language ----------------------------------------------------------------------


def test_content_language_wins_over_the_text() -> None:
    assert language_of("de-DE", "Please find attached the quote we discussed last week.") == "de"
    assert language_of("fr", "Ci-joint.") == "fr"
    assert language_of("", "Ci-joint.") == "en"  # (too short to tell on its own)
    # A language nudger has no text for: its words decide, as if none were declared.
    assert language_of("pl", "Hallo Jörg, anbei unser Angebot für die Wartung Ihrer Anlagen.") == "de"


@pytest.mark.parametrize("words", ["Thanks!", "Danke!", "Ok, merci", "Gracias", "Tack", "", "ok"])
def test_a_short_or_ambiguous_message_falls_back_to_english(words: str) -> None:
    assert language_of("", words) == "en"


def test_a_language_without_texts_falls_back_to_english() -> None:
    assert language_of("", "Dzień dobry, w załączniku przesyłam ofertę na serwis urządzeń.") == "en"


def test_only_the_users_own_words_count() -> None:
    reply = ("Hallo Bob,\n\nvielen Dank, ich schicke Ihnen die Unterlagen morgen früh.\n\n"
             "Viele Grüße\nMia\n-- \nMia Example | Example GmbH | Phone +49 30 1234\n\n"
             "On Mon, 23 Nov 2026 at 10:00, Bob Smith wrote:\n"
             "> Could you send the documents we talked about on the phone, please?\n"
             "> I need them for the meeting with our board next week.\n")
    assert language_of("", reply) == "de"


@pytest.mark.parametrize("name", ["gentle", "thanks"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_built_in_text_reads_as_its_language(name: str, lang: str) -> None:
    body = BUILTIN_TEMPLATES[name].body_for(lang)
    filled = body.format(greeting=greeting(Addr("Anna Berg", "anna@x.example"), lang), my_name="Mia")
    assert detected(filled)[0] == lang and detected(filled)[1] > 0.9, filled
    assert "{" not in filled


def test_dates_and_the_quote_line_follow_the_language() -> None:
    head = (b"Message-ID: <p@x>\r\nFrom: Mia <me@example.com>\r\nTo: Bob <bob@x.example>\r\n"
            b"Subject: Angebot\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n")
    out = parse_record(head, folder="Sent", uid=1)
    d = DraftInput("work", out, "Hallo Bob,\nanbei.", 1, "{greeting} {date} {weekday}",
                   Addr("Mia", "me@example.com"), (Addr("Bob", "bob@x.example"),), (),
                   ZoneInfo("Europe/Berlin"), NOW, language="de")
    body = compose_nudge(d).get_content()
    assert body.startswith("Hallo Bob, 23. November Montag\n")
    assert "Am 23.11.2026 um 10:00 schrieb Mia:\n> Hallo Bob," in body


# -- user templates with variants --------------------------------------------------------

ACCOUNT = """
[accounts.work]
host = "127.0.0.1"
tls = "none"
username = "me@example.com"
password_env = "NUDGER_TEST_PASSWORD"
timezone = "Europe/Berlin"
"""


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "config.toml"
    path.write_text(ACCOUNT + text)
    capsys.readouterr()
    code = main(["--config", str(path), "check-config"])
    return code, capsys.readouterr().err


def test_a_template_variant_for_an_unknown_language_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _check(tmp_path, '[templates.gentle]\nbody = "Hi"\n[templates.gentle.jp]\nbody = "x"\n', capsys)
    assert code == 78 and "templates.gentle.jp: unknown key" in err and "de, fr" in err
    code, err = _check(tmp_path, '[templates.gentle.de]\nbody = "Hallo {frist_name}"\n', capsys)
    assert code == 78 and 'templates.gentle: missing "body"' in err
    assert 'templates.gentle.de.body: unknown placeholder "{frist_name}"' in err
    code, err = _check(tmp_path, '[templates.gentle]\nbody = "Hi"\n[templates.gentle.de]\ntext = "x"\n', capsys)
    assert code == 78 and "templates.gentle.de.text: unknown key" in err
    assert 'templates.gentle.de: missing "body"' in err


def test_check_config_names_the_languages_of_each_template(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGER_TEST_PASSWORD", "x")
    path = tmp_path / "config.toml"
    path.write_text(ACCOUNT + '[templates.short]\nbody = "Hi"\n[templates.short.de]\nbody = "Hallo"\n')
    assert main(["--config", str(path), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "gentle (built in: en, de, fr, es, it, nl, pt, sv)" in out
    assert "short (yours: body, de)" in out


# -- end to end, on Dovecot --------------------------------------------------------------

# (language, recipient, the user's message, the greeting its follow-up opens with)
MESSAGES = {
    "Proposal for the rollout": ("en", "Bob Smith <bob@client.example>",
                                 "Hi Bob,\n\nattached is the proposal we discussed. Could you "
                                 "confirm the dates by Friday?\n\nThanks,\nMia", "Hi Bob,"),
    "Angebot für Ihre Anfrage": ("de", "Dr. Weiß <weiss@kunde.example>",
                                 "Guten Tag Herr Dr. Weiß,\n\nanbei unser Angebot für die Wartung "
                                 "Ihrer Anlagen. Bei Fragen melden Sie sich gern.\n\nViele Grüße\nMia",
                                 "Guten Tag Dr. Weiß,"),
    "Devis pour la maintenance": ("fr", "Mme Claire Dubois <c.dubois@client.fr>",
                                  "Bonjour Madame Dubois,\n\nVeuillez trouver ci-joint notre devis "
                                  "pour la maintenance de vos installations. N'hésitez pas à me "
                                  "contacter pour toute question.\n\nCordialement,\nMia",
                                  "Bonjour Madame Dubois,"),
    "Presupuesto": ("es", "Sr. Carlos García <carlos@cliente.es>",
                    "Estimado Sr. García:\n\nLe adjunto el presupuesto que nos pidió la semana "
                    "pasada. Quedo atenta a sus comentarios.\n\nUn saludo,\nMia",
                    "Estimado Sr. García:"),
    "Preventivo": ("it", "Dott.ssa Laura Bianchi <l.bianchi@studio.it>",
                   "Gentile Dott.ssa Bianchi,\n\nin allegato trova il preventivo richiesto. Resto "
                   "a disposizione per qualsiasi domanda.\n\nCordiali saluti,\nMia",
                   "Gentile Dott.ssa Bianchi,"),
    "Offerte onderhoud": ("nl", "Jan de Vries <jan@klant.nl>",
                          "Beste Jan,\n\nHierbij stuur ik u de offerte voor het onderhoud van uw "
                          "installaties. Laat het me weten als u vragen heeft.\n\nMet vriendelijke "
                          "groet,\nMia", "Beste Jan,"),
    "Proposta": ("pt", "João Silva <joao@cliente.com.br>",
                 "Olá, João,\n\nSegue em anexo a proposta que conversamos na semana passada. "
                 "Qualquer dúvida, estou à disposição.\n\nAtenciosamente,\nMia", "Olá, João,"),
    "Offert": ("sv", "Anna Lindqvist <anna@kund.se>",
               "Hej Anna,\n\nHär kommer offerten för underhållet av era anläggningar. Hör av dig "
               "om du har några frågor.\n\nVänliga hälsningar\nMia", "Hej Anna,"),
    "Kurz": ("en", "Jörg Müller <joerg@kunde.example>", "Danke!\nMia", "Hi Jörg,"),
}
QUOTE_LINE = {"en": "On ", "de": "Am ", "fr": "Le ", "es": "El ", "it": "Il ", "nl": "Op ",
              "pt": "Em ", "sv": "Den "}


def own_text(draft_text: str) -> str:
    """The draft's words above the quote line."""
    lines = draft_text.splitlines()
    first_quoted = next(i for i, line in enumerate(lines) if line.startswith(">"))
    return "\n".join(lines[: first_quoted - 1]).rstrip()


@pytest.fixture
def box(dovecot, imap_user, tmp_path, capsys, monkeypatch) -> Box:  # type: ignore[no-untyped-def]
    return make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch)


def test_each_nudge_comes_out_in_the_language_of_its_message(box: Box) -> None:
    for i, (subject, (_, to, body, _)) in enumerate(MESSAGES.items()):
        box.seed("Sent", message(f"lang{i}@example.com", sender=f"Mia Example <{box.user}>", to=to,
                                 subject=subject, date=days_ago(6), body=body))
    # Content-Language wins: three words would read as English.
    box.seed("Sent", message("declared@example.com", sender=f"Mia Example <{box.user}>",
                             to="Claire Dubois <claire@client.fr>", subject="Le devis",
                             date=days_ago(6), body="Ci-joint le devis.\nMia",
                             headers={"Content-Language": "fr-FR"}))
    box.run()
    drafts = {str(d["Subject"]).removeprefix("Re: "): text(d) for d in box.drafts()}
    assert len(drafts) == len(MESSAGES) + 1
    for subject, (lang, _, _, opening) in MESSAGES.items():
        words = own_text(drafts[subject])
        assert words.splitlines()[0] == opening, subject
        assert detected(words)[0] == lang, (subject, words)
        quote_line = drafts[subject].splitlines()[len(words.splitlines()) + 1]
        assert quote_line.startswith(QUOTE_LINE[lang]), quote_line
    declared = own_text(drafts["Le devis"])
    assert declared.startswith("Bonjour Claire,") and detected(declared)[0] == "fr"


RULES_WITH_VARIANTS = """[[rules]]
name = "clients"
match = { to = ["*@kunde.example"] }
after = "3 business days"
template = "short"

[[rules]]
name = "default"
after = "3 business days"
template = "gentle"

[templates.short]
body = "{greeting}\\n\\nany news?\\n\\n{my_name}"

[templates.short.de]
body = "{greeting}\\n\\ngibt es Neuigkeiten?\\n\\n{my_name}"
"""


def test_a_rule_names_its_template_and_the_templates_variant_applies(
        dovecot, imap_user, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, rules=RULES_WITH_VARIANTS)
    german = MESSAGES["Angebot für Ihre Anfrage"][2]
    french = MESSAGES["Devis pour la maintenance"][2]
    me = f"Mia Example <{box.user}>"
    box.seed("Sent",
             message("v1@example.com", me, "Jörg Weiß <joerg@kunde.example>", "Angebot", days_ago(6), body=german),
             message("v2@example.com", me, "Claire <claire@kunde.example>", "Devis", days_ago(6), body=french),
             message("v3@example.com", me, "Mme Dubois <dubois@client.fr>", "Devis 2", days_ago(6), body=french))
    decisions = by_subject(box.run())
    assert decisions["Angebot"]["rule"] == "clients"
    drafts = {str(d["Subject"]): own_text(text(d)) for d in box.drafts()}
    assert drafts["Re: Angebot"] == "Hallo Jörg,\n\ngibt es Neuigkeiten?\n\nMia Example"
    # The rule's template has no French text: its body, greeted in French.
    assert drafts["Re: Devis"] == "Bonjour Claire,\n\nany news?\n\nMia Example"
    # No rule names a template of the user's here: the built-in French gentle.
    assert drafts["Re: Devis 2"].startswith("Bonjour Madame Dubois,\n\nJe me permets")


# Real messages in German, French and Italian (the last declared by Outlook as it-IT),
# sent by their author, who is the user here; nobody answered.
CORPUS_CASES = [
    ("odd_encodings/outlook_utf7_encoded_word.eml", "de", "Hallo Joe,"),
    ("large_multipart/five_attachments_220k.eml", "fr", "Bonjour Rollierjocelyne,"),
    ("large_multipart/outlook_8_attachments.eml", "it", "Gentile Serena,"),
    ("replies_threaded/outlook_italian_R_R_R_reply.eml", "it", "Buongiorno,"),
]


@pytest.mark.parametrize(("name", "lang", "opening"), CORPUS_CASES)
def test_real_messages_get_follow_ups_in_their_language(  # type: ignore[no-untyped-def]
        corpus, dovecot, imap_user, tmp_path, capsys, monkeypatch, name, lang, opening) -> None:
    raw = (corpus / name).read_bytes()
    record = parse_record(raw.split(b"\r\n\r\n", 1)[0], folder="Sent", uid=1)
    author = record.sender.email  # (as nudger reads it: one From says "a@b <a@c>")
    box = make_box(dovecot, imap_user, tmp_path, capsys, monkeypatch, identities=[author])
    box.seed("Sent", raw)
    decisions = box.run(now=record.date + timedelta(days=10))
    assert [d["action"] for d in decisions] == ["appended"], decisions
    [draft] = box.drafts()
    words = own_text(text(draft))
    assert words.splitlines()[0] == opening
    assert detected(words)[0] == lang, words


def test_the_demo_answers_its_german_offer_in_german(capsys: pytest.CaptureFixture[str]) -> None:
    from nudger.app.demo import run_demo

    assert run_demo(now=NOW) == 0
    out = capsys.readouterr().out
    german = out[out.index("The follow-up to Jörg"):]
    words = german[german.index("Hallo Jörg,"):german.index("Am ")]
    assert "Subject: Re: Angebot für Ihre Anfrage" in german and "Viele Grüße" in words
    assert detected(words)[0] == "de" and "Just bringing" not in german
