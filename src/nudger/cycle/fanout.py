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
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

# Work weighed at least this much (records, for groups of them) for a fork to pay: it
# costs a few milliseconds and the answers' pickling, which a small evaluation does not
# win back (the heavy account's 20k records take 0.4 s to judge here).
FORK_FROM = 4000
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
    if total < FORK_FROM or len(items) < 2 or not can_fork():
        return [work(i) for i in items]
    cut, so_far = 1, weights[0]
    while cut < len(items) - 1 and so_far + weights[cut] <= total * HERE:
        so_far += weights[cut]
        cut += 1
    head, tail = items[:cut], items[cut:]
    # By address: the items hold these objects in the child as here, so no object made
    # there can take an address of theirs.
    known = {id(o): o for i in items for o in shared(i)}
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:  # (out of processes or memory: all judged here)
        os.close(read_end)
        os.close(write_end)
        log.debug("no fork to judge threads on the second core: %s", exc)
        return [work(i) for i in items]
    if pid == 0:
        _child(work, tail, known, read_end, write_end)  # (never returns)
    os.close(write_end)
    got: list[_R] | None = None
    try:
        done = [work(i) for i in head]
        got = _answer(read_end, len(tail), known)
    finally:
        os.close(read_end)
        _reap(pid, kill=got is None)
    if got is None:
        log.debug("the forked judge (PID %d) gave no answer: its threads are judged here", pid)
        got = [work(i) for i in tail]
    return done + got


def _child(work: Callable[[_T], _R], items: Sequence[_T], known: dict[int, object],
           read_end: int, write_end: int) -> None:
    """In the forked child: do the work, write the answers, and end without unwinding
    the parent's stack (its finally blocks, atexit and buffered output are the parent's)."""
    code = 1
    try:
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # (the parent hears it too, and reaps this)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.disable()  # (it ends in a moment: nothing worth collecting)
        answers = [work(i) for i in items]
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _by_address(known)
        pickler.dump(answers)
        view = out.getbuffer()
        while view:
            view = view[os.write(write_end, view):]
        code = 0
    except BaseException:  # noqa: BLE001, S110 - whatever it was, the parent judges these itself
        pass
    finally:
        os._exit(code)


def _answer(read_end: int, count: int, known: dict[int, object]) -> list[_R] | None:
    """The child's answers, if it gave one per item; else None."""
    chunks = []
    while chunk := os.read(read_end, 1 << 20):
        chunks.append(chunk)
    try:
        answer = _Unpickler(io.BytesIO(b"".join(chunks)), known).load()
    except Exception:  # noqa: BLE001 - cut short (it died) or garbled: judged here
        return None
    return answer if isinstance(answer, list) and len(answer) == count else None


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
