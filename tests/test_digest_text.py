"""The digest's words, from plain facts (core.digest, no server)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from nudger.core.digest import DigestInput, Item, compose_digest
from nudger.core.record import Addr

BERLIN = ZoneInfo("Europe/Berlin")


def text(now: datetime, nudged: int, replied: int) -> str:
    d = DigestInput("work", Addr("Mia", "mia@example.com"), now.date(), now, BERLIN,
                    waiting=(Item("Quote", "bob@client.example", now),), nudged=nudged, replied=replied)
    msg = compose_digest(d, "<d@example.com>")
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_the_reply_rate_counts_threads_in_words() -> None:
    morning = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)  # 08:30 in Berlin
    assert "Reply rate: 1 of 1 thread answered after a follow-up (100%)." in text(morning, 1, 1)
    assert "Reply rate: 2 of 5 threads answered after a follow-up (40%)." in text(morning, 5, 2)
    assert "No follow-up has been sent in the look-back window yet." in text(morning, 0, 0)


def test_the_greeting_is_that_of_the_hour_the_digest_is_sent() -> None:
    day = date(2026, 11, 30)
    for hour, greeting in ((8, "Good morning,"), (14, "Good afternoon,"), (19, "Good evening,")):
        now = datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)
        assert text(now, 0, 0).startswith(greeting + "\n")
