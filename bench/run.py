"""Every performance target of cmdb-sync, each against a baseline measured in the same run.

    .venv/bin/python bench/run.py                       # everything (about 10 minutes)
    .venv/bin/python bench/run.py --only ingest --duration 10
    .venv/bin/python bench/run.py --only ingest --duration 10 --rounds 3   # median of 3 alternations
    .venv/bin/python bench/run.py --only replay --events 200000
    .venv/bin/python bench/run.py --only reads --apps 10000
    .venv/bin/python bench/run.py --only history --apps 10000 --versions 20
    .venv/bin/python bench/run.py --only rebuild --events 200000 --duration 30
    .venv/bin/python bench/run.py --only archive --events 200000     # a month of half as many

Prints one table: target, measured, baseline, ratio, met. Needs wrk (Debian: apt-get install wrk)
and the bench extra (pip install -e '.[dev,bench]'). Servers run on loopback ports of their own
and databases of their own (dropped at the end); every load is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from _common import ADMIN, ADMIN_URL, TOKEN, database, free_port, serving, stop

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


@dataclass
class Row:
    target: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    met: str = "—"


ROWS: list[Row] = []


def record(
    target: str, measured: str, baseline: str = "—", ratio: float | None = None, met: bool | None = None
) -> None:
    row = Row(
        target,
        measured,
        baseline,
        f"{ratio:.2f}" if ratio is not None else "—",
        "—" if met is None else ("yes" if met else "**no**"),
    )
    ROWS.append(row)
    print(f"  {row.target}: {row.measured} (baseline {row.baseline}, ratio {row.ratio}, met {row.met})", flush=True)


# --- processes, load and memory ------------------------------------------------------------------


@contextmanager
def sampling(sample: Callable[[], None], every: float) -> Iterator[None]:
    """``sample()`` every ``every`` seconds in a thread of its own, for as long as the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            sample()
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


MB_PER_MIB = 2**20 / 10**6


def memory(peak: dict[str, float]) -> str:
    """A peak as the table shows it: all the processes together (the target), and the largest."""
    return (
        f"{peak['mib']:.0f} MiB ({peak['mib'] * MB_PER_MIB:.0f} MB) in all; largest process {peak['largest']:.0f} MiB"
    )


@contextmanager
def rss_peak(pid: int) -> Iterator[dict[str, float]]:
    """The peak resident memory of a process and its children together (``mib``), and of the largest
    one of them (``largest``), sampled every 0.2 s, in MiB."""
    peak = {"mib": 0.0, "largest": 0.0}

    def sample() -> None:
        try:
            root = psutil.Process(pid)
            each = [process.memory_info().rss for process in (root, *root.children(recursive=True))]
            peak["mib"] = max(peak["mib"], sum(each) / 2**20)
            peak["largest"] = max(peak["largest"], max(each) / 2**20)
        except psutil.Error:
            pass

    with sampling(sample, 0.2):
        yield peak


@contextmanager
def granian(factory: str, workers: int, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    cmd = [
        str(VENV_BIN / "granian"),
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        factory,
    ]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(cmd, cwd=BENCH, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            log.seek(0)
            raise SystemExit(f"{factory} did not start:\n{log.read().decode(errors='replace')[-3000:]}")
        yield base
    finally:
        stop(process)


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    max_ms: float = 0.0


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def _wrk_command(
    url: str, *, duration: int, connections: int, script: str | None = None, headers: list[str] = ()
) -> list[str]:
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", str(BENCH / script)]
    return [*cmd, url]


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    script: str | None = None,
    headers: list[str] = (),
    env: dict[str, str] | None = None,
) -> Load:  # type: ignore[assignment]
    cmd = _wrk_command(url, duration=duration, connections=connections, script=script, headers=headers)
    output = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    return _load_of(output)


@contextmanager
def wrk_until_stopped(url: str, *, connections: int, script: str, env: dict[str, str]) -> Iterator[list[Load]]:
    """wrk for as long as the block runs (it is stopped with SIGINT, on which it reports)."""
    import signal

    cmd = _wrk_command(url, duration=3600, connections=connections, script=script)
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    found: list[Load] = []
    try:
        yield found
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        found.append(_load_of(output))


def _load_of(output: str) -> Load:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    slowest = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        max_ms=_ms(slowest.group(1)) if slowest else 0.0,
    )


# --- ingest --------------------------------------------------------------------------------------


def ingest_target(backend: str, workers: int, duration: int, *, is_target: bool, rounds: int = 1) -> None:
    """cmdb-sync and the baseline receiver, both up, loaded in turn ``rounds`` times: on a noisy
    machine one pair of runs can be 20% off either way; the median of the rounds' ratios is not."""
    name = f"ingest {backend}, {workers} worker(s), 16 connections"
    lua_env = {"BENCH_TOKEN": TOKEN}

    def load(base: str, env: dict[str, str], seconds: int) -> Load:
        return wrk(
            base + "/webhooks/appstack",
            duration=seconds,
            connections=16,
            script="env_update.lua",
            env={**env, "BENCH_RUN": uuid.uuid4().hex[:8]},
        )

    ours: list[Load] = []
    theirs: list[Load] = []
    with database(backend) as url:
        baseline_db = url if backend == "sqlite" else url.replace("postgresql+psycopg://", "postgresql://")
        with (
            serving(url, workers) as (base, process),
            granian("baselines:receiver", workers, {"BENCH_DATABASE": baseline_db}) as their_base,
        ):
            load(base, lua_env, 3)  # warm-ups
            load(their_base, {}, 3)
            with rss_peak(process.pid) as peak:
                for _ in range(rounds):
                    ours.append(load(base, lua_env, duration))
                    theirs.append(load(their_base, {}, duration))
    ratios = sorted(mine.rps / other.rps for mine, other in zip(ours, theirs, strict=True))
    ratio = statistics.median(ratios)
    spread = f"; {rounds} rounds, ratios {', '.join(f'{r:.2f}' for r in ratios)}" if rounds > 1 else ""
    record(
        f"{name}: deliveries/s ≥ 1.0× baseline" if is_target else f"{name}: deliveries/s",
        f"{statistics.median(load.rps for load in ours):,.0f}/s{spread}",
        f"{statistics.median(load.rps for load in theirs):,.0f}/s",
        ratio,
        ratio >= 1.0 if is_target else None,
    )
    worst = max(ours, key=lambda load: load.p99_ms)
    record(
        f"{name}: p99 < 30 ms" if is_target else f"{name}: p99",
        f"{worst.p99_ms:.1f} ms (p50 {worst.p50_ms:.1f})"
        + (f" at worst; rounds {', '.join(f'{load.p99_ms:.1f}' for load in ours)}" if rounds > 1 else ""),
        f"{max(load.p99_ms for load in theirs):.1f} ms",
        None,
        worst.p99_ms < 30 if is_target else None,
    )
    non_2xx = sum(load.non_2xx for load in ours)
    errors = sum(load.errors for load in ours)
    record(
        f"{name}: no non-2xx",
        f"{non_2xx} non-2xx, {errors} socket errors of {sum(load.requests for load in ours):,}",
        met=non_2xx == 0 and errors == 0,
    )
    if is_target:
        record(f"{name}: server RSS < 200 MB", memory(peak), met=peak["mib"] * MB_PER_MIB < 200)


# --- replay and import ---------------------------------------------------------------------------


def timed_command(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    """Wall seconds, peak RSS (``rss_peak``) and the last line of stderr of a cmdb-sync command."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(VENV_BIN / "cmdb-sync"), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with rss_peak(process.pid) as peak:
        _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"cmdb-sync {' '.join(args)} failed: {err}")
    return time.perf_counter() - started, peak, err.strip().splitlines()[-1]


def replay_target(backend: str, events: int, *, is_target: bool, rounds: int = 1) -> None:
    """``import`` of the generated journal into a new database, then ``replay --rebuild`` of it;
    with ``rounds``, that many times (a new database each), the table giving the median rate and
    each round's: on this shared machine one import's time moves by a fifth from one run to the next."""
    from generate import deliveries

    with tempfile.TemporaryDirectory() as workdir:
        journal = Path(workdir) / "journal.jsonl"
        with journal.open("w", encoding="utf-8") as out:
            for headers, body in deliveries(events):
                out.write(
                    json.dumps({"headers": headers, "body": body}, ensure_ascii=False, separators=(",", ":")) + "\n"
                )
        runs: dict[str, list[tuple[float, dict[str, float], str]]] = {"import": [], "replay --rebuild": []}
        for _ in range(rounds):
            with database(backend) as url:
                env = {"CMDB_SYNC_DATABASE_URL": url}
                subprocess.run(
                    [str(VENV_BIN / "cmdb-sync"), "db", "upgrade"],
                    env={**os.environ, **env},
                    check=True,
                    capture_output=True,
                )
                for what, args in (("import", ["import", str(journal)]), ("replay --rebuild", ["replay", "--rebuild"])):
                    os.sync()  # the journal just written, and what the last command wrote, on disk before the clock starts
                    runs[what].append(timed_command(args, env))
        for what, timed in runs.items():
            seconds = statistics.median(run[0] for run in timed)
            rate = events / seconds
            spread = (
                f"; {rounds} rounds: " + ", ".join(f"{events / run[0]:,.0f}" for run in timed) if rounds > 1 else ""
            )
            peak = max((run[1] for run in timed), key=lambda p: p["mib"])
            label = f"{what} {backend}, {events:,} events of 7 kinds"
            record(
                f"{label}: ≥ 10,000 events/s" if is_target else f"{label}: events/s",
                f"{rate:,.0f}/s ({seconds:.1f} s{spread}; {timed[-1][2]})",
                met=rate >= 10_000 if is_target else None,
            )
            record(
                f"{label}: peak RSS < 300 MB" if is_target else f"{label}: peak RSS",
                memory(peak),
                met=peak["mib"] * MB_PER_MIB < 300 if is_target else None,
            )


def rebuild_under_load_target(events: int, duration: int) -> None:
    """Issue 14: deliveries keep their p99 (within 2x) while `replay --rebuild` of the journal runs
    beside the live tables, and reads answer throughout (a reader polls one env all along)."""
    from generate import deliveries

    lua_env = {"BENCH_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory() as workdir, database("postgresql") as url:
        journal = Path(workdir) / "journal.jsonl"
        with journal.open("w", encoding="utf-8") as out:
            for headers, body in deliveries(events):
                out.write(json.dumps({"headers": headers, "body": body}, separators=(",", ":")) + "\n")
        env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url}
        subprocess.run([str(VENV_BIN / "cmdb-sync"), "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([str(VENV_BIN / "cmdb-sync"), "import", str(journal)], env=env, check=True, capture_output=True)
        with serving(url, 1) as (base, _):
            alone = wrk(
                base + "/webhooks/appstack", duration=duration, connections=16, script="env_update.lua",
                env={**lua_env, "BENCH_RUN": uuid.uuid4().hex[:8]},
            )  # fmt: skip
            rebuild = subprocess.Popen(
                [str(VENV_BIN / "cmdb-sync"), "replay", "--rebuild"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            statuses: list[int] = []
            stop = threading.Event()

            def poll() -> None:
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as client:
                    while not stop.is_set():
                        statuses.append(client.get("/api/v1/apps?limit=1").status_code)
                        time.sleep(0.05)

            reader = threading.Thread(target=poll)
            reader.start()
            started = time.perf_counter()
            load_env = {**lua_env, "BENCH_RUN": uuid.uuid4().hex[:8]}
            with wrk_until_stopped(
                base + "/webhooks/appstack", connections=16, script="env_update.lua", env=load_env
            ) as during:
                rebuild.wait()
                rebuild_seconds = time.perf_counter() - started
                time.sleep(5)  # and a little after the swap
            _, err = rebuild.communicate()
            stop.set()
            reader.join()
    (load,) = during
    ratio = load.p99_ms / alone.p99_ms
    record(
        f"deliveries during a rebuild of {events:,} events: p99 within 2x of without",
        f"p99 {load.p99_ms:.1f} ms (p50 {load.p50_ms:.1f}, max {load.max_ms:.0f}) over the whole rebuild and its swap "
        f"({rebuild_seconds:.0f} s, {load.requests:,} deliveries, {load.non_2xx} non-2xx)",
        f"{alone.p99_ms:.1f} ms",
        ratio,
        ratio <= 2 and load.non_2xx == 0,
    )
    record(
        "reads during the rebuild: every answer 200",
        f"{sum(1 for s in statuses if s == 200)} of {len(statuses)}; rebuild: {err.strip().splitlines()[-1]}",
        met=bool(statuses) and all(s == 200 for s in statuses),
    )


@contextmanager
def lock_waits(url: str) -> Iterator[dict[str, float]]:
    """The longest any statement of the server (not the archive's own ALTERs) has been waiting for
    a lock, sampled every 5 ms from pg_stat_activity (from the statement's start: an upper bound)."""
    import psycopg

    seen = {"max_ms": 0.0}
    sql = (
        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)) * 1000, 0) "
        "FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query NOT ILIKE 'ALTER TABLE%' AND query NOT ILIKE 'SET %'"
    )
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:

        def sample() -> None:
            seen["max_ms"] = max(seen["max_ms"], float(conn.execute(sql).fetchone()[0]))  # type: ignore[index]

        with sampling(sample, 0.005):
            yield seen


def archive_under_load_target(events: int, duration: int) -> None:
    """Issue 14: `journal archive` of a month of ``events`` deliveries while the server receives at
    full speed (16 connections): no delivery waits more than 100 ms because of it. The deliveries'
    worst latency during the archive is compared with the same load without it, and the archive
    reports how long it held the journal's lock (the only way it can hold a delivery up)."""
    from datetime import UTC, datetime, timedelta

    from generate import deliveries

    lua_env = {"BENCH_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory() as workdir, database("postgresql") as url:
        journal = Path(workdir) / "january.jsonl"
        january = datetime(2025, 1, 1, tzinfo=UTC)
        with journal.open("w", encoding="utf-8") as out:
            for n, (headers, body) in enumerate(deliveries(events)):
                received = (january + timedelta(seconds=n * 2_592_000 // events)).isoformat()
                line = {"headers": headers, "body": body, "received_at": received}
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
        env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url}
        cli = str(VENV_BIN / "cmdb-sync")
        subprocess.run([cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([cli, "import", str(journal)], env=env, check=True, capture_output=True)
        subprocess.run([cli, "db", "upgrade"], env=env, check=True, capture_output=True)  # January's partition
        with serving(url, 1) as (base, _), lock_waits(url) as waits:
            alone = [
                wrk(
                    base + "/webhooks/appstack",
                    duration=duration,
                    connections=16,
                    script="env_update.lua",
                    env={**lua_env, "BENCH_RUN": uuid.uuid4().hex[:8]},
                )  # fmt: skip
            ]
            waited_alone, waits["max_ms"] = waits["max_ms"], 0.0
            archive = subprocess.Popen(
                [cli, "journal", "archive", "--before", "2025-02", "--to",
                 str(Path(workdir) / "january.jsonl.gz")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            started = time.perf_counter()
            during = []
            while True:  # 5 s of load at a time until the archive is over, and one more
                running = archive.poll() is None
                during.append(
                    wrk(
                        base + "/webhooks/appstack",
                        duration=5,
                        connections=16,
                        script="env_update.lua",
                        env={**lua_env, "BENCH_RUN": uuid.uuid4().hex[:8]},
                    )  # fmt: skip
                )
                if not running:
                    break
            _, err = archive.communicate()
            seconds = time.perf_counter() - started
            waited = waits["max_ms"]
    if archive.returncode != 0:
        raise SystemExit(f"journal archive failed: {err}")
    locked = [float(ms) for ms in re.findall(r"the journal was locked (\d+) ms", err)]
    worst, calm = max(c.max_ms for c in during), max(c.max_ms for c in alone)
    record(
        f"archive of a month of {events:,} deliveries under 16-connection load: no delivery waits > 100 ms on a lock",
        f"longest lock wait of a delivery's statement: {waited:.0f} ms; the swap held the journal "
        f"{max(locked):.0f} ms; archive {seconds:.0f} s; {sum(c.requests for c in during):,} deliveries meanwhile, "
        f"{sum(c.non_2xx for c in during)} non-2xx",
        f"{waited_alone:.0f} ms without the archive",
        met=bool(locked) and waited < 100,
    )
    record(
        "deliveries during the archive: latency (the archive shares the 2 cores), against the same load without it",
        f"max {worst:.0f} ms, p99 {max(c.p99_ms for c in during):.1f} ms",
        f"max {calm:.0f} ms, p99 {alone[0].p99_ms:.1f} ms",
    )


# --- reads ---------------------------------------------------------------------------------------


def fill_inventory(url: str, apps: int) -> None:
    """apps × 10 envs, 3 labels each (envType, region, team), and a successful change order for
    every env of one app in ten, whose image names the app."""
    sys.path.insert(0, str(BENCH.parent))
    from generate import ENV_TYPES, REGIONS

    from cmdb_sync import migrate
    from cmdb_sync.db import Database
    from cmdb_sync.ingest import Delivery, ingest_batch

    migrate.upgrade(url)
    batch: list[Delivery] = []
    counter = 0

    def send(kind: str, action: str, app: str, attrs: dict[str, object]) -> None:
        nonlocal counter, batch
        counter += 1
        body = {
            "id": f"fill-{counter}",
            "user": {"id": "u"},
            "orgId": "org-bench",
            "time": 1_700_000_000_000 + counter,
            "objectKind": kind,
            "objectAttributes": attrs,
        }
        batch.append(
            Delivery(
                {"X-AppStack-Event": kind, "X-AppStack-Action": action, "X-AppStack-App": app},
                json.dumps(body).encode(),
            )
        )
        if len(batch) == 2000:
            ingest_batch(database_.engine, batch)
            batch = []

    with Database.open(url) as database_:
        for a in range(apps):
            app = f"app-{a:05d}"
            send("App", "Create", app, {"name": app, "type": "APP"})
            for e in range(10):
                labels = [
                    {"namespace": "default", "name": "envType", "value": ENV_TYPES[e % 4]},
                    {"namespace": "default", "name": "region", "value": REGIONS[(a + e) % 4]},
                    {"namespace": "default", "name": "team", "value": f"team-{a % 20}"},
                ]
                send(
                    "Env",
                    "Create",
                    app,
                    {"name": f"env-{e}", "appName": app, "labelList": labels, "resourcePoolName": "default"},
                )
            if a % 10 == 0:
                jobs = [
                    {
                        "sn": f"co-{a}-{e}",
                        "envName": f"env-{e}",
                        "state": "SUCCESS",
                        "endedAt": 1_700_000_000_000 + a,
                        "stages": [
                            {
                                "sn": "s",
                                "tasks": [
                                    {
                                        "sn": "t",
                                        "state": "SUCCESS",
                                        "contextContent": json.dumps(
                                            {"artifacts": {"image.backend": f"registry.example.com/{app}:v1"}}
                                        ),
                                    }
                                ],
                            }
                        ],
                    }
                    for e in range(10)
                ]
                send(
                    "ChangeOrder",
                    "StatusUpdate",
                    app,
                    {"sn": f"co-{a}", "appName": app, "state": "SUCCESS", "version": "v1", "jobs": jobs},
                )
        if batch:
            ingest_batch(database_.engine, batch)
        database_.analyze()  # as `cmdb-sync import` does after a bulk load


def page_timing(client: httpx.Client, path: str, runs: int = 30) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def reads_target(apps: int, duration: int) -> None:
    auth = f"Authorization: Bearer {ADMIN}"
    with database("postgresql") as url:
        fill_inventory(url, apps)
        with serving(url, 1) as (base, _):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as client:
                one = "/api/v1/apps/app-00042/envs/env-3"
                assert client.get(one).status_code == 200
                ours = wrk(base + one, duration=duration, connections=16, headers=[auth])
                labels = "/api/v1/envs?label=envType=production&label=region=cn-shanghai&limit=100"
                label_load = wrk(base + labels, duration=duration, connections=4, headers=[auth])
                artifact = "/api/v1/envs?artifact=app-00420:&limit=100"
                assert client.get(artifact).json()["items"], "the artifact filter found nothing"
                artifact_load = wrk(base + artifact, duration=duration, connections=4, headers=[auth])
                first = "/api/v1/envs?limit=100"
                cursor, last = None, None
                while True:
                    page = client.get(
                        "/api/v1/envs", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                    ).json()
                    if page["next_cursor"] is None:
                        break
                    last, cursor = cursor, page["next_cursor"]
                last_path = f"/api/v1/envs?limit=100&cursor={last}"
                first_ms, last_ms = page_timing(client, first), page_timing(client, last_path)
                # the web UI's page of 100 envs (two labels), signed in with the admin token's cookie
                client.cookies.set("cmdb_sync_session", ADMIN)
                ui_page = "/ui/envs?label_name=envType&label_value=production&label_name=region&label_value=cn-shanghai"
                assert "<table>" in client.get(ui_page).text
                ui_load = wrk(
                    base + ui_page, duration=duration, connections=1, headers=[f"Cookie: cmdb_sync_session={ADMIN}"]
                )
                ui_apps = wrk(
                    base + "/ui", duration=duration, connections=1, headers=[f"Cookie: cmdb_sync_session={ADMIN}"]
                )
        baseline_db = url.replace("postgresql+psycopg://", "postgresql://")
        with granian("baselines:reader", 1, {"BENCH_DATABASE": baseline_db}) as base:
            theirs = wrk(base + one, duration=duration, connections=16)
    envs = apps * 10
    ratio = ours.rps / theirs.rps
    record(
        f"GET one env ({envs:,} envs): ≥ 0.7× one-query handler",
        f"{ours.rps:,.0f}/s",
        f"{theirs.rps:,.0f}/s",
        ratio,
        ratio >= 0.7,
    )
    record(
        f"two-label filter, limit=100 ({envs:,} envs): p99 < 50 ms",
        f"{label_load.p99_ms:.1f} ms (p50 {label_load.p50_ms:.1f})",
        met=label_load.p99_ms < 50,
    )
    record(
        f"artifact filter, limit=100 ({envs:,} envs): p99 < 50 ms",
        f"{artifact_load.p99_ms:.1f} ms (p50 {artifact_load.p50_ms:.1f})",
        met=artifact_load.p99_ms < 50,
    )
    record(
        f"UI: a page of 100 envs, two labels ({envs:,} envs): < 100 ms",
        f"p50 {ui_load.p50_ms:.1f} ms, p99 {ui_load.p99_ms:.1f} ms",
        met=ui_load.p99_ms < 100,
    )
    record(
        f"UI: the apps page, 100 apps with env counts and latest deployments ({apps:,} apps)",
        f"p50 {ui_apps.p50_ms:.1f} ms, p99 {ui_apps.p99_ms:.1f} ms",
    )
    record(
        "last page by cursor as fast as the first (median of 30)",
        f"{last_ms:.1f} ms",
        f"first {first_ms:.1f} ms",
        last_ms / first_ms,
        last_ms <= first_ms * 1.25,
    )


def history_target(apps: int, versions: int, duration: int) -> None:
    """As-of reads and history pages on apps × 10 envs × versions versions (bench/history.py)."""
    from history import fill_history

    auth = f"Authorization: Bearer {ADMIN}"
    with database("postgresql") as url:
        started = time.perf_counter()
        moment = fill_history(url, apps, versions)
        print(f"history inventory filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        with serving(url, 1) as (base, _):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as client:
                as_of = f"/api/v1/envs?limit=100&as_of={moment}"
                page = client.get(as_of).json()
                assert len(page["items"]) == 100, page
                assert page["items"][0]["labels"][2]["value"] == str(versions // 2), page["items"][0]
                as_of_alone = wrk(base + as_of, duration=duration, connections=1, headers=[auth])
                as_of_load = wrk(base + as_of, duration=duration, connections=4, headers=[auth])
                one_env = f"/api/v1/apps/app-00042/envs/env-3?as_of={moment}"
                assert client.get(one_env).json()["labels"][2]["value"] == str(versions // 2)
                one_env_alone = wrk(base + one_env, duration=duration, connections=1, headers=[auth])
                apps_page = f"/api/v1/apps?limit=100&as_of={moment}"
                assert len(client.get(apps_page).json()["items"]) == 100
                apps_alone = wrk(base + apps_page, duration=duration, connections=1, headers=[auth])
                current = "/api/v1/apps/app-00042/envs/env-3/history"
                assert len(client.get(current).json()["items"]) == min(50, versions)
                history_alone = wrk(base + current, duration=duration, connections=1, headers=[auth])
                history_load = wrk(base + current, duration=duration, connections=4, headers=[auth])
    envs, total = apps * 10, apps * 10 * versions
    record(
        f"as-of list, limit=100 ({envs:,} envs, {total:,} versions): p99 < 100 ms",
        f"one client: p99 {as_of_alone.p99_ms:.1f} ms (p50 {as_of_alone.p50_ms:.1f}); "
        f"4 at once on one worker: p99 {as_of_load.p99_ms:.1f} ms (p50 {as_of_load.p50_ms:.1f})",
        met=as_of_alone.p99_ms < 100,
    )
    record(
        f"as-of one env ({envs:,} envs, {total:,} versions)",
        f"one client: p99 {one_env_alone.p99_ms:.1f} ms (p50 {one_env_alone.p50_ms:.1f})",
    )
    record(
        f"as-of apps list, limit=100 ({apps:,} apps)",
        f"one client: p99 {apps_alone.p99_ms:.1f} ms (p50 {apps_alone.p50_ms:.1f})",
    )
    record(
        f"one env's history page of 50 ({versions} versions): < 20 ms",
        f"one client: p99 {history_alone.p99_ms:.1f} ms (p50 {history_alone.p50_ms:.1f}); "
        f"4 at once on one worker: p99 {history_load.p99_ms:.1f} ms (p50 {history_load.p50_ms:.1f})",
        met=history_alone.p99_ms < 20,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="ingest,replay,reads,history,rebuild,archive",
        help="comma-separated: ingest, replay, reads, history, rebuild, archive",
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="ingest: cmdb-sync and the baseline loaded in turn this many times; replay: PostgreSQL's import and "
        "rebuild run this many times (SQLite's once), the median reported",
    )
    parser.add_argument("--events", type=int, default=200_000, help="journal size for replay and import")
    parser.add_argument("--apps", type=int, default=10_000, help="apps of the read inventory (10 envs each)")
    parser.add_argument("--versions", type=int, default=20, help="versions of each env of the history inventory")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "ingest" in only:
        ingest_target("postgresql", 1, args.duration, is_target=True, rounds=args.rounds)
        ingest_target("postgresql", 2, args.duration, is_target=False, rounds=args.rounds)
        ingest_target("sqlite", 1, args.duration, is_target=False, rounds=args.rounds)
    if "replay" in only:
        replay_target("postgresql", args.events, is_target=True, rounds=args.rounds)
        replay_target("sqlite", args.events, is_target=False)
    if "reads" in only:
        reads_target(args.apps, args.duration)
    if "history" in only:
        history_target(args.apps, args.versions, args.duration)
    if "rebuild" in only:
        rebuild_under_load_target(args.events, args.duration)
    if "archive" in only:
        archive_under_load_target(args.events // 2, args.duration)
    print(f"\n{machine()}\n\n| target | measured | baseline | ratio | met |\n|---|---|---|---|---|")
    for row in ROWS:
        print(f"| {row.target} | {row.measured} | {row.baseline} | {row.ratio} | {row.met} |")


def machine() -> str:
    """What the figures were measured on: the same code's rates differ twofold between this
    project's machine kinds, so a table says which one it comes from."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = psutil.virtual_memory().total / 2**30
    return f"Measured on: {model}, {os.cpu_count()} cores, {memory:.0f} GiB; PostgreSQL {postgres_version()}"


def postgres_version() -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]
    except psycopg.Error:
        return "(not reached)"


if __name__ == "__main__":
    main()
