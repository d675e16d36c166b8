"""Concurrent writers: transactions racing on one object, and two server processes on one PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cmdb_sync.ingest import ingest
from cmdb_sync.models import Env, EnvLabel, Event
from tests.conftest import WEBHOOK_TOKEN
from tests.helpers import env_event, raw


def race(session_factory, events) -> list[str]:
    """Ingest all events at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(events))

    def run(event):
        barrier.wait()
        return ingest(session_factory, event["headers"], raw(event)).status

    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(run, events))


def test_concurrent_conflicting_events_end_in_the_newest(session_factory) -> None:
    for round_ in range(8):
        events = [
            env_event("Update", 10_000 * round_ + t, description=f"r{round_}t{t}", labels={"t": str(t)})
            for t in (5, 1, 4, 2, 3)
        ]
        statuses = race(session_factory, events)
        assert statuses.count("applied") >= 1
        with session_factory() as session:
            env = session.scalars(select(Env).where(Env.name == "prod")).one()
            labels = session.execute(select(EnvLabel.name, EnvLabel.value).where(EnvLabel.env_id == env.id)).all()
        assert env.description == f"r{round_}t5"
        assert labels == [("t", "5")]  # the children of the winning snapshot, and only them


def test_concurrent_duplicates_apply_once(session_factory) -> None:
    event = env_event("Create", 1000)
    statuses = race(session_factory, [event] * 4)
    assert sorted(statuses) == ["applied", "duplicate", "duplicate", "duplicate"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(base: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} never became ready")


@pytest.fixture
def two_servers(databases, tmp_path: Path):
    url = databases.fresh("postgresql")
    env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url, "CMDB_SYNC_WEBHOOK_TOKENS": WEBHOOK_TOKEN}
    cli = [sys.executable, "-m", "cmdb_sync", "serve", "--migrate"]
    processes, bases = [], []
    for _ in range(2):
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [*cli, "--port", str(port)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
        _wait_ready(bases[-1], processes[-1], time.monotonic() + 30)
    try:
        yield url, bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_two_server_processes_on_one_postgresql_converge(two_servers) -> None:
    url, bases = two_servers
    events = [env_event("Update", 1000 + t, description=f"t{t}") for t in range(20)]
    order = list(reversed(events))

    def post(indexed):
        index, event = indexed
        headers = {**event["headers"], "X-AppStack-Token": WEBHOOK_TOKEN}
        response = httpx.post(f"{bases[index % 2]}/webhooks/appstack", content=raw(event), headers=headers, timeout=30)
        return response.status_code, response.json()["status"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, enumerate(order + order)))  # every event twice, once to each server
    assert all(code == 200 for code, _ in answers)
    statuses = [status for _, status in answers]
    assert statuses.count("duplicate") == 20
    from cmdb_sync.db import make_engine, make_session_factory

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            env = session.scalars(select(Env)).one()
            journal = session.scalar(select(func.count()).select_from(Event))
    finally:
        engine.dispose()
    assert env.description == "t19"
    assert journal == 20


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_processes_receiving_one_shuffled_set_with_duplicates_end_in_the_sorted_state(
    two_servers, databases, seed
) -> None:
    import random

    from cmdb_sync import migrate
    from cmdb_sync.db import Database
    from cmdb_sync.ingest import ingest
    from tests.helpers import app_event, dump_state, orchestration_event, variable_group_event

    rng = random.Random(seed)
    makers = [
        lambda t: env_event(
            rng.choice(["Create", "Update", "Delete"]), t, name=f"e{rng.randrange(3)}", labels={"s": str(t)}
        ),
        lambda t: variable_group_event("Update", t, name=f"v{rng.randrange(2)}", values={"k": str(t)}),
        lambda t: orchestration_event(rng.choice(["Update", "Delete"]), t, message=str(t)),
        lambda t: app_event(rng.choice(["Update", "Delete", "Create"]), t, description=str(t)),
    ]
    events = [rng.choice(makers)(rng.randrange(1000, 1100)) for _ in range(60)]  # ties in time are common
    delivered = events + rng.sample(events, 20)
    rng.shuffle(delivered)
    url, bases = two_servers

    def post(indexed):
        index, event = indexed
        headers = {**event["headers"], "X-AppStack-Token": WEBHOOK_TOKEN}
        return httpx.post(
            f"{bases[index % 2]}/webhooks/appstack", content=raw(event), headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, enumerate(delivered))) <= {200, 202}

    reference = databases.fresh("postgresql")
    migrate.upgrade(reference)
    with Database.open(reference) as sorted_run, Database.open(url) as served:
        for event in sorted(events, key=lambda e: (e["body"]["time"], e["body"]["id"])):
            ingest(sorted_run.sessions, event["headers"], raw(event))
        assert dump_state(served.engine) == dump_state(sorted_run.engine)


@pytest.mark.postgres_only
def test_two_writers_creating_each_others_apps_do_not_deadlock(databases) -> None:
    """Two import lanes: one has app A's own App event and an env of app B (implied), the other
    B's App event and an env of A. Each creates both apps; created in two statements (its App
    event's first) they locked them in opposite orders and deadlocked now and then."""
    from sqlalchemy.exc import DBAPIError

    from cmdb_sync import migrate
    from cmdb_sync.db import make_engine
    from cmdb_sync.events import parse_envelope
    from cmdb_sync.projections.batch import project
    from tests.helpers import app_event

    def envelopes(own: str, other: str, time: int) -> list:
        events = [app_event("Create", time, name=own), env_event("Create", time, app=other)]
        return [parse_envelope(event["headers"], raw(event))[0] for event in events]

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=2)
    deadlocks = []

    def write(batch: list, barrier: threading.Barrier, round_: int) -> None:
        barrier.wait()
        try:
            with engine.begin() as conn:
                project(conn, batch)
                time.sleep(0.002)  # both hold what they wrote for a moment
        except DBAPIError as exc:
            if "deadlock" in str(exc.orig):
                deadlocks.append(round_)

    for round_ in range(40):
        a, b = f"a{round_}", f"b{round_}"
        batches = [envelopes(a, b, 1000 + round_), envelopes(b, a, 1000 + round_)]
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, batches, [barrier] * 2, [round_] * 2))
    with engine.connect() as conn:
        envs = conn.scalar(select(func.count()).select_from(Env))
    engine.dispose()
    assert deadlocks == []
    assert envs == 80
