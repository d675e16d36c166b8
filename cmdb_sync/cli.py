"""The ``cmdb-sync`` command: serve, db, and the operator commands."""

from __future__ import annotations

import logging
import os
import tempfile

import click
from sqlalchemy.exc import SQLAlchemyError

from cmdb_sync import migrate
from cmdb_sync.db import make_engine
from cmdb_sync.settings import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database_error(exc: SQLAlchemyError) -> click.ClickException:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return click.ClickException(f"database: {first[0] if first else type(exc).__name__}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmdb-sync")
def main() -> None:
    """cmdb-sync: the system of record for AppStack webhooks."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--migrate", "run_migrations", is_flag=True, help="Upgrade a PostgreSQL schema that is behind.")
def serve(host: str, port: int, workers: int, run_migrations: bool) -> None:
    """Run the webhook receiver and the read API (granian, ASGI).

    On SQLite the database is created and migrated here; on PostgreSQL a schema that is not at the
    newest migration stops the start, unless --migrate.
    """
    from granian.constants import Interfaces
    from granian.server import Server

    settings = _settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings.check_webhook_auth()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if settings.is_sqlite or run_migrations:
            migrate.upgrade(settings.database_url)
        else:
            engine = make_engine(settings.database_url)
            try:
                current = migrate.current_revision(engine)
            finally:
                engine.dispose()
            head = migrate.head_revision()
            if current != head:
                msg = (
                    f"the database schema is at {current or 'no revision'}, the newest is {head}: "
                    "run `cmdb-sync db upgrade` first, or start with --migrate"
                )
                raise click.ClickException(msg)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    # Build the app once here: what would stop every worker is said once, before any starts.
    from cmdb_sync.app import create_app

    try:
        create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cmdb-sync-metrics-")
    click.echo(f"cmdb-sync listening on http://{host}:{port} ({workers} worker(s))", err=True)
    Server(
        "cmdb_sync.app:app_factory",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers,
        log_access=False,
    ).serve()


@main.group()
def db() -> None:
    """Schema migrations (Alembic), on the database of CMDB_SYNC_DATABASE_URL."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the schema (default: to the newest migration)."""
    settings = _settings()
    try:
        migrate.upgrade(settings.database_url, revision)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision", default="-1")
def downgrade(revision: str) -> None:
    """Downgrade the schema (default: one migration back; 'base' empties it)."""
    settings = _settings()
    try:
        migrate.downgrade(settings.database_url, revision)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    click.echo(f"database at {revision}")


@db.command()
def current() -> None:
    """Print the schema's revision and the newest one."""
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        revision = migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from None
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if revision == head else "behind: run `cmdb-sync db upgrade`"
    click.echo(f"current: {revision or 'none'}\nnewest:  {head}\n{state}")
