"""What the header parser on the second core answers (cycle/parse_helper.py), as its parent
unpickles it: the records the in-process parse gives, warnings and all, and their rows."""

from __future__ import annotations

import pickle

from nudger.core.record import MessageRecord
from nudger.cycle.parse_helper import Fields, answer, parse_fetched
from nudger.cycle.rows import row_of
from support.mail import ME, NOW, message


def _fields() -> list[Fields]:
    mails = [
        message("a1@me.example", to="Bob <bob@client.example>", cc="Carol <carol@client.example>"),
        message("b1@client.example", sender="Bob <bob@client.example>", to=ME, reply_to="a1@me.example",
                subject="Re: Proposal"),
        b"From: " + ME.encode() + b"\r\nTo: Bob <bob@client.example>\r\nSubject: No id\r\n"
        b"Date: the day after tomorrow\r\n\r\n",
        b"\xff\xfe not a header at all",
        message("a2@me.example", to="Bob <bob@client.example>", subject="Second"),
    ]
    return [(uid, raw.split(b"\r\n\r\n")[0].split(b"\n\n")[0] + b"\r\n\r\n", NOW, ("\\Seen",), 7, len(raw))
            for uid, raw in enumerate(mails, start=1)]


def test_the_answer_unpickled_is_the_in_process_parse_with_its_rows() -> None:
    fields = _fields()
    outcomes, rows = pickle.loads(pickle.dumps(answer("Sent", fields), pickle.HIGHEST_PROTOCOL))
    here = [parse_fetched("Sent", f) for f in fields]
    assert outcomes == here
    assert [o.warnings if isinstance(o, MessageRecord) else o for o in outcomes] == \
        [o.warnings if isinstance(o, MessageRecord) else o for o in here]
    assert any(o.warnings for o in outcomes if isinstance(o, MessageRecord))  # (the test's point)
    assert rows == [row_of(o) if isinstance(o, MessageRecord) else None for o in here]


def test_a_batch_shares_its_addresses_across_the_pipe() -> None:
    outcomes, _ = pickle.loads(pickle.dumps(answer("Sent", _fields()), pickle.HIGHEST_PROTOCOL))
    ours = [o for o in outcomes if isinstance(o, MessageRecord) and o.sender.email == ME]
    assert len(ours) == 3
    assert ours[0].sender is ours[1].sender is ours[2].sender
    assert ours[0].to[0] is ours[2].to[0]  # (Bob, each time)
