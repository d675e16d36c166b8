"""The one pipeline every event goes through, whoever brings it: journal, then project.

It knows nothing of HTTP: the webhook route, ``import``, ``backfill`` and ``replay`` all call it.
One transaction per delivery: the journal row is inserted first (its primary key is what finds
duplicates, so two processes receiving one id apply it once), then the projection runs inside a
savepoint, so a projection that fails leaves the journal row standing as ``failed``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import describe_error, upsert, write_lock
from cmdb_sync.errors import DatabaseUnavailable, ProjectionError
from cmdb_sync.events import Envelope, parse_envelope, scrub_nul
from cmdb_sync.models import Event
from cmdb_sync.projections import REGISTRY
from cmdb_sync.status import Status
from cmdb_sync.times import now_utc

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"x-appstack-token", "authorization", "cookie", "proxy-authorization"})
MAX_ERROR_CHARS = 2000
# PostgreSQL serialization failure and deadlock: the transaction is retried as a whole.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    status: Status
    error: str | None = None
    kind: str | None = None
    action: str | None = None


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        key: (REDACTED if key.lower() in SECRET_HEADERS else value) for key, value in scrub_nul(dict(headers)).items()
    }


def decode_body(raw: bytes | str) -> str:
    """The body as text, for the journal: parse-able JSON is UTF-8, -16 or -32, never anything else."""
    if isinstance(raw, str):
        return raw
    return raw.decode(json.detect_encoding(raw))


def project(session: Session, envelope: Envelope) -> tuple[Status, str | None]:
    """Apply one journaled event to the projections, inside a savepoint; never raises for bad data."""
    if envelope.time is None:
        return Status.FAILED, envelope.time_error
    projection = REGISTRY.get(envelope.kind)
    if projection is None or envelope.action not in projection.actions:
        return Status.UNSUPPORTED, None
    try:
        with session.begin_nested():
            return Status(projection.apply(session, envelope)), None
    except ProjectionError as exc:
        return Status.FAILED, str(exc)[:MAX_ERROR_CHARS]
    except OperationalError:
        raise
    except Exception as exc:  # a projection bug must not lose the event: it is kept as failed
        log.exception("projection of event %s failed", envelope.id)
        return Status.FAILED, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def _is_retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def ingest(
    session_factory: sessionmaker[Session],
    headers: Mapping[str, str],
    raw: bytes | str,
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """Journal one delivery and project it. Raises BadDelivery (not journaled) or DatabaseUnavailable."""
    envelope, _ = parse_envelope(dict(headers), raw)
    row = {
        "id": envelope.id,
        "kind": envelope.kind,
        "action": envelope.action,
        "app": envelope.app,
        "org_id": envelope.org_id,
        "actor_id": envelope.actor_id,
        "time": envelope.time,
        "received_at": received_at or now_utc(),
        "status": Status.RECEIVED,
        "error": None,
        "headers": redact_headers(headers),
        "body": decode_body(raw),
    }
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _journal_and_project(session_factory, envelope, row)
        except DBAPIError as exc:
            if _is_retryable(exc) and attempt < MAX_ATTEMPTS:
                log.info("retrying event %s after %s", envelope.id, exc.orig)
                continue
            raise DatabaseUnavailable(f"database unavailable: {describe_error(exc)}") from exc
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"database unavailable: {describe_error(exc)}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _journal_and_project(
    session_factory: sessionmaker[Session], envelope: Envelope, row: dict[str, Any]
) -> IngestResult:
    with write_lock(session_factory), session_factory() as session, session.begin():
        inserted = upsert(session, Event.__table__, row, conflict=("id",), returning=Event.__table__.c.id)
        if inserted is None:
            return IngestResult(envelope.id, Status.DUPLICATE, kind=envelope.kind, action=envelope.action)
        status, error = project(session, envelope)
        session.execute(update(Event).where(Event.id == envelope.id).values(status=status, error=error))
    return IngestResult(envelope.id, status, error, kind=envelope.kind, action=envelope.action)
