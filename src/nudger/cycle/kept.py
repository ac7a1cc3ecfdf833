"""The records a first cycle stored, kept in memory for its evaluation.

A first cycle stores every record of the window, then groups them all into threads:
reading them back from SQLite (a JSON row and a ``from_row`` each) cost as much as the
grouping. ``State`` keeps them here instead while the account's rows are only those of
this cycle, and every write to its messages passes here too, so what is kept is what
the file holds; a write it cannot follow (a rollback, a prune) ends the keeping.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC

from nudger.core.record import MessageRecord, record_key
from nudger.core.threads import Groups

# Records kept at most: about 1.3 kB each (measured on the bench's heavy account: 20k
# records, +25 MB of peak RSS); a larger window is read back from the file as before.
KEPT_CAP = 30_000


class Kept:
    """One account's stored records, in the order of their rows in the file, and their links."""

    def __init__(self, account: str):
        self.account = account
        # (An INSERT OR REPLACE gives the row a new rowid, after every other: the dict's
        # order is the rowid's order, the order an index lists rows of one Message-ID in.)
        self.records: dict[tuple[str, int], MessageRecord] = {}
        # The same records by the id they are threaded by, each list in that order too:
        # kept as they are put, while they are fresh in memory, so that grouping never
        # walks all of them again (measured: a tenth of a first cycle's evaluation).
        self.by_key: dict[str, list[MessageRecord]] = {}
        # (account, child, parent), as stored: like the file's, never dropped with a record
        self.links: list[tuple[str, str, str]] = []
        self.by_topic: dict[str, list[MessageRecord]] = {}  # (in the same order, by topic)

    def put(self, records: list[MessageRecord], links: list[tuple[str, str, str]]) -> bool:
        """Keep these records (replacing those of their folder and UID) and the links they
        made; False: over the cap."""
        for r in records:
            self._pop((r.folder, r.uid))
            self.records[(r.folder, r.uid)] = r
            self.by_key.setdefault(record_key(r), []).append(r)
            self.by_topic.setdefault(r.topic, []).append(r)
        self.links += links
        return len(self.records) <= KEPT_CAP

    def drop(self, folder: str, uids: Iterable[int]) -> None:
        for uid in uids:
            self._pop((folder, uid))

    def forget(self, folder: str) -> None:
        for where in [k for k in self.records if k[0] == folder]:
            self._pop(where)

    def _pop(self, where: tuple[str, int]) -> None:
        old = self.records.pop(where, None)
        if old is not None:
            for index, key in ((self.by_key, record_key(old)), (self.by_topic, old.topic)):
                same = index[key]
                del same[next(i for i, r in enumerate(same) if r is old)]
                if not same:
                    del index[key]

    # What State.topics_of and .ours_by_topic read from the file, from memory: the topics of
    # the user's messages in Sent; on one topic, newest first, and (as the file's index
    # gives them, read backwards) the later stored first among those of one date.

    def ours_since(self, identities: set[str], since: str) -> list[str]:
        """The ids of the user's messages from ``since`` (UTC, ISO 8601) on, in any folder,
        as State.ours_since reads them from the file (in another order)."""
        return list(dict.fromkeys(record_key(r) for r in self.records.values()
                                  if r.sender.email in identities
                                  and r.date.astimezone(UTC).isoformat() >= since))

    def topics_of(self, identities: set[str], sent: str) -> set[str]:
        return {r.topic for r in self.records.values()
                if r.folder == sent and r.sender.email in identities}

    def ours_by_topic(self, topic: str, identities: set[str], before: str, since: str, sent: str,
                      limit: int) -> list[MessageRecord]:
        """``before`` and ``since``: UTC times in ISO 8601, compared as the file's rows are."""
        mine = [(d, r) for r in reversed(self.by_topic.get(topic, ()))
                if r.folder == sent and r.sender.email in identities
                and since <= (d := r.date.astimezone(UTC).isoformat()) < before]
        mine.sort(key=lambda pair: pair[0], reverse=True)  # (stable: the later stored first)
        return [r for _, r in mine[:limit]]

    def groups(self, seeds: Iterable[str], folders: Iterable[str]) -> Iterator[list[MessageRecord]]:
        """What ``State.linked_groups`` reads from the file, from memory: the same groups,
        in the same order, their records in the same order."""
        allowed = set(folders)
        by_key = self.by_key
        links = ((child, parent) for _, child, parent in self.links)
        for ids in seed_groups(links, seeds, sorted(by_key)):
            if records := [r for mid in ids for r in by_key[mid] if r.folder in allowed]:
                yield records


# One account keeps its records at a time, in a process: a service whose 200 accounts
# start their first cycle together would hold them all at once (gigabytes). The others
# read theirs back from the file, as a state with mail does.
_KEEPER = threading.Lock()


def hold() -> Callable[[], None] | None:
    """The keeper's place, if free; returns what gives it back (once, however often called).

    While records are kept, the cyclic collector rests: what a first cycle makes (the
    records, their tuples and dicts) is no garbage, but every object it keeps would be
    walked twice, young and middle-aged, and again each time the heap grew by a quarter
    (measured on a 20k first cycle: 0.1-0.2 s, most of unpickling the helper's records).
    What the cycle drops is freed as ever, by its count of references; cycles of
    garbage wait for the end of the keeping, which the cap bounds."""
    if not _KEEPER.acquire(blocking=False):
        return None
    collecting = gc.isenabled()
    gc.disable()
    held = [True]

    def release() -> None:
        if held.pop() if held else False:
            if collecting:
                if threading.active_count() == 1:
                    # A process of one thread (run --once, a dry run) ends soon: what it
                    # made meanwhile and still holds is frozen, never walked (the first
                    # walk of it took 0.03 s on the heavy account, and found nothing). The
                    # service, whose objects live long, walks them as ever.
                    gc.freeze()
                gc.enable()
            _KEEPER.release()

    return release


def seed_groups(links: Iterable[tuple[str, str]], seeds: Iterable[str],
                stored: Iterable[str]) -> list[list[str]]:
    """The stored ids linked to the seeds, in groups that any chain of links joins: in the
    order of each group's first id among ``stored``, and in that order within each."""
    joined = Groups()
    find, parent, union = joined.find, joined.parent, joined.union
    for child, linked in links:
        union(child, linked)
    number: dict[str, int] = {}
    for seed in seeds:  # (find() puts each seed in ``parent``, links or not)
        number.setdefault(find(seed), len(number))
    groups: dict[int, list[str]] = {}
    # Only the ids of stored messages: most linked ids name mail outside the window.
    for mid in stored:
        if mid in parent and (n := number.get(find(mid))) is not None:
            groups.setdefault(n, []).append(mid)
    return list(groups.values())
