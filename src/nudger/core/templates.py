"""The built-in texts, in every language nudger writes: the templates, the greeting, the
line above the quote, and the names of months and weekdays for ``{date}``/``{weekday}``.

Pure data. Each language is written as a native speaker writes to a business contact:
short, warm, and without pressure. Why each one addresses the reader as it does:

- en: "you" and a first name; English business mail is this informal.
- de: "Sie": German business mail uses Sie with anyone not known well.
- fr: "vous": tutoyer a business contact unasked is a faux pas.
- es: "usted": the safe default with a business contact in Spain and Latin America alike;
  "tú" would presume a familiarity the user may not have.
- it: "Lei" (capitalised, the courtesy form): what Italian business correspondence uses.
- nl: "u": the norm with business contacts; "je" only once they use it themselves.
- pt: no pronoun at all ("caso tenha passado despercebida"): "você" is too familiar for a
  client in Portugal and "o senhor/a senhora" heavy in Brazil; the texts follow Brazilian
  usage (most speakers), and read naturally in Portugal too.
- sv: "du": since the du-reform Swedish business mail uses du; "ni" sounds stiff.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- the templates --------------------------------------------------------------------------

GENTLE = {
    "en": "{greeting}\n\n"
          "Just bringing this back to the top of your inbox, in case it got buried. "
          "Happy to help if anything is unclear.\n\n"
          "Best,\n{my_name}\n",
    "de": "{greeting}\n\n"
          "ich melde mich noch einmal kurz wegen meiner Nachricht unten – vielleicht ist sie "
          "im Posteingang untergegangen. Wenn etwas unklar ist, helfe ich gern weiter.\n\n"
          "Viele Grüße\n{my_name}\n",
    "fr": "{greeting}\n\n"
          "Je me permets de revenir vers vous au sujet de mon message ci-dessous, au cas où il "
          "vous aurait échappé. Je reste à votre disposition pour toute question.\n\n"
          "Bien cordialement,\n{my_name}\n",
    "es": "{greeting}\n\n"
          "Le escribo de nuevo a propósito de mi mensaje anterior, por si se le ha pasado entre "
          "tantos correos. Quedo a su disposición para cualquier duda.\n\n"
          "Un cordial saludo,\n{my_name}\n",
    "it": "{greeting}\n\n"
          "Mi permetto di riscriverLe a proposito del mio messaggio qui sotto, nel caso Le "
          "fosse sfuggito. Resto a disposizione per qualsiasi chiarimento.\n\n"
          "Cordiali saluti,\n{my_name}\n",
    "nl": "{greeting}\n\n"
          "Ik kom nog even terug op mijn bericht hieronder, voor het geval het is "
          "ondergesneeuwd. Als er iets onduidelijk is, help ik u graag verder.\n\n"
          "Met vriendelijke groet,\n{my_name}\n",
    "pt": "{greeting}\n\n"
          "Volto a escrever sobre minha mensagem abaixo, caso tenha passado despercebida. "
          "Fico à disposição para qualquer esclarecimento.\n\n"
          "Atenciosamente,\n{my_name}\n",
    "sv": "{greeting}\n\n"
          "Jag ville bara påminna om mitt mejl nedan, ifall det har hamnat längre ner i "
          "inkorgen. Hör gärna av dig om något är oklart.\n\n"
          "Vänliga hälsningar\n{my_name}\n",
}

# A thank-you after a meeting: no "today" (it may go out the next morning), no promise
# beyond following up on what was discussed.
THANKS = {
    "en": "{greeting}\n\n"
          "Thank you for taking the time to meet. I appreciated the conversation and am glad "
          "we could talk it through.\n\n"  # (the meet branch's English, greeting aside)
          "Best,\n{my_name}\n",
    "de": "{greeting}\n\n"
          "vielen Dank, dass Sie sich die Zeit für unser Gespräch genommen haben. Ich habe "
          "mich über den Austausch gefreut und komme auf die besprochenen Punkte zurück.\n\n"
          "Viele Grüße\n{my_name}\n",
    "fr": "{greeting}\n\n"
          "Merci d'avoir pris le temps d'échanger avec moi. J'ai apprécié notre discussion et "
          "je reviendrai vers vous sur les points évoqués.\n\n"
          "Bien cordialement,\n{my_name}\n",
    "es": "{greeting}\n\n"
          "Muchas gracias por su tiempo en nuestra reunión. Fue una conversación muy útil; le "
          "escribiré en breve sobre los puntos que tratamos.\n\n"
          "Un cordial saludo,\n{my_name}\n",
    "it": "{greeting}\n\n"
          "La ringrazio per il tempo dedicato al nostro incontro. È stato un confronto utile; "
          "Le scriverò a breve sui punti di cui abbiamo parlato.\n\n"
          "Cordiali saluti,\n{my_name}\n",
    "nl": "{greeting}\n\n"
          "Hartelijk dank voor uw tijd tijdens ons gesprek. Ik vond het een prettig overleg "
          "en kom bij u terug op de punten die we hebben besproken.\n\n"
          "Met vriendelijke groet,\n{my_name}\n",
    "pt": "{greeting}\n\n"
          "Agradeço o tempo dedicado à nossa reunião. Foi uma conversa muito proveitosa; "
          "retomo em breve os pontos que discutimos.\n\n"
          "Atenciosamente,\n{my_name}\n",
    "sv": "{greeting}\n\n"
          "Tack för att du tog dig tid till vårt möte. Det var ett givande samtal, och jag "
          "återkommer om det vi pratade om.\n\n"
          "Vänliga hälsningar\n{my_name}\n",
}

BUILTIN = {"gentle": GENTLE, "thanks": THANKS}

# -- the greeting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    """How a language greets someone: by first name; by title and surname (per the
    grammatical gender the title gives: "m", "f", or "" when none); or with no name."""

    first: str
    titled: dict[str, str]
    none: str
    civil: dict[str, str]  # this language's Mr/Ms: a civil title is greeted in the greeting's
    civil_with_academic: bool = False  # "Frau Dr. Weiß" (else the academic title alone)
    academic: bool = True  # academic titles are used in greetings
    feminine: dict[str, str] | None = None  # an academic title's form for a woman: Dr. -> Dra.


def _same(text: str) -> dict[str, str]:
    return {"m": text, "f": text, "": text}


GREETINGS = {
    "en": Greeting("Hi {first},", _same("Hello {title} {last},"), "Hi there,",
                   {"m": "Mr", "f": "Ms", "": "Mx"}),
    # Guten Tag for Herr/Frau (as careful as Sehr geehrte, less stiff); Hallo with a first
    # name, as people write who sign with theirs.
    "de": Greeting("Hallo {first},", _same("Guten Tag {title} {last},"), "Guten Tag,",
                   {"m": "Herr", "f": "Frau"}, civil_with_academic=True),
    # A French salutation never abbreviates Madame/Monsieur, and leaves academic titles out.
    "fr": Greeting("Bonjour {first},", _same("Bonjour {title} {last},"), "Bonjour,",
                   {"m": "Monsieur", "f": "Madame"}, academic=False),
    # Spanish greets with a colon.
    "es": Greeting("Hola, {first}:", {"m": "Estimado {title} {last}:", "f": "Estimada {title} {last}:",
                                       "": "Buenos días, {title} {last}:"}, "Buenos días:",
                   {"m": "Sr.", "f": "Sra."}, feminine={"dr": "Dra."}),
    # Gentile is the courteous form for first names and titles alike; Ciao would be "tu".
    "it": Greeting("Gentile {first},", _same("Gentile {title} {last},"), "Buongiorno,",
                   {"m": "Sig.", "f": "Sig.ra"}),
    "nl": Greeting("Beste {first},", _same("Geachte {title} {last},"), "Goedendag,",
                   {"m": "heer", "f": "mevrouw"}),
    "pt": Greeting("Olá, {first},", {"m": "Caro {title} {last},", "f": "Cara {title} {last},",
                                      "": "Olá, {title} {last},"}, "Olá,",
                   {"m": "Sr.", "f": "Sra."}, feminine={"dr": "Dra."}),
    # Swedish business mail greets everyone by first name: no titles.
    "sv": Greeting("Hej {first},", _same("Hej {title} {last},"), "Hej,", {}, academic=False),
}

# Titles as people put them in their display names (lower case, without a final dot):
# the gender a greeting's grammar needs ("" for none), and whether it is a civil title
# (Herr, Mme) rather than an academic or professional one (Dr., Ing.).
TITLES: dict[str, tuple[str, bool]] = {
    **dict.fromkeys(("mr", "herr", "m", "monsieur", "sr", "señor", "senhor", "sig", "signor",
                     "dhr", "heer", "meneer", "sir"), ("m", True)),
    **dict.fromkeys(("mrs", "ms", "miss", "frau", "mme", "madame", "mlle", "mademoiselle", "sra",
                     "srta", "señora", "senhora", "sig.ra", "signora", "mevr", "mw", "mevrouw",
                     "dona", "dame"), ("f", True)),
    **dict.fromkeys(("mx",), ("", True)),
    **dict.fromkeys(("dr", "prof", "ing", "dipl.-ing", "avv", "arch", "mag", "ir", "drs", "eng",
                     "lic", "dr.-ing"), ("", False)),
    **dict.fromkeys(("dott", "dr.ssa"), ("m", False)),
    **dict.fromkeys(("dott.ssa", "dra", "prof.ssa", "dr.in", "profa"), ("f", False)),
}
# Letters after a name that are not part of it.
SUFFIXES = frozenset("phd ph.d. mba md m.d. jr jr. msc m.sc. bsc esq esq.".split())

# -- the quote, {date} and {weekday} --------------------------------------------------------

# The line above the quoted original, as the language's mail clients write it.
ATTRIBUTION = {
    "en": "On {wd}, {dd} {mon} {yyyy} at {hm}, {who} wrote:",
    "de": "Am {dd}.{mm}.{yyyy} um {hm} schrieb {who}:",
    "fr": "Le {dd}/{mm}/{yyyy} à {hm}, {who} a écrit :",
    "es": "El {dd}/{mm}/{yyyy} a las {hm}, {who} escribió:",
    "it": "Il {dd}/{mm}/{yyyy} alle {hm}, {who} ha scritto:",
    "nl": "Op {dd}-{mm}-{yyyy} om {hm} schreef {who}:",
    "pt": "Em {dd}/{mm}/{yyyy}, às {hm}, {who} escreveu:",
    "sv": "Den {yyyy}-{mm}-{dd} kl. {hm} skrev {who}:",
}

MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre "
          "dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
    "sv": "januari februari mars april maj juni juli augusti september oktober november december",
}
WEEKDAYS = {  # Monday first
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",
    "pt": "segunda-feira terça-feira quarta-feira quinta-feira sexta-feira sábado domingo",
    "sv": "måndag tisdag onsdag torsdag fredag lördag söndag",
}
DAY_AND_MONTH = {"en": "{d} {month}", "de": "{d}. {month}", "fr": "{d} {month}",
                 "es": "{d} de {month}", "it": "{d} {month}", "nl": "{d} {month}",
                 "pt": "{d} de {month}", "sv": "{d} {month}"}
