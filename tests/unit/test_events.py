"""The envelope: the three forms of ``time``, and what makes a delivery unacceptable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cmdb_sync.errors import BadDelivery
from cmdb_sync.events import parse_envelope, scrub_nul
from cmdb_sync.times import parse_event_time


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1734232981572, datetime(2024, 12, 15, 3, 23, 1, 572000, tzinfo=UTC)),
        ("1734232981572", datetime(2024, 12, 15, 3, 23, 1, 572000, tzinfo=UTC)),
        ("2024-07-29T06:50:25.480+00:00", datetime(2024, 7, 29, 6, 50, 25, 480000, tzinfo=UTC)),
        ("2024-07-29T06:50:25.480Z", datetime(2024, 7, 29, 6, 50, 25, 480000, tzinfo=UTC)),
        ("2024-07-29T14:50:25.480+08:00", datetime(2024, 7, 29, 6, 50, 25, 480000, tzinfo=UTC)),
        ("2024-07-29T06:50:25.480999+00:00", datetime(2024, 7, 29, 6, 50, 25, 480000, tzinfo=UTC)),
        ("2024-07-28T22:50:25-08:00", datetime(2024, 7, 29, 6, 50, 25, tzinfo=UTC)),
    ],
)
def test_event_time_forms_become_utc_milliseconds(given: object, expected: datetime) -> None:
    assert parse_event_time(given) == expected


@pytest.mark.parametrize("given", ["2024-07-29T06:50:25", "yesterday", None, True, [1], 10**20])
def test_event_time_rejects_what_has_no_instant(given: object) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_event_time(given)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b'{"objectKind": "App"}', "id"),
        (b'{"id": "", "objectKind": "App"}', "id"),
        (b'{"id": {"x": 1}, "objectKind": "App"}', "id"),
        (b'{"id": "e1"}', "objectKind"),
        (b'{"id": "e1", "objectKind": 7}', "objectKind"),
    ],
)
def test_unacceptable_deliveries_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadDelivery) as info:
        parse_envelope({}, raw)
    assert info.value.extra["field"] == field
    assert str(info.value).startswith(field)


def test_header_kind_must_match_object_kind() -> None:
    with pytest.raises(BadDelivery) as info:
        parse_envelope({"x-appstack-event": "Env"}, b'{"id": "e1", "objectKind": "App"}')
    assert info.value.extra["field"] == "X-AppStack-Event"


def test_bad_time_is_kept_for_the_journal_not_refused() -> None:
    envelope, _ = parse_envelope({}, b'{"id": "e1", "objectKind": "App", "time": "soon"}')
    assert envelope.time is None
    assert envelope.time_error is not None and "soon" in envelope.time_error


def test_numeric_id_is_accepted_as_text() -> None:
    envelope, _ = parse_envelope({}, b'{"id": 42, "objectKind": "App", "time": 1}')
    assert envelope.id == "42"


def test_scrub_nul_replaces_in_keys_and_nested_values() -> None:
    assert scrub_nul({"a\x00": ["x\x00y", {"k": "\x00"}], "n": 1}) == {"a\ufffd": ["x\ufffdy", {"k": "\ufffd"}], "n": 1}


def test_epoch_milliseconds_go_to_a_time_and_back_exactly() -> None:
    """Through a float, about one time in a hundred came back a millisecond early (backfill turns
    the API's ISO times into epoch milliseconds with it)."""
    import random

    from cmdb_sync.times import from_epoch_ms, to_epoch_ms

    chosen = random.Random(7)
    times = [chosen.randrange(-(10**13), 10**13) for _ in range(5000)] + [1699999999994, 0, -1]
    assert [to_epoch_ms(from_epoch_ms(ms)) for ms in times] == times
