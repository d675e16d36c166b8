"""Faults of the server process itself, on a real ``cmdb-sync serve``: a dead worker is replaced,
workers do not outlive their parent, a taken port is refused, slow clients are cut off.

Run alone: ``.venv/bin/pytest -m faults``. Each test starts its own server on a free loopback port
with a SQLite file of its own, and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import WEBHOOK_TOKEN

pytestmark = pytest.mark.faults

CMDB_SYNC = str(Path(sys.executable).parent / "cmdb-sync")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def answers(base: str, timeout: float = 1) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serving(tmp_path: Path, *, workers: int = 2, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes], int]]:
    port = free_port()
    environment = {
        **os.environ,
        "CMDB_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'faults.db'}",
        "CMDB_SYNC_WEBHOOK_TOKENS": WEBHOOK_TOKEN,
        "CMDB_SYNC_LOG_LEVEL": "WARNING",
        **env,
    }
    process = subprocess.Popen(
        [CMDB_SYNC, "serve", "--port", str(port), "--workers", str(workers)],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"),  # a file: a pipe nobody reads would fill and stall it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(base), 30, "the server answers")
        yield base, process, port
    finally:
        for child in psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []:
            child.kill()
        process.kill()
        process.wait(timeout=10)


def workers_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The serve process's workers: its children but multiprocessing's resource tracker (workers
    are spawned, and spawning starts one)."""
    return [
        child
        for child in psutil.Process(process.pid).children(recursive=True)
        if ("python" in child.name() or child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


def started_workers(tmp_path: Path) -> int:
    return (tmp_path / "serve.log").read_text(errors="replace").count("Started worker")


def test_a_killed_worker_is_replaced_while_the_others_answer(tmp_path) -> None:
    with serving(tmp_path, workers=2, CMDB_SYNC_LOG_LEVEL="INFO") as (base, process, _):
        before = wait_for(lambda: workers_of(process) if len(workers_of(process)) >= 2 else None, 10, "two workers")
        # both serving before one is killed: with the other still starting, nobody would answer
        wait_for(lambda: started_workers(tmp_path) >= 2, 20, "both workers started")
        victim = before[0]
        victim.send_signal(signal.SIGKILL)
        # connections the kernel had queued on the dead worker's listener die with it; once it is
        # gone every request is answered: by the other worker, or, when the kernel hands it to the
        # replacement's listener while that worker is still starting, a little later by it
        psutil.wait_procs([victim], timeout=5)
        served = sum(answers(base, timeout=15) for _ in range(20))
        assert served == 20
        pids = {p.pid for p in before}
        wait_for(lambda: len([w for w in workers_of(process) if w.pid not in pids]) >= 1, 20, "a new worker")
        assert process.poll() is None
        assert answers(base)


def test_workers_exit_when_serve_is_killed(tmp_path) -> None:
    with serving(tmp_path, workers=2) as (base, process, port):
        workers = wait_for(lambda: workers_of(process) if len(workers_of(process)) >= 2 else None, 10, "two workers")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)
        wait_for(
            lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 10, "workers exit"
        )
        assert not answers(base)


def test_serve_refuses_a_port_that_is_taken(tmp_path) -> None:
    with serving(tmp_path, workers=1) as (base, _, port):
        second = subprocess.run(
            [CMDB_SYNC, "serve", "--port", str(port)],
            env={
                **os.environ,
                "CMDB_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}",
                "CMDB_SYNC_WEBHOOK_TOKENS": "x",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert answers(base)


def test_headers_sent_a_byte_at_a_time_are_cut_off(tmp_path) -> None:
    with serving(tmp_path, workers=1, CMDB_SYNC_HEADER_TIMEOUT_SECONDS="1") as (_, _, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            started = time.monotonic()
            closed = False
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 30:
                try:
                    slow.sendall(bytes([byte]))
                    time.sleep(0.2)
                    slow.settimeout(0.01)
                    if slow.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                    break
                finally:
                    slow.settimeout(10)
            assert closed, "the connection stayed open"
            assert time.monotonic() - started < 5


def test_a_body_sent_too_slowly_answers_408(tmp_path) -> None:
    with serving(tmp_path, workers=1, CMDB_SYNC_BODY_TIMEOUT_SECONDS="1") as (_, _, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            head = (
                "POST /webhooks/appstack HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"X-AppStack-Token: {WEBHOOK_TOKEN}\r\nContent-Length: 100\r\n\r\n"
            )
            slow.sendall(head.encode() + b'{"id":')
            started = time.monotonic()
            answer = b""
            while b"\r\n\r\n" not in answer and time.monotonic() - started < 8:
                chunk = slow.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"CMDB_SYNC_BODY_TIMEOUT_SECONDS" in answer or b"problem+json" in answer


# --- kill -9 under load ------------------------------------------------------------------------


def load(count: int) -> list[dict]:
    """Deliveries touching a few objects of one app in shuffled time order, so most conflict."""
    import random

    from tests.helpers import app_event, env_event, variable_group_event

    rng = random.Random(count)
    deliveries = [app_event("Create", 500, event_id="load-app")]
    for i in range(count):
        time = rng.randrange(1_000, 100_000)
        if i % 3:
            deliveries.append(env_event("Update", time, name=f"e{i % 7}", labels={"i": str(i)}, event_id=f"load-{i}"))
        else:
            deliveries.append(
                variable_group_event("Update", time, name=f"v{i % 3}", values={"k": str(i)}, event_id=f"load-{i}")
            )
    return deliveries


def send_all(base: str, deliveries: list[dict], *, during=None) -> set[str]:  # type: ignore[no-untyped-def]
    """Post from 8 threads; the ids acknowledged (200/202). ``during`` runs once a third is sent."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    acknowledged: set[str] = set()
    sent = 0
    lock = threading.Lock()

    def post(delivery: dict) -> None:
        nonlocal sent
        headers = {**delivery["headers"], "X-AppStack-Token": WEBHOOK_TOKEN, "Content-Type": "application/json"}
        try:
            response = httpx.post(
                f"{base}/webhooks/appstack", content=json.dumps(delivery["body"]), headers=headers, timeout=10
            )
            if response.status_code in (200, 202):
                with lock:
                    acknowledged.add(delivery["body"]["id"])
        except httpx.TransportError:
            pass
        with lock:
            sent += 1
            fire = during is not None and sent == len(deliveries) // 3
        if fire:
            during()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, deliveries))
    return acknowledged


def clean_run_state(tmp_path: Path, deliveries: list[dict]):  # type: ignore[no-untyped-def]
    from cmdb_sync import migrate
    from cmdb_sync.db import Database
    from cmdb_sync.ingest import ingest
    from tests.helpers import dump_state, raw

    url = f"sqlite:///{tmp_path / 'clean.db'}"
    migrate.upgrade(url)
    with Database.open(url) as database:
        for delivery in deliveries:
            ingest(database.sessions, delivery["headers"], raw(delivery))
        return dump_state(database.engine)


def journaled_and_state(tmp_path: Path):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from cmdb_sync.db import Database
    from cmdb_sync.models import Event
    from tests.helpers import dump_state

    with Database.open(f"sqlite:///{tmp_path / 'faults.db'}") as database:
        with database.read_sessions() as session:
            statuses = dict(session.execute(select(Event.id, Event.status)).all())
        return statuses, dump_state(database.engine)


@pytest.mark.parametrize("victim", ["a worker", "the serve process"])
def test_kill_9_under_load_loses_no_acknowledged_delivery(tmp_path, victim) -> None:
    deliveries = load(240)
    with serving(tmp_path, workers=2) as (base, process, _):
        workers = wait_for(lambda: workers_of(process) if len(workers_of(process)) >= 2 else None, 10, "two workers")

        def kill() -> None:
            (workers[0] if victim == "a worker" else psutil.Process(process.pid)).send_signal(signal.SIGKILL)

        acknowledged = send_all(base, deliveries, during=kill)
        if victim == "the serve process":  # the kill happened: its workers stop with it
            wait_for(lambda: not answers(base), 10, "the killed server's workers stop")
    journaled, _ = journaled_and_state(tmp_path)
    assert acknowledged, "nothing was acknowledged at all"
    assert acknowledged <= set(journaled), "an acknowledged delivery is not in the journal"
    assert all(journaled[i] in ("applied", "stale", "unsupported", "failed") for i in acknowledged)

    unanswered = [d for d in deliveries if d["body"]["id"] not in acknowledged]
    with serving(tmp_path, workers=2) as (base, _, _):
        assert send_all(base, unanswered) == {d["body"]["id"] for d in unanswered}
    _, state = journaled_and_state(tmp_path)
    assert state == clean_run_state(tmp_path, deliveries)


# --- the database goes away --------------------------------------------------------------------


def test_a_postgresql_outage_answers_503_and_recovers_without_a_restart(throwaway_postgres) -> None:
    from litestar.testing import TestClient

    from cmdb_sync import migrate
    from cmdb_sync.app import create_app
    from tests.conftest import make_settings, post_delivery
    from tests.helpers import app_event

    migrate.upgrade(throwaway_postgres.url)
    with TestClient(create_app(make_settings(throwaway_postgres.url)), raise_server_exceptions=False) as client:
        assert post_delivery(client, app_event("Create", 1000, event_id="before")).json()["status"] == "applied"

        throwaway_postgres.stop("immediate")
        during = app_event("Update", 2000, event_id="during", description="during the outage")
        refused = post_delivery(client, during)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200

        throwaway_postgres.start()
        accepted = wait_for(lambda: (r := post_delivery(client, during)).status_code == 200 and r, 20, "recovery")
        assert accepted.json()["status"] == "applied"  # the refused attempt stored nothing
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/v1/apps/shop").json()["description"] == "during the outage"
