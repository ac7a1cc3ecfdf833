"""A big sync's headers parsed on the second core, in a helper process (parse_helper.py).

Parsing headers is pure and CPU-bound, and on a first cycle it is most of the sync: the
helper parses the next batches while this process reads the FETCH stream and stores
what is parsed. Answers come back in the order asked. A helper that fails to start, dies,
stalls or answers garbage costs one warning: what it still owed, and all that follows,
is parsed here, so nothing is lost. It is stopped by its PID when the sync ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass

from nudger.core.record import MessageRecord, record_key
from nudger.cycle.parse_helper import FRAME, READY, Fields, Outcome, fields_of, frame, parse_fetched, stamp
from nudger.cycle.rows import Made, Row
from nudger.mail.mailbox import Fetched

log = logging.getLogger(__name__)

# What the helper runs, after sys.executable. -P: not the current directory first on
# its path (python -m puts it there), where a stray struct.py or email.py would run.
COMMAND = ("-P", "-m", "nudger.cycle.parse_helper")
BATCH = 250  # messages sent at a time: the helper starts on a chunk while it is still read
# Bytes moved at a time, and the pipes' size where the system allows (a user's pipes have
# a budget, pipe-user-pages-soft: 64 MiB by default, shared with their session).
PIPE = 256 << 10
# Batches the helper holds: a few, its work while this process stores a chunk (pump()
# sends it more meanwhile). Those not sent yet are parsed here while this process would
# wait: both cores are busy in a big sync, and a batch parsed here is not passed twice
# through the pipes (measured on the bench's heavy account: 16 -> 4, 0.3 s less CPU, the
# same or less time).
AHEAD = 4
STALL = 60.0  # seconds without a byte moving either way: the helper is taken for dead

def _cores() -> int:
    """The CPUs this process may run on (a container's or a unit's share), else the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # (macOS has no such call; a seccomp filter may refuse it)
        return os.cpu_count() or 2


# Helpers at once, in a process: one per spare core. A service whose accounts all start
# their first cycle together must not start one each (200 processes); the others parse
# in their own thread, as a small sync does.
_SLOTS = threading.BoundedSemaphore(max(1, _cores() - 1))


def start_helper(name: str) -> HelperParser | None:
    """A helper for account ``name``'s sync, if a spare core has none; else None."""
    if not _SLOTS.acquire(blocking=False):
        return None
    try:
        return HelperParser(name, slot=True)
    except BaseException:
        _SLOTS.release()
        raise


class HelperGone(Exception):
    """The helper cannot serve (any more); the reason is the message."""


@dataclass(eq=False)
class _Batch:
    folder: str
    items: list[Fetched]
    outcomes: list[Outcome] | None = None  # parsed (over there or here)
    rows: list[Row | None] | None = None  # the records' rows, made over there
    sent: bool = False

    def parse_here(self) -> None:
        self.outcomes = [parse_fetched(self.folder, fields_of(i)) for i in self.items]
        self.rows = [None] * len(self.items)  # (made as they are stored)


class HelperParser:
    """Feed it a folder's fetched messages in order; take their outcomes, in the same
    order, a chunk at a time. While it waits for the helper, this process parses the
    batches the helper has not been sent yet, from the last: both cores stay busy."""

    def __init__(self, name: str, slot: bool = False):
        self.name = name  # the account's, for the warning
        self.slot = slot  # holds one of _SLOTS, given back at close
        self.proc: subprocess.Popen[bytes] | None = None
        self.folder = ""
        self.buffer: list[Fetched] = []  # fed, not yet a batch
        self.batches: deque[_Batch] = deque()  # fed, not taken yet, in order
        self.flight: deque[_Batch] = deque()  # sent, not answered yet (taken or dropped: still due)
        self.done: deque[tuple[Outcome, Row | None]] = deque()  # parsed, not taken yet
        self.out = bytearray()  # written to the helper's pipe as it takes it
        self.got = bytearray()  # read from it, not yet a whole answer
        self.answered = 0  # messages the helper parsed (the rest were parsed here)
        # Until it says so (its imports take a tenth of a second or more), batches are
        # parsed here: none waits in its pipe for a helper not yet reading.
        self.ready = False
        try:
            self.proc = subprocess.Popen([sys.executable, *COMMAND, stamp()], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         close_fds=True)
            assert self.proc.stdin is not None and self.proc.stdout is not None
            for pipe in (self.proc.stdin, self.proc.stdout):
                os.set_blocking(pipe.fileno(), False)
                if hasattr(fcntl, "F_SETPIPE_SZ"):  # (Linux: fewer turns of the pump)
                    try:
                        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE)
                    except OSError:
                        pass
        except OSError as exc:  # (_fail stops one started: never left running)
            self._fail(f"it did not start: {exc}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def feed(self, folder: str, item: Fetched) -> None:
        if self.buffer and folder != self.folder:
            self._batch()
        self.folder = folder
        self.buffer.append(item)
        if len(self.buffer) >= BATCH:
            self._batch()

    def take(self, count: int) -> tuple[list[Outcome], Made]:
        """The outcomes of the next ``count`` messages fed, and the rows made for them."""
        self._batch()
        while len(self.done) < count:
            front = self.batches[0]
            if front.outcomes is None or front.rows is None:
                self._advance()
                continue
            self.batches.popleft()
            self.done.extend(zip(front.outcomes, front.rows, strict=True))
        taken = [self.done.popleft() for _ in range(count)]
        made = {id(o): (o, row) for o, row in taken if row is not None and isinstance(o, MessageRecord)}
        return [o for o, _ in taken], made

    def pump(self, wait: bool = False) -> None:
        """Move the pipes (without waiting, unless asked): called between the steps of
        storing a chunk, so the helper is sent more work before it runs out of the little
        it holds."""
        self._turn(wait)

    def drop(self) -> None:
        """Forget what was fed and not taken (its folder's read was cut short)."""
        self.buffer.clear()
        self.batches.clear()  # (answers still due for them are read and let go)
        self.done.clear()

    def close(self) -> None:
        """Stop the helper, by its PID, and wait for it: never left running."""
        proc, self.proc = self.proc, None
        if self.slot:
            self.slot = False
            _SLOTS.release()
        for batch in self.flight:
            batch.sent = False  # (parsed here if still wanted)
        self.flight.clear()
        if proc is None:
            return
        log.debug("%s: %d headers parsed by the helper (PID %d)", self.name, self.answered, proc.pid)
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # (what was left unwritten to a helper that is gone)
                pass

    # -- sharing the work -------------------------------------------------------------------

    def _batch(self) -> None:
        if self.buffer:
            self.batches.append(_Batch(self.folder, self.buffer))
            self.buffer = []
        self._turn(wait=False)

    def _advance(self) -> None:
        """One step towards the first batch's outcomes: parse the last one nobody has
        (else wait for the helper)."""
        for batch in reversed(self.batches):
            if batch.outcomes is None and (not batch.sent or self.proc is None):
                batch.parse_here()
                self._turn(wait=False)
                return
        self._turn(wait=True)

    def _turn(self, wait: bool) -> None:
        """Move the pipes: answers read, batches sent to keep the helper AHEAD busy."""
        if self.proc is None:
            return
        try:
            for batch in self.batches if self.ready else ():
                if len(self.flight) >= AHEAD:
                    break
                if batch.outcomes is None and not batch.sent:
                    self._send(batch)
            self._pump(wait)
        except (OSError, HelperGone) as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever garbage raises when unpickled
            self._fail(f"it answered garbage ({type(exc).__name__})")

    def _send(self, batch: _Batch) -> None:
        fields: list[Fields] = [fields_of(i) for i in batch.items]
        self.out += frame((batch.folder, fields))
        batch.sent = True
        self.flight.append(batch)

    def _pump(self, wait: bool) -> None:
        """Write what the pipe takes, read what came; with ``wait``, until something moved."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        wfd, rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        poller = select.poll()  # (not select: a service of many accounts has fds past 1024)
        poller.register(rfd, select.POLLIN)
        if self.out:
            poller.register(wfd, select.POLLOUT)
        events = poller.poll(STALL * 1000 if wait else 0)
        if wait and not events:
            raise HelperGone(f"it did not answer for {STALL:.0f} seconds")
        for fd, _ in events:
            if fd == wfd:
                del self.out[:os.write(wfd, self.out[:PIPE])]
                continue
            data = os.read(rfd, PIPE)
            if not data:
                raise HelperGone(f"it ended (exit code {_exit_code(self.proc)})")
            self.got += data
            while len(self.got) >= FRAME.size and len(self.got) >= FRAME.size + (
                    size := FRAME.unpack_from(self.got)[0]):
                answer = pickle.loads(self.got[FRAME.size:FRAME.size + size])
                del self.got[:FRAME.size + size]
                if not self.ready:
                    if answer != READY:
                        raise HelperGone("it answered garbage (not ready)")
                    self.ready = True
                    continue
                batch = self.flight[0]  # (taken off once read whole: else parsed here)
                batch.outcomes, batch.rows = _checked(answer, batch.items)
                self.flight.popleft()
                self.answered += len(batch.items)

    def _fail(self, why: str) -> None:
        log.warning("%s: the header parser on the second core stopped (%s); the rest is "
                    "parsed in the main process", self.name, why)
        self.close()


def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=1.0)  # (its output is closed: it is ending, if not gone yet)
    except subprocess.TimeoutExpired:
        return None


def _checked(answer: object, items: list[Fetched]) -> tuple[list[Outcome], list[Row | None]]:
    """The answer, if it is one outcome and row per message asked, in order."""
    if not (isinstance(answer, tuple) and len(answer) == 2 and all(
            isinstance(part, list) and len(part) == len(items) for part in answer)):
        raise HelperGone("it answered garbage (not one outcome per message)")
    outcomes, rows = answer
    for outcome, row, item in zip(outcomes, rows, items, strict=True):
        if not (isinstance(outcome, str) and row is None
                or isinstance(outcome, MessageRecord) and outcome.uid == item.uid
                and isinstance(row, tuple) and len(row) == 6 and row[0] == record_key(outcome)):
            raise HelperGone(f"it answered garbage (for UID {item.uid})")
    return outcomes, rows
