"""The processes batch commands work in, and how their garbage collector is set."""

from __future__ import annotations

import gc

import pytest

from cmdb_sync.lanes import BATCH_COLLECTOR_THRESHOLDS, LaneStopped, Pipe, collecting_rarely, running


def _tell_collector(inbox: Pipe, outbox: Pipe) -> None:
    """A lane's work: say how its collector is set, then wait for the end of the work."""
    outbox.send(("collector", gc.get_threshold(), gc.get_freeze_count()))
    assert inbox.recv() is None


def _fail(inbox: Pipe, outbox: Pipe) -> None:
    msg = "the lane's own words"
    raise ValueError(msg)


def test_a_lane_collects_rarely_and_never_walks_what_it_imported() -> None:
    with running(_tell_collector, [()], name="test") as lanes:
        ((lane, message),) = list(lanes.receive(timeout=60))
        lanes.send(lane, None)
        while lanes.working:
            list(lanes.receive(timeout=60))
    assert message[0] == "collector"
    assert message[1] == BATCH_COLLECTOR_THRESHOLDS != gc.get_threshold()
    assert message[2] > 1000  # the modules it imported, frozen out of the collector's sight


def test_a_lane_that_raises_stops_the_work_with_its_words() -> None:
    with pytest.raises(LaneStopped, match="the lane's own words"), running(_fail, [()], name="test") as lanes:
        while lanes.working:
            list(lanes.receive(timeout=60))


def test_collecting_rarely_gives_the_thresholds_back_even_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collecting_rarely():
        assert gc.get_threshold() == BATCH_COLLECTOR_THRESHOLDS
        raise RuntimeError
    assert gc.get_threshold() == before
