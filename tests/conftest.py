"""Test fixtures: real databases (SQLite and PostgreSQL, psycopg 3), schema built by the migrations.

PostgreSQL is found through CMDB_SYNC_TEST_POSTGRES_URL, else on 127.0.0.1:5432. Where nothing
listens but the PostgreSQL binaries are installed, a throwaway cluster is started; otherwise the
run stops with one line saying what to install. Each run creates databases of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from cmdb_sync import migrate
from cmdb_sync.app import create_app
from cmdb_sync.db import make_engine, make_session_factory
from cmdb_sync.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_TOKEN = "secret"
ROTATED_TOKEN = "rotated-secret"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgresql"]


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(_psycopg_dsn(url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, if the PostgreSQL binaries are installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.insert(0, Path(on_path).resolve().parent)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


class ThrowawayCluster:
    """A PostgreSQL cluster of its own: initdb on a directory, served on a free port, stopped and
    started at will. As root (initdb refuses root) the server runs as the ``postgres`` system user
    that PostgreSQL's packages create."""

    def __init__(self, bindir: Path, base: Path, port: int) -> None:
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")
        self.base, self.port = base, port
        self.data = base / "data"
        self.pg_ctl = [*self.as_user, str(bindir / "pg_ctl"), "-D", str(self.data)]
        initdb = [*self.as_user, str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run(initdb, check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.base / "server.log"
        subprocess.run([*self.pg_ctl, "-o", options, "-l", str(log), "-w", "start"], check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run([*self.pg_ctl, "-m", mode, "stop"], capture_output=True)


def _throwaway_cluster(bindir: Path, base: Path, port: int) -> Iterator[str]:
    cluster = ThrowawayCluster(bindir, base, port)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def wait_ready(base: str, process: subprocess.Popen, log: Path, seconds: float = 30) -> None:  # type: ignore[type-arg]
    """Wait until the server at ``base`` answers ``/readyz`` with 200; fail with its log when it
    exits first or takes longer than ``seconds``."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the server at {base} did not become ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL cluster of the test's own, started; never the shared server."""
    bindir = _find_bindir()
    if bindir is None:
        pytest.fail("this test starts a PostgreSQL cluster of its own: install PostgreSQL (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="cmdb-sync-test-pg-"))
    cluster = ThrowawayCluster(bindir, base, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL to a PostgreSQL maintenance database this run may create databases on."""
    url = os.environ.get("CMDB_SYNC_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if _reachable(url):
        yield url
        return
    bindir = _find_bindir()
    if bindir is None:
        pytest.exit(
            f"PostgreSQL is needed and none answers at {make_url(url).render_as_string()}: install it "
            "(apt-get install postgresql) or set CMDB_SYNC_TEST_POSTGRES_URL",
            returncode=3,
        )
    port = free_port()
    # not under pytest's temporary directory: that one is private to the user running the tests
    base = Path(tempfile.mkdtemp(prefix="cmdb-sync-test-pg-"))
    cluster = _throwaway_cluster(bindir, base, port)
    try:
        started = next(cluster)
    except (subprocess.CalledProcessError, OSError, LookupError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        pytest.exit(f"PostgreSQL is needed: none answers at {url}, and starting one failed: {detail}", returncode=3)
    try:
        yield started
    finally:
        next(cluster, None)
        shutil.rmtree(base, ignore_errors=True)


class PostgresDatabases:
    """Creates databases named for this run, and drops them at its end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run_id = uuid.uuid4().hex[:8]
        self.created: list[str] = []

    def create(self, purpose: str) -> str:
        name = f"cmdb_sync_test_{self.run_id}_{purpose}"
        with psycopg.connect(_psycopg_dsn(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with psycopg.connect(_psycopg_dsn(self.admin_url), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin_url: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    try:
        yield databases
    finally:
        databases.drop_all()


class Databases:
    """Fresh, empty databases of either backend, for tests that migrate or serve their own."""

    def __init__(self, request: pytest.FixtureRequest, tmp: Path) -> None:
        self.request = request
        self.tmp = tmp
        self.count = 0

    def fresh(self, backend: str) -> str:
        self.count += 1
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / f'fresh{self.count}.db'}"
        pg: PostgresDatabases = self.request.getfixturevalue("postgres_databases")
        return pg.create(f"fresh{self.count}_{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="session")
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Databases:
    return Databases(request, tmp_path_factory.mktemp("fresh"))


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """One database per backend for the whole run, built by the migrations (not create_all)."""
    url = databases.fresh(request.param)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def backend_engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def _empty_all_tables(engine: Engine) -> None:
    from cmdb_sync.models import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        # DELETE, children first: a test's few rows go in ~5 ms, where TRUNCATE made new files for
        # every table and index, ~150 ms on PostgreSQL, before every test and hypothesis example
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))
        if engine.dialect.name == "postgresql":  # the ids start again at 1, as TRUNCATE's RESTART IDENTITY did
            conn.execute(
                text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'S' AND n.nspname = current_schema()"
                )
            )


@pytest.fixture
def engine(backend_engine: Engine) -> Engine:
    """The run's migrated database of one backend, emptied before the test."""
    _empty_all_tables(backend_engine)
    return backend_engine


@pytest.fixture
def session_factory(engine: Engine):  # type: ignore[no-untyped-def]
    return make_session_factory(engine)


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "webhook_tokens": [WEBHOOK_TOKEN, ROTATED_TOKEN],
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(engine: Engine, migrated_url: str) -> Iterator[TestClient]:
    app = create_app(make_settings(migrated_url))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def load_seed() -> dict[str, dict[str, Any]]:
    """The 15 example deliveries of the AppStack webhook doc, by file stem (``01_App_Create``...)."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted((FIXTURES / "seed").glob("*.json"))
    }


@pytest.fixture(scope="session")
def seed() -> dict[str, dict[str, Any]]:
    return load_seed()


def post_delivery(client: TestClient, delivery: dict[str, Any], *, token: str | None = WEBHOOK_TOKEN, body: Any = None):  # type: ignore[no-untyped-def]
    headers = dict(delivery.get("headers", {}))
    headers.pop("X-AppStack-Token", None)
    if token is not None:
        headers["X-AppStack-Token"] = token
    payload = body if body is not None else json.dumps(delivery["body"], ensure_ascii=False).encode()
    headers["Content-Type"] = "application/json"
    # header values go on the wire as UTF-8 bytes, as a sender with a Chinese app name would send them
    encoded = {key: value.encode() for key, value in headers.items()}
    return client.post("/webhooks/appstack", content=payload, headers=encoded)


@pytest.fixture
def tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_ambient_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set what they need; a developer's CMDB_SYNC_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("CMDB_SYNC_") and name != "CMDB_SYNC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
