"""A first cycle's evaluation on two cores: a forked copy of this process judges the later
part of the threads while this one judges the earlier part.

Judging every thread of a big window is pure, CPU-bound and done one thread at a time:
on the bench's heavy account, 7k threads and a fifth of the first cycle, with the second
core idle. A fork shares what the sync left in memory as it is, so only the answers
cross over, pickled; the records they hold cross as their address alone (both sides
have them there). The answers come back in the order asked: the result is the one that
judging them all here gives.

Only where forking is sound: a process with no other thread (``run --once``, a dry run;
never the service, whose accounts each have a thread that a fork would copy mid-step),
on a system where a forked Python may run on without exec (not macOS). A child that
fails or dies costs only time: its part is judged here. It is reaped by its PID, and
killed first if this process stops early.
"""

from __future__ import annotations

import copyreg
import gc
import io
import logging
import mmap
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

# Work weighed at least this much (records, for groups of them) for a fork to pay: it
# costs a few milliseconds and the answers' pickling, which a small evaluation does not
# win back (measured: the 100k account's 2.8k records, 0.08 -> 0.04 s to judge; the
# heavy account's 20k, 0.48 -> 0.29 s).
FORK_FROM = 1500
# This process's share of the work: the child's answers are pickled there and read here,
# about a tenth of what making them costs (measured on the heavy account's threads).
HERE = 0.55


def can_fork() -> bool:
    """Whether a fork of this process is sound here (see the module's text)."""
    return hasattr(os, "fork") and sys.platform != "darwin" and threading.active_count() == 1


def map_split(work: Callable[[_T], _R], items: Sequence[_T], weight: Callable[[_T], int],
              shared: Callable[[_T], Iterable[object]] = lambda item: ()) -> list[_R]:
    """``[work(i) for i in items]``, the later part done in a forked child when the items
    weigh ``FORK_FROM`` or more and forking is sound. ``work`` must be pure: what the
    child does is lost but what it returns, which must pickle.

    ``shared``: objects of an item that the answers may hold (a group's records). They
    come back as this process's own objects, not as copies."""
    weights = [weight(i) for i in items]
    total = sum(weights)
    if len(items) < 2:
        return [work(i) for i in items]
    cut, so_far = 1, weights[0]
    while cut < len(items) - 1 and so_far + weights[cut] <= total * HERE:
        so_far += weights[cut]
        cut += 1
    head, tail = items[:cut], items[cut:]
    ahead = Ahead.start(lambda: [work(i) for i in tail], (o for i in items for o in shared(i)), total)
    if ahead is None:
        return [work(i) for i in items]
    try:
        done = [work(i) for i in head]
        got = ahead.take()
    finally:
        ahead.drop()
    if not isinstance(got, list) or len(got) != len(tail):
        got = [work(i) for i in tail]
    return done + got


class Ahead(Generic[_R]):
    """Work started now in a forked child, its answer taken later; or dropped, the child
    stopped, if it is not wanted after all. Either way, the child is reaped by its PID."""

    def __init__(self, pid: int, read_end: int, known: dict[int, object]):
        self.pid, self.read_end, self.known = pid, read_end, known
        self.taken = False

    @classmethod
    def start(cls, work: Callable[[], _R], shared: Iterable[object] = (),
              weight: int = FORK_FROM) -> Ahead[_R] | None:
        """``work()`` begun in a forked child, if it weighs enough (``FORK_FROM``), forking
        is sound here (``can_fork``) and the system allows one more process; else None.
        ``work`` must be pure; ``shared``: objects its answer may hold, which come back as
        this process's own, not as copies."""
        if weight < FORK_FROM or not can_fork():
            return None
        # By address: the child holds these objects as this process does, so no object
        # made there can take an address of theirs.
        known = {id(o): o for o in shared}
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:  # (out of processes or memory: done here instead)
            os.close(read_end)
            os.close(write_end)
            log.debug("no fork for work on the second core: %s", exc)
            return None
        if pid == 0:
            _child(work, known, read_end, write_end)  # (never returns)
        os.close(write_end)
        return cls(pid, read_end, known)

    def take(self) -> _R | None:
        """The child's answer, once it is done; None if it failed (or this was dropped)."""
        if self.taken:
            return None
        self.taken = True
        try:
            got = _answer(self.read_end, self.known)
        finally:
            os.close(self.read_end)
            _reap(self.pid, kill=False)
        if got is None:
            log.debug("the work forked (PID %d) gave no answer: it is done here", self.pid)
        return got  # type: ignore[return-value]  # (the work says what it returns)

    def drop(self) -> None:
        """Stop the child if its answer was not taken (kill, then reap)."""
        if not self.taken:
            self.taken = True
            os.close(self.read_end)
            _reap(self.pid, kill=True)


class Meeting:
    """Where a child working through a list from the front, and this process on its own
    part (once it is free), meet: the child tells how far it got, this process where it
    stops. Memory they share (an anonymous map stays shared across a fork); each number
    has one writer, and a torn read can only stop the child early, which its answer shows
    (it holds what was done) and the taker makes up."""

    _ALL = 0xFFFFFFFF

    def __init__(self) -> None:
        self.board = mmap.mmap(-1, 8)
        struct.pack_into("=II", self.board, 0, 0, self._ALL)  # (done, stop)

    def done(self, count: int) -> None:
        """The child's: ``count`` items done."""
        struct.pack_into("=I", self.board, 0, count)

    def stopped(self, index: int) -> bool:
        """The child's: whether item ``index`` is where it must stop."""
        return index >= struct.unpack_from("=I", self.board, 4)[0]

    def split(self, count: int, share: float = HERE) -> int:
        """This process's: where the child stops, of ``count`` items: past what it did, by
        its part of what is left; this process takes the rest, from there to the end."""
        done = min(struct.unpack_from("=I", self.board, 0)[0], count)
        stop = done + round((count - done) * (1 - share))
        struct.pack_into("=I", self.board, 4, stop)
        return stop


def _child(work: Callable[[], _R], known: dict[int, object], read_end: int, write_end: int) -> None:
    """In the forked child: do the work, write the answer, and end without unwinding
    the parent's stack (its finally blocks, atexit and buffered output are the parent's)."""
    code = 1
    try:
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # (the parent hears it too, and reaps this)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.disable()  # (it ends in a moment: nothing worth collecting)
        answer = work()
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _by_address(known)
        pickler.dump(answer)
        view = out.getbuffer()
        while view:
            view = view[os.write(write_end, view):]
        code = 0
    except BaseException:  # noqa: BLE001, S110 - whatever it was, the parent does the work itself
        pass
    finally:
        os._exit(code)


def _answer(read_end: int, known: dict[int, object]) -> object | None:
    """What the child wrote, unpickled; None if it wrote nothing whole (it died) or garbage."""
    chunks = []
    while chunk := os.read(read_end, 1 << 20):
        chunks.append(chunk)
    try:
        return _Unpickler(io.BytesIO(b"".join(chunks)), known).load()
    except Exception:  # noqa: BLE001 - cut short (it died) or garbled: done here
        return None


def _shared(address: int) -> object:
    """What an answer holds in place of a shared object; ``_Unpickler`` reads it as this
    process's own object (so this is never called: it only names the step)."""
    raise pickle.UnpicklingError(f"a shared object (at {address:#x}) outside a fork's answer")


def _by_address(known: dict[int, object]) -> dict[type, Callable[[Any], Any]]:
    """A pickler's table: a shared object as ``_shared(address)``, others as ever (only
    the shared objects' types pay for the look)."""

    def reduce(obj: Any) -> Any:
        if known.get(id(obj)) is obj:
            return _shared, (id(obj),)
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)

    return {**copyreg.dispatch_table, **{type(o): reduce for o in known.values()}}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, known: dict[int, object]):
        super().__init__(file)
        self.known = known

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _shared.__name__:
            return self.known.__getitem__
        return super().find_class(module, name)


def _reap(pid: int, kill: bool) -> None:
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)
