"""The bookkeeping of snapshots whose write an import leaves to a newer one later in its input."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cmdb_sync.projections import deferral as deferral_module
from cmdb_sync.projections.deferral import Deferral


def winner(event_id: str, ms: int) -> Any:
    return SimpleNamespace(
        envelope=SimpleNamespace(id=event_id), version=(datetime.fromtimestamp(ms / 1000, UTC), event_id)
    )


def test_a_deferred_winner_is_held_once_its_transaction_committed_and_settled_by_a_write() -> None:
    deferral = Deferral()
    deferral.later = {"e-1": "e-9"}
    deferral.attempt()
    now = deferral.defer("Env", {("o", "shop", "prod"): winner("e-1", 1000), ("o", "shop", "qa"): winner("e-2", 1000)})
    assert list(now) == [("o", "shop", "qa")]  # nothing newer of it comes later: written now
    held = deferral.held("Env", ("o", "shop", "prod"), None)
    assert held == winner("e-1", 1000).version  # within the attempt, as after it
    deferral.attempt()  # the transaction was tried again: what the first attempt deferred did not happen
    assert deferral.held("Env", ("o", "shop", "prod"), None) is None
    deferral.defer("Env", {("o", "shop", "prod"): winner("e-1", 1000)})
    deferral.commit()
    older = (datetime(1970, 1, 1, tzinfo=UTC), "e-0")
    assert deferral.held("Env", ("o", "shop", "prod"), older) == winner("e-1", 1000).version
    newer = winner("e-7", 5000).version
    assert deferral.held("Env", ("o", "shop", "prod"), newer) == newer  # another process wrote newer
    assert deferral.due(["e-5"]) == [] and deferral.due(["e-9"]) == ["e-1"]
    deferral.wrote("Env", [("o", "shop", "prod")])
    assert deferral.pending  # not before the write's transaction commits
    deferral.commit()
    assert not deferral.pending and deferral.due(["e-9"]) == []


def test_a_savepoint_rolled_back_takes_back_what_it_deferred() -> None:
    deferral = Deferral()
    deferral.later = {"e-1": "e-9", "e-2": "e-8"}
    deferral.attempt()
    deferral.defer("Env", {("o", "shop", "prod"): winner("e-1", 1000)})
    saved = deferral.saved()
    deferral.defer("Env", {("o", "shop", "qa"): winner("e-2", 1000)})
    deferral.restore(saved)
    deferral.commit()
    assert list(deferral.pending) == [("Env", ("o", "shop", "prod"))]


def test_a_lane_defers_so_many_objects_at_most_then_writes_as_they_come(monkeypatch) -> None:
    monkeypatch.setattr(deferral_module, "DEFERRED_AT_MOST", 2)
    deferral = Deferral()
    deferral.later = {f"e-{n}": "e-99" for n in range(4)}
    deferral.attempt()
    winners = {("o", "shop", f"env-{n}"): winner(f"e-{n}", 1000) for n in range(3)}
    assert list(deferral.defer("Env", winners)) == [("o", "shop", "env-2")]
    deferral.commit()
    # an object already deferred is deferred again (its newer winner takes its place): no more room needed
    assert list(deferral.defer("Env", {("o", "shop", "env-0"): winner("e-3", 2000)})) == []
    deferral.commit()
    assert deferral.pending[("Env", ("o", "shop", "env-0"))][0] == winner("e-3", 2000).version
    deferral.settled(["e-3"])
    assert list(deferral.pending) == [("Env", ("o", "shop", "env-1"))]
