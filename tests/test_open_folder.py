"""A folder nudger keeps open must still show what another client added to it.

An IMAP server shows an open folder's changes from other sessions only when it syncs
it, at a command's end (RFC 3501 5.2, 7.3.1); Dovecot runs a NOOP pipelined before a
SEARCH beside it, so only an EXAMINE in the same write makes the SEARCH current.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nudger.cli import main
from support.dovecot import WEAK_CAPABILITY, Dovecot
from support.harness import by_subject, make_box
from support.mail import NOW, days_ago, message


@pytest.fixture(scope="module")
def no_uidplus(dovecot: Dovecot) -> Iterator[Dovecot]:
    """A server without UIDPLUS: a duplicate draft cannot be removed again, so the
    guard before each APPEND is all that keeps one draft per thread."""
    from conftest import private_server

    with private_server(2, capability=WEAK_CAPABILITY.replace(" UIDPLUS", "")) as server:
        yield server


@pytest.mark.parametrize("server", ["dovecot", "no_uidplus"])
def test_a_draft_another_instance_wrote_while_drafts_was_open_is_not_written_again(
        server: str, request: pytest.FixtureRequest, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from nudger.cycle import drafts

    dovecot: Dovecot = request.getfixturevalue(server)
    box = make_box(dovecot, dovecot.take_user(), tmp_path, capsys, monkeypatch)
    other = tmp_path / "elsewhere.toml"  # a second installation: same mailbox, its own state
    other.write_text(box.config.read_text().replace(str(tmp_path / "state"), str(tmp_path / "elsewhere")))
    for n in (1, 2):
        box.seed("Sent", message(f"open{n}@example.com", sender=box.user, subject=f"Open {n}",
                                 date=days_ago(6)))
    real = drafts.AppendGuard.existing
    asked: list[str] = []  # our guards' nudge IDs (the other instance's are not counted)

    def meanwhile(self: Any, nudge_id: str) -> list[int]:
        # The second draft's guard: Drafts is still open from the first draft's search
        # after its APPEND; the other instance runs now and writes the second draft.
        if len(asked) < 2:
            asked.append(nudge_id)
            if len(asked) == 2:
                assert main(["--config", str(other), "run", "--once", "--now", NOW.isoformat()]) == 0
        return real(self, nudge_id)

    monkeypatch.setattr(drafts.AppendGuard, "existing", meanwhile)
    decisions = by_subject(box.run())
    assert len(asked) == 2
    ids = Counter(d["Message-ID"] for d in box.drafts())
    assert sorted(ids.values()) == [1, 1], ids  # one draft per thread, none twice
    assert {decisions[f"Open {n}"]["action"] for n in (1, 2)} == {"appended", "not-appended"}
    # Not appended and then removed again (with UIDPLUS), nor left twice (without).
    assert "at the same time" not in box.last_err and "twice" not in box.last_err

