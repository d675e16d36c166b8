"""The serve process's writer (``handoff``): workers hand it deliveries over a Unix socket, and the
answers are what one-by-one processing in arrival order gives; a writer that cannot be reached or
goes away is a 503, never an acknowledgement."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from cmdb_sync.errors import BadDelivery, DatabaseUnavailable
from cmdb_sync.handoff import LOST, UNREACHABLE, WRITER_SOCKET_ENV, RemoteWriter, WriterService
from cmdb_sync.ingest import Delivery, ingest, ingest_batch
from tests.conftest import WEBHOOK_TOKEN, _empty_all_tables, make_settings
from tests.helpers import app_event, dump_state, env_event, raw, variable_group_event


@contextmanager
def socket_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="cmdb-handoff-")  # short: a socket path has ~100 bytes
    try:
        yield str(Path(directory) / "writer.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def writer_service(engine) -> Iterator[WriterService]:  # type: ignore[no-untyped-def]
    with socket_path() as path:
        service = WriterService(engine, path)
        service.start()
        try:
            yield service
        finally:
            service.stop()


def stream() -> list[dict]:
    """Creates, updates, deletes and duplicates of a few objects, out of time order."""
    rng = random.Random(9)
    events = [app_event("Create", 100)]
    for i in range(40):
        name = rng.choice(["prod", "staging", "dev"])
        time = rng.randrange(1_000, 50_000)
        if i % 5 == 4:
            events.append(variable_group_event("Update", time, name=f"vars-{i % 3}"))
        else:
            events.append(env_event(rng.choice(["Create", "Update", "Update", "Delete"]), time, name=name))
    return events + rng.sample(events, 8)  # sent again


async def hand_over(writers: list[RemoteWriter], deliveries: list[Delivery]) -> list:
    """Every delivery at once, spread over the writers; each is sent before the next one starts, so
    the writer receives them in this order. The workers close their connections at the end, as a
    worker that stops does."""
    try:
        first = (await asyncio.gather(writers[0].submit(deliveries[0]), return_exceptions=True))[0]
        rest = [
            asyncio.ensure_future(writers[i % len(writers)].submit(delivery))
            for i, delivery in enumerate(deliveries[1:], 1)
        ]
        return [first, *await asyncio.gather(*rest, return_exceptions=True)]
    finally:
        for writer in writers:
            writer.stop()


def test_deliveries_handed_over_answer_and_end_as_one_by_one(engine, session_factory) -> None:
    events = stream()
    one_by_one = [ingest(session_factory, event["headers"], raw(event)).status for event in events]
    expected = dump_state(engine)
    _empty_all_tables(engine)

    with writer_service(engine) as service:
        results = asyncio.run(hand_over([RemoteWriter(service.path)], [Delivery(e["headers"], raw(e)) for e in events]))

    assert [result.status for result in results] == one_by_one
    assert {"applied", "stale", "duplicate"} <= set(one_by_one)
    assert dump_state(engine) == expected


def test_two_workers_handing_over_at_once_end_as_one_by_one(engine, session_factory) -> None:
    """Two workers' deliveries arrive in no order between them: every one is answered, and the
    state is the one-by-one state (the last writer by time wins, whatever the order)."""
    events = stream()
    for event in events:
        ingest(session_factory, event["headers"], raw(event))
    expected = dump_state(engine)
    _empty_all_tables(engine)

    with writer_service(engine) as service:
        workers = [RemoteWriter(service.path), RemoteWriter(service.path)]
        results = asyncio.run(hand_over(workers, [Delivery(e["headers"], raw(e)) for e in events]))

    assert all(result.status in {"applied", "stale", "duplicate"} for result in results)
    assert dump_state(engine) == expected


def test_a_refused_delivery_comes_back_as_the_error_ingest_gives(engine) -> None:
    good = env_event("Create", 1000)
    deliveries = [Delivery(good["headers"], b'{"id": "x", "time": '), Delivery(good["headers"], raw(good))]
    direct = ingest_batch(engine, deliveries[:1])[0]
    assert isinstance(direct, BadDelivery)

    with writer_service(engine) as service:
        refused, accepted = asyncio.run(hand_over([RemoteWriter(service.path)], deliveries))

    assert isinstance(refused, BadDelivery)
    assert (refused.detail, refused.extra) == (direct.detail, direct.extra)
    assert accepted.status == "applied"
    assert [dict(row)["name"] for row in dump_state(engine)["envs"]] == ["'prod'"]


def test_a_stopping_writer_answers_what_workers_sent_before_they_close(engine) -> None:
    """``serve`` stops its workers, then the writer: a worker still waiting for answers gets them."""
    events = [env_event("Create", 1000 + i, name=f"env-{i}") for i in range(30)]

    async def deliver_while_stopping(service: WriterService) -> list:
        worker = RemoteWriter(service.path)
        first = await worker.submit(Delivery(events[0]["headers"], raw(events[0])))  # connected
        pending = [asyncio.ensure_future(worker.submit(Delivery(e["headers"], raw(e)))) for e in events[1:]]
        await asyncio.sleep(0)  # every one sent
        stopping = asyncio.get_running_loop().run_in_executor(None, service.stop)
        results = await asyncio.gather(*pending)
        worker.stop()
        await stopping
        return [first, *results]

    with socket_path() as path:
        service = WriterService(engine, path)
        service.start()
        results = asyncio.run(deliver_while_stopping(service))
    assert [result.status for result in results] == ["applied"] * 30
    assert len(dump_state(engine)["envs"]) == 30


def test_no_writer_to_hand_to_is_a_503(engine) -> None:
    with socket_path() as path:
        with pytest.raises(DatabaseUnavailable) as refused:
            asyncio.run(RemoteWriter(path).submit(Delivery({}, b"{}")))
    assert refused.value.detail == UNREACHABLE


def test_a_writer_that_goes_away_before_answering_is_a_503(engine) -> None:
    with socket_path() as path:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(RemoteWriter(path).submit(Delivery({}, b"{}")))
            accepted, _ = await loop.sock_accept(listener)
            await loop.sock_recv(accepted, 4)  # the delivery arrived; the writer dies before answering
            accepted.close()
            await pending

        listener.setblocking(False)
        with pytest.raises(DatabaseUnavailable) as lost:
            asyncio.run(deliver())
        listener.close()
    assert lost.value.detail == LOST


def test_the_webhook_and_readyz_answer_503_when_the_writer_cannot_be_reached(
    engine, migrated_url, seed, monkeypatch
) -> None:
    delivery = seed["04_Env_Update"]
    with socket_path() as path:
        monkeypatch.setenv(WRITER_SOCKET_ENV, path)
        with TestClient(app=create_app(make_settings(migrated_url))) as client:
            headers = {**delivery["headers"], "X-AppStack-Token": WEBHOOK_TOKEN}
            response = client.post("/webhooks/appstack", headers=headers, content=raw(delivery))
            ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["detail"]) == (503, UNREACHABLE)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == UNREACHABLE
    assert dump_state(engine)["envs"] == []
