"""Snapshots whose write is left to a newer one of the same object later in the same input."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

Key = tuple[Any, ...]
Order = tuple[datetime, str]  # an event's (time, id): the order in which snapshots win
Object = tuple[str, Key]  # a kind, and an object's key within it
Deferred = tuple[Order, str]  # a deferred winner's (time, id), and the id of the newer event it waits for

# Objects a lane defers at once, at most: past it, winners are written as they come. About 800
# bytes an object (a first, heavier bookkeeping with up to ~12,000 in each of the bench import's
# two lanes took its processes 34 MiB larger in all, over the 300 MB target).
DEFERRED_AT_MOST = 8_000


class Deferral:
    """Writes left to a later event, for a caller that knows its whole input ahead (``import`` of a
    file: ``archive.survey``). A year of history is mostly snapshots that a newer one of the same
    object overwrites later in the same file; one by one, each is applied and then overwritten.
    Measured on the bench journal (200,000 events, 120,566 of them overwritten later in the file),
    nine imports alternated with and without: PostgreSQL's CPU a fifth to a third less, wall time
    within the noise (the lanes' Python stays: callgrind puts the rows not written at ~1.4% of a
    lane's instructions; parsing and validating every snapshot is the rest); on a journal 72%
    overwritten, 11% and 24% less time.

    ``later`` maps an event id to the id of the newer event of its object that comes after it. A
    winner in ``later`` is applied (its status, its version, its place in the order are those of
    one-by-one processing: what is held for its object counts it) but not written; it is written
    after all when that newer event has come and did not write the object (it failed, it was a
    duplicate, it named another object: ``due``), and at the end of the input (what is still
    ``pending``). A write of the object settles it: a newer snapshot is in place. What a batch
    defers or settles counts only once its transaction committed (``attempt``, then ``commit``;
    ``saved`` and ``restore`` around a savepoint).

    Kept by the caller across its transactions (an import's lane), handed to the batch projector
    (``batch.write``), which asks it what is held (``held``), what to write now (``defer``), and
    tells it what it wrote (``wrote``)."""

    def __init__(self) -> None:
        self.later: dict[str, str] = {}
        self.pending: dict[Object, Deferred] = {}
        self._waiting: dict[str, list[Object]] = {}  # by the id they wait for
        self._deferred: dict[Object, Deferred] = {}
        self._settled: set[Object] = set()

    def attempt(self) -> None:
        """A transaction begins: what an earlier attempt deferred or settled did not happen."""
        self._deferred, self._settled = {}, set()

    def saved(self) -> tuple[dict[Object, Deferred], set[Object]]:
        """What this attempt deferred and settled so far, for ``restore`` when a savepoint rolls back."""
        return dict(self._deferred), set(self._settled)

    def restore(self, saved: tuple[dict[Object, Deferred], set[Object]]) -> None:
        self._deferred, self._settled = dict(saved[0]), set(saved[1])

    def commit(self) -> None:
        """The attempt's transaction committed: what it deferred and settled stands."""
        for object_ in self._settled:
            self._drop(object_)
        for object_, deferred in self._deferred.items():
            self._drop(object_)
            self.pending[object_] = deferred
            self._waiting.setdefault(deferred[1], []).append(object_)
        self.attempt()

    def _drop(self, object_: Object) -> None:
        deferred = self.pending.pop(object_, None)
        if deferred is not None:
            waiting = self._waiting[deferred[1]]
            waiting.remove(object_)
            if not waiting:
                del self._waiting[deferred[1]]

    def held(self, kind: str, key: Key, current: Any) -> Any:
        """What is held for an object, counting a version applied but deferred."""
        deferred = self._deferred.get((kind, key)) or self.pending.get((kind, key))
        if deferred is None or (current is not None and current[0] is not None and current >= deferred[0]):
            return current
        return deferred[0]

    def defer(self, kind: str, winners: dict[Key, Any]) -> dict[Key, Any]:
        """The winners to write now; the others are deferred."""
        now = {}
        room = DEFERRED_AT_MOST - len(self.pending) - len(self._deferred)
        for key, item in winners.items():
            until = self.later.get(item.envelope.id)
            if until is None or (room <= 0 and (kind, key) not in self.pending):
                now[key] = item
            else:
                self._deferred[(kind, key)] = (item.version, until)
                room -= 1
        return now

    def wrote(self, kind: str, keys: Iterable[Key]) -> None:
        for key in keys:
            self._settled.add((kind, key))
            self._deferred.pop((kind, key), None)

    def due(self, arrived: Iterable[str]) -> list[str]:
        """The deferred events whose newer event has ``arrived`` without writing their object: they
        are to be written now (then ``settled``)."""
        return [self.pending[o][0][1] for event_id in arrived for o in self._waiting.get(event_id, ())]

    def settled(self, event_ids: Iterable[str]) -> None:
        """The deferred ``event_ids`` were written (or found overwritten: the guard refused them).
        Rare (most deferred events are settled by a newer write): a walk of what is pending."""
        written = set(event_ids)
        for object_ in [o for o, deferred in self.pending.items() if deferred[0][1] in written]:
            self._drop(object_)
