"""The ``cmdb-sync`` command: serve, db, and the operator commands.

Only click is imported up front: each command imports what it uses (SQLAlchemy, Alembic, the
server, the HTTP client) when it runs, so ``cmdb-sync --help`` answers at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from cmdb_sync.supervision import SUPERVISOR_ENV

if TYPE_CHECKING:
    import httpx

    from cmdb_sync.db import Database
    from cmdb_sync.progress import ProgressReporter
    from cmdb_sync.settings import Settings


def _settings() -> Settings:
    from cmdb_sync.settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be reached or used is one line, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from cmdb_sync.db import describe_error

    try:
        yield
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database: {describe_error(exc)}") from None


def _ensure_schema(
    settings: Settings,
    database: Database,
    *,
    migrate_postgresql: bool = False,
    hint: str = "",
    upgrade: Callable[[str], None] | None = None,
) -> None:
    """The embedded SQLite default is migrated on the spot; a PostgreSQL schema that is behind
    stops the command, unless migrating it was asked for. ``upgrade`` migrates (by default here)."""
    from cmdb_sync import migrate

    behind = migrate.behind_head(database.engine)
    if behind is None:
        return
    if not (settings.is_sqlite or migrate_postgresql):
        raise click.ClickException(f"{behind} first{hint}")
    (upgrade or migrate.upgrade)(settings.database_url)


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """The command's one database, at the newest migration (see ``_ensure_schema``), disposed at the end;
    a database that cannot be reached or used is one line."""
    from cmdb_sync.db import Database

    with _database_errors(), Database.open(settings.database_url) as database:
        _ensure_schema(settings, database)
        yield database


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmdb-sync")
def main() -> None:
    """cmdb-sync: the system of record for AppStack webhooks."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--migrate", "run_migrations", is_flag=True, help="Upgrade a PostgreSQL schema that is behind.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON (CMDB_SYNC_LOG_FORMAT)."
)
@click.option(
    "--access-log/--no-access-log", default=None, help="Log every request but the health probes (CMDB_SYNC_ACCESS_LOG)."
)
def serve(
    host: str, port: int, workers: int, run_migrations: bool, log_format: str | None, access_log: bool | None
) -> None:
    """Run the webhook receiver and the read API (granian, ASGI).

    On SQLite the database is created and migrated here; on PostgreSQL a schema that is not at the
    newest migration stops the start, unless --migrate.
    """
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from cmdb_sync import logs
    from cmdb_sync.db import Database
    from cmdb_sync.settings import ConfigError

    settings = _settings()
    log_format = log_format or settings.log_format
    access_log = settings.access_log if access_log is None else access_log
    logs.configure(settings.log_level, log_format)
    # What would stop every worker is said once, here, before any starts.
    try:
        settings.check_webhook_auth()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    with _database_errors(), Database.open(settings.database_url, pool_size=1) as database:
        _ensure_schema(
            settings,
            database,
            migrate_postgresql=run_migrations,
            hint=", or start with --migrate",
            upgrade=_upgrade_in_a_child,
        )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # before prometheus_client is first imported: it picks its value store at import
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cmdb-sync-metrics-")
    _refuse_a_taken_port(host, port)
    # the workers exit if this process dies (app.watch_parent), instead of serving on unsupervised
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    logging.getLogger("cmdb_sync").info("listening on http://%s:%d (%d worker(s))", host, port, workers)
    with _writer_for_the_workers(settings):
        Server(
            "cmdb_sync.app:app_factory",
            factory=True,
            interface=Interfaces.ASGI,
            address=host,
            port=port,
            workers=workers,
            log_level=LogLevels(settings.log_level.lower()),
            log_dictconfig=logs.dict_config(settings.log_level, log_format),
            log_access=access_log,
            respawn_failed_workers=True,  # a worker that dies is replaced; the others go on answering
            workers_max_rss=settings.worker_max_rss_mib,
            http1_settings=HTTP1Settings(header_read_timeout=settings.header_timeout_seconds * 1000),
        ).serve()


def _upgrade_in_a_child(database_url: str) -> None:
    """The serve process lives as long as the server: it migrates in a child process forked for it
    (before any thread starts), so that Alembic (8 MB with what it imports) never stays in it
    (issue 9's memory target)."""
    child = multiprocessing.get_context("fork").Process(target=_upgrade_or_say_why, args=(database_url,))
    child.start()
    child.join()
    if child.exitcode != 0:
        msg = "the database schema could not be migrated (the line above says why)"
        raise click.ClickException(msg)


def _upgrade_or_say_why(database_url: str) -> None:
    from cmdb_sync import migrate

    try:
        with _database_errors():
            migrate.upgrade(database_url)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)


@contextmanager
def _writer_for_the_workers(settings: Settings) -> Iterator[None]:
    """The group-commit writer of every worker, in this process (``handoff``): the workers hand it
    their deliveries over a Unix socket in a directory of its own. They are spawned, not forked,
    so that none inherits this process's writer thread or its database connection."""
    from cmdb_sync.db import Database
    from cmdb_sync.handoff import WRITER_SOCKET_ENV, WriterService

    multiprocessing.set_start_method("spawn", force=True)  # granian reads it when it starts workers
    directory = tempfile.mkdtemp(prefix="cmdb-sync-writer-")
    database = Database.open(settings.database_url, pool_size=1)  # the writer holds one connection
    try:
        service = WriterService(database.engine, os.path.join(directory, "writer.sock"))
        service.start()
        os.environ[WRITER_SOCKET_ENV] = service.path
        try:
            yield
        finally:
            service.stop()  # after the workers: what they handed over is written before this returns
    finally:
        database.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def _refuse_a_taken_port(host: str, port: int) -> None:
    """The server's workers share their port (SO_REUSEPORT), so a second serve on a port already
    served would start beside the first and split its traffic: refuse, as any server would."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            msg = f"cannot listen on {host}:{port}: {exc.strerror} (is another cmdb-sync serve running there?)"
            raise click.ClickException(msg) from None


@main.group()
def db() -> None:
    """Schema migrations (Alembic), on the database of CMDB_SYNC_DATABASE_URL."""


def _migrate_to(step: Callable[[str, str], None], revision: str) -> None:
    from alembic.util.exc import CommandError

    settings = _settings()
    try:
        with _database_errors():
            step(settings.database_url, revision)
    except CommandError as exc:  # a revision that does not exist, say: Alembic's words, one line
        raise click.ClickException(f"{exc}; `cmdb-sync db current` names the revisions") from None
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the schema (default: to the newest migration)."""
    from cmdb_sync import migrate

    _migrate_to(migrate.upgrade, revision)
    if revision == "head":
        from cmdb_sync.db import Database
        from cmdb_sync.partitions import ensure_partitions
        from cmdb_sync.replay import unindexed_history

        with _database_errors(), Database.open(_settings().database_url, pool_size=1) as database:
            waiting = unindexed_history(database.sessions)
            ensure_partitions(database.engine)
        if waiting:
            click.echo(
                f"history: {waiting} journaled events predate the versions index; "
                "run `cmdb-sync replay --rebuild` once to index them (README, History and as-of reads)"
            )


@db.command()
@click.argument("revision", default="-1")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def downgrade(revision: str, yes: bool) -> None:
    """Downgrade the schema (default: one migration back; 'base' empties it). Downgrading drops
    what later migrations added, data included: it asks first, unless --yes."""
    if not yes:
        where = "to nothing (every table dropped)" if revision == "base" else f"to {revision}"
        click.confirm(f"Downgrade the database schema {where}? Data in what is dropped is lost", abort=True, err=True)
    from cmdb_sync import migrate

    _migrate_to(migrate.downgrade, revision)


@db.command()
def current() -> None:
    """Print the schema's revision and the newest one."""
    from cmdb_sync import migrate
    from cmdb_sync.db import Database

    settings = _settings()
    with _database_errors(), Database.open(settings.database_url, pool_size=1) as database:
        revision = migrate.current_revision(database.engine)
        behind = migrate.behind_head(database.engine)
    state = "up to date" if behind is None else "behind: run `cmdb-sync db upgrade`"
    click.echo(f"current: {revision or 'none'}\nnewest:  {migrate.head_revision()}\n{state}")


class IsoTime(click.ParamType):
    """ISO-8601, with an offset or ``Z``; without one it is read as UTC."""

    name = "ISO-8601"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        from cmdb_sync.times import as_utc

        if isinstance(value, datetime):
            return as_utc(value)
        try:
            parsed = as_utc(datetime.fromisoformat(str(value)))
        except ValueError:
            self.fail(f"{value!r} is not ISO-8601 (e.g. 2024-07-29T07:00:00Z)", param, ctx)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00: before the first moment a time can hold
            self.fail(f"{value!r} is out of range: in UTC it falls outside the years 1 to 9999", param, ctx)


class Month(click.ParamType):
    """A month, ``YYYY-MM``: its first moment, UTC."""

    name = "YYYY-MM"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return datetime.strptime(str(value), "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            self.fail(f"{value!r} is not a month like 2025-01", param, ctx)


# A byte that is not UTF-8 is kept as U+DC80..U+DCFF (Python's surrogateescape): the line that
# holds it is refused with where it is (archive.parse_line), the rest of the file imported.
UNDECODABLE = "surrogateescape"


class DeliveriesFile(click.File):
    """A file to read deliveries from; a gzip'd one (as `journal archive` writes) is read through gzip."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value != "-" and _is_gzip(value):
            import gzip

            try:
                opened = gzip.open(value, "rt", encoding="utf-8", errors=UNDECODABLE)
            except OSError as exc:
                self.fail(f"{value!r}: {exc.strerror or exc}", param, ctx)
            if ctx is not None:
                ctx.call_on_close(opened.close)
            return opened
        return super().convert(value, param, ctx)


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as head:
            return head.read(2) == b"\x1f\x8b"
    except OSError:
        return False  # click.File says what is wrong with it


def _finish(reporter: ProgressReporter, what: str) -> None:
    click.echo(f"{what}: {reporter.tally.summary()}", err=True)


class _Signalled(KeyboardInterrupt):
    """A termination signal, raised where the command is, so that it unwinds as from Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stoppable(reporter: ProgressReporter, done: str, again: str) -> Iterator[None]:
    """A long command stopped by Ctrl-C or SIGTERM (``kill``, systemd, a container's stop) ends
    as an operator expects: its lanes stopped, each batch whole (what was committed stays), the
    count of what was done and how to go on, and the shell's exit status for that signal (130,
    143), instead of a traceback or a silent death."""

    def terminate(signum: int, _frame: Any) -> None:
        raise _Signalled(signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
        _finish(reporter, done)
        click.echo(f"stopped by {signal.Signals(signum).name}: what was written is committed; {again}", err=True)
        raise SystemExit(128 + signum) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@main.command()
@click.option("--failed", "failed_only", is_flag=True, help="Only events journaled as failed.")
@click.option("--rebuild", is_flag=True, help="Empty every projection and re-apply the whole journal.")
@click.option(
    "--restart", is_flag=True, help="With --rebuild: start over, even where a stopped rebuild could continue."
)
@click.option(
    "--since", type=IsoTime(), help="Only events at or after this event time (ISO-8601; UTC unless an offset)."
)
@click.option("--kind", help="Only events of this objectKind.")
@click.option(
    "--batch-size",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Events a transaction replays (memory grows with it).",
)
def replay(
    failed_only: bool, rebuild: bool, restart: bool, since: datetime | None, kind: str | None, batch_size: int
) -> None:
    """Re-apply the journal to the projections, in (time, id) order. Safe while the server runs."""
    from cmdb_sync.lanes import collecting_rarely
    from cmdb_sync.progress import reporting
    from cmdb_sync.projections import REGISTRY
    from cmdb_sync.replay import RebuildStopped, Selection, rebuilt_tables
    from cmdb_sync.replay import replay as run_replay

    if rebuild and (failed_only or since or kind):
        msg = "--rebuild re-applies the whole journal: it takes no --failed, --since or --kind"
        raise click.UsageError(msg)
    if restart and not rebuild:
        msg = "--restart goes with --rebuild"
        raise click.UsageError(msg)
    settings = _settings()
    if kind is not None and kind not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        click.echo(
            f"note: {kind!r} is not a kind cmdb-sync projects ({known}); its events replay as unsupported", err=True
        )
    selection = Selection(failed_only=failed_only, since=since, kind=kind)
    again = "run it again to continue where it stopped" if rebuild else "run it again (replaying is idempotent)"
    with (
        _database(settings) as database,
        reporting("rebuild" if rebuild else "replay") as reporter,
        _stoppable(reporter, "replayed before it stopped", again),
        collecting_rarely(),
    ):
        try:
            run_replay(database.sessions, selection, reporter, rebuild=rebuild, restart=restart, batch_size=batch_size)
        except RebuildStopped as exc:
            raise click.ClickException(str(exc)) from None
        database.analyze([table.name for table in rebuilt_tables()] if rebuild else ())
    _finish(reporter, "replayed")


@main.command("import")
@click.argument(
    "sources",
    metavar="FILE...",
    nargs=-1,
    required=True,
    type=DeliveriesFile("r", encoding="utf-8", errors=UNDECODABLE),
)
def import_(sources: tuple[TextIO, ...]) -> None:
    """Ingest archived deliveries from each FILE ('-' for stdin), in order: JSON Lines (one
    {"headers": {...}, "body": {...}} or bare body a line, as `export` writes; gzip'd, as
    `journal archive` writes), or a file holding
    one such delivery, or a JSON array of them (as tests/fixtures/seed/*.json). Bad ones are
    reported and skipped."""
    from functools import partial
    from itertools import chain

    from cmdb_sync.archive import ImportStopped, count_json_lines, documents, import_documents, survey
    from cmdb_sync.errors import DatabaseUnavailable
    from cmdb_sync.lanes import collecting_rarely
    from cmdb_sync.progress import reporting
    from cmdb_sync.status import Status

    settings = _settings()
    total = None
    if len(sources) == 1 and sources[0] is not sys.stdin and sources[0].seekable():
        total = count_json_lines(sources[0])
    surveying = None
    if all(source is not sys.stdin and source.seekable() for source in sources):
        surveying = partial(survey, sources)
    located = chain.from_iterable(documents(getattr(source, "name", "<stdin>"), source) for source in sources)
    again = "import the same files again to finish (what was imported is then a duplicate)"
    with (
        _database(settings) as database,
        reporting("import", total=total) as reporter,
        _stoppable(reporter, "imported before it stopped", again),
        collecting_rarely(),
    ):
        try:
            import_documents(database.sessions, located, reporter, surveying=surveying)
        except (ImportStopped, DatabaseUnavailable) as exc:
            _finish(reporter, "imported before it stopped")
            raise click.ClickException(f"{exc}; {again}") from None
        database.analyze()
    _finish(reporter, "imported")
    if reporter.tally.counts.get(Status.INVALID):
        sys.exit(2)


@main.command()
@click.option(
    "--since", type=IsoTime(), help="Only events at or after this event time (ISO-8601; UTC unless an offset)."
)
@click.option("--kind", help="Only events of this objectKind.")
@click.option(
    "-o", "--output", type=click.File("w", encoding="utf-8"), default="-", help="File to write (default stdout)."
)
def export(since: datetime | None, kind: str | None, output: TextIO) -> None:
    """Write the journal as one JSON per line, in the form `import` reads (importing it back is a no-op)."""
    from cmdb_sync.archive import export_lines, write_lines
    from cmdb_sync.progress import reporting

    settings = _settings()
    with _database(settings) as database, reporting("export") as reporter:
        write_lines(export_lines(database.sessions, since=since, kind=kind), output, reporter)
    output.flush()
    _finish(reporter, "exported")


@main.group()
def journal() -> None:
    """The event journal: how big it is; its old months out to a file."""


@journal.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per month and kind, instead of a table.")
def stats(as_json: bool) -> None:
    """Deliveries and bytes by received month and kind (stored bytes: after PostgreSQL's
    compression), then what was archived (`journal archive`)."""
    import json

    from cmdb_sync.read.journal import journal_archives, journal_stats

    settings = _settings()
    with _database(settings) as database, database.sessions() as session:
        shares = journal_stats(session)
        archives = journal_archives(session)
    if as_json:
        for share in shares:
            click.echo(json.dumps(share.__dict__))
        for archive in archives:
            click.echo(json.dumps({"archive": archive}))
        return
    click.echo(f"{'month':<8} {'kind':<24} {'deliveries':>12} {'body bytes':>14} {'stored bytes':>14}")
    for share in shares:
        click.echo(
            f"{share.month:<8} {share.kind[:24]:<24} {share.deliveries:>12,} {share.body_bytes:>14,} "
            f"{share.stored_bytes:>14,}"
        )
    total = (sum(s.deliveries for s in shares), sum(s.body_bytes for s in shares), sum(s.stored_bytes for s in shares))
    click.echo(f"{'total':<8} {'':<24} {total[0]:>12,} {total[1]:>14,} {total[2]:>14,}")
    for archive in archives:
        state = f"on {archive['archived_at'][:10]}" if archive["finished_at"] else "under way"
        click.echo(
            f"archived before {archive['before'][:7]} ({state}): {archive['archived']:,} deliveries in "
            f"{archive['file']}, {archive['kept']:,} of them kept in the journal as last snapshots"
        )


@journal.command("archive")
@click.option("--before", required=True, type=Month(), help="Archive the deliveries received before this month.")
@click.option(
    "--to",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive file (default: cmdb-sync-journal-before-YYYY-MM.jsonl.gz here).",
)
def archive_(before: datetime, target: Path | None) -> None:
    """Write the deliveries received before a month to a gzip'd JSON Lines file (`import` reads it),
    then remove them from the journal, but for each object's last snapshot and last tombstone.
    Deliveries go on meanwhile. As-of reads before the archive's newest event are refused after."""
    from cmdb_sync.journal_archive import ArchiveRefused, archive
    from cmdb_sync.progress import reporting
    from cmdb_sync.times import month_text

    settings = _settings()
    with (
        _database(settings) as database,
        reporting("archive") as reporter,
        _stoppable(reporter, "archived before it stopped", "run the same command again to finish it"),
    ):
        try:
            done = archive(database.sessions, before, target, reporter)
        except ArchiveRefused as exc:
            raise click.ClickException(exc.detail) from None
    horizon = f"; as-of reads from {done.horizon.isoformat()} on" if done.horizon else ""
    click.echo(
        f"archived: {done.archived} deliveries received before {month_text(before)} in {done.file} "
        f"({done.kept} kept in the journal as last snapshots{horizon})",
        err=True,
    )


def appstack_http(base_url: str, token: str) -> httpx.Client:
    """The HTTP client backfill talks to AppStack with (tests put a fake AppStack behind it)."""
    import httpx

    return httpx.Client(base_url=base_url, headers={"x-yunxiao-token": token}, timeout=30.0)


@main.command()
@click.option("--org", required=True, help="The AppStack organization id.")
@click.option("--app", help="Only this app (and nothing is deleted outside it).")
@click.option("--base-url", default=None, help="OpenAPI base URL (default: the central edition's).")
@click.option("--edition", type=click.Choice(["central", "region"]), default="central", show_default=True)
@click.option(
    "--max-delete", default="10%", show_default=True, help="Refuse to delete more than this share of what is held."
)
def backfill(org: str, app: str | None, base_url: str | None, edition: str, max_delete: str) -> None:
    """Pull the org's current apps, envs, variable groups and orchestrations from the AppStack OpenAPI
    and ingest them as snapshot events; delete what the source no longer lists. Resumable."""
    from cmdb_sync.appstack import CENTRAL_BASE_URL, AppStackClient, AppStackError
    from cmdb_sync.backfill import Backfill, parse_max_delete
    from cmdb_sync.progress import reporting

    settings = _settings()
    if not settings.appstack_token:
        raise click.ClickException(
            "CMDB_SYNC_APPSTACK_TOKEN is not set: a personal access token with read access to AppStack"
        )
    try:
        fraction = parse_max_delete(max_delete)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        with (
            _database(settings) as database,
            appstack_http(base_url or CENTRAL_BASE_URL, settings.appstack_token) as http,
            reporting("backfill") as reporter,
            _stoppable(reporter, "backfilled before it stopped", "run the same command again to resume"),
        ):
            client = AppStackClient(http, org=org, edition=edition)
            report = Backfill(database.sessions, client, org=org, app=app, max_delete=fraction, reporter=reporter).run()
    except AppStackError as exc:
        raise click.ClickException(f"{exc.detail} (progress is kept: run the same command again to resume)") from None
    resumed = " (resumed)" if report.resumed else ""
    click.echo(
        f"backfill {report.run_id}{resumed}: {report.apps_seen} apps ({report.apps_skipped} done before), "
        f"{reporter.tally.summary()}, {client.requests} requests to AppStack",
        err=True,
    )
    if report.deletions_withheld:
        msg = (
            f"{report.to_delete} of {report.held} held objects are gone from the source, more than "
            f"--max-delete {max_delete}: nothing was deleted. Check the org, then rerun with a larger --max-delete."
        )
        raise click.ClickException(msg)
