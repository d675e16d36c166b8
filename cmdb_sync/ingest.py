"""The one pipeline every event goes through, whoever brings it: journal, then project, in batches.

It knows nothing of HTTP: the webhook route (through the server's group-commit writer), ``import``,
``backfill`` and ``replay`` all call it. One transaction per batch: the ids already journaled are
duplicates; the others are projected set-based by ``projections.batch`` (each event's status what
one-by-one processing in the batch's order would give) and journaled with their status in one
multi-row insert whose primary key settles a race between processes; the batch commits once. A
projection that fails leaves its journal row standing as ``failed``; a delivery the database
refuses outright is retried alone, so it never fails its batch-mates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import describe_error, is_data_error, retrying, write_lock
from cmdb_sync.errors import BadDelivery, CmdbSyncError, DatabaseUnavailable
from cmdb_sync.events import Envelope, parse_envelope, scrub_nul
from cmdb_sync.models import Event, EventId, stored_json
from cmdb_sync.projections import bulk
from cmdb_sync.projections.batch import MAX_ERROR_CHARS, Outcome, look_up, prepare, project_isolated, write
from cmdb_sync.projections.deferral import Deferral
from cmdb_sync.status import Status
from cmdb_sync.times import now_utc

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"x-appstack-token", "authorization", "cookie", "proxy-authorization"})


Connect = Callable[[], AbstractContextManager[Connection]]


class HeldConnection:
    """One connection kept from batch to batch (the server's writer): taking one from the pool for
    every batch cost a checkout and its ping, a round trip (measured: 7% of the writer's time).
    It goes back to the pool after any error (whose reset drops it if it is broken) and after a
    pause of ``IDLE_SECONDS``, so the next batch takes one the pool has pinged: a connection the
    database dropped meanwhile (a restart) is never the one a delivery is written on."""

    IDLE_SECONDS = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._used = 0.0

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        if self._conn is not None and monotonic() - self._used > self.IDLE_SECONDS:
            self.close()
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            yield self._conn
        except BaseException:
            self.close()
            raise
        finally:
            self._used = monotonic()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    status: Status
    error: str | None = None
    kind: str | None = None
    action: str | None = None
    conflict: bool = False  # a duplicate whose body differs from the one journaled


@dataclass(frozen=True)
class Delivery:
    """One delivery as received: headers (the token still in them), the raw body, when it came."""

    headers: Mapping[str, str]
    raw: bytes | str
    received_at: datetime | None = None


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        key: (REDACTED if key.lower() in SECRET_HEADERS else value) for key, value in scrub_nul(dict(headers)).items()
    }


def decode_body(raw: bytes | str) -> str:
    """The body as text, for the journal: parse-able JSON is UTF-8, -16 or -32, never anything else."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        msg = f"body: not valid {exc.encoding} text at byte {exc.start}"
        raise BadDelivery(msg, field="body") from None


def engine_of(sessions: sessionmaker[Session] | Engine) -> Engine:
    return sessions if isinstance(sessions, Engine) else sessions.kw["bind"]


def ingest(
    sessions: sessionmaker[Session] | Engine,
    headers: Mapping[str, str],
    raw: bytes | str,
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """Journal one delivery and project it. Raises BadDelivery (not journaled) or DatabaseUnavailable."""
    (outcome,) = ingest_batch(sessions, [Delivery(headers, raw, received_at)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def ingest_batch(
    sessions: sessionmaker[Session] | Engine,
    deliveries: Sequence[Delivery],
    *,
    connect: Connect | None = None,
    deferral: Deferral | None = None,
) -> list[IngestResult | BadDelivery | DatabaseUnavailable]:
    """Journal and project deliveries in one transaction; each gets its result, or the error that
    refused it (BadDelivery: not journaled; DatabaseUnavailable: nothing committed). ``connect``
    gives the connection to write on (the server's writer keeps one: ``HeldConnection``); by
    default, one from the engine's pool. ``deferral``: an import's, which knows the snapshots that
    a newer one later in its input overwrites, and leaves their writes to it."""
    engine = engine_of(sessions)
    connect = connect or engine.connect
    results: list[Any] = [None] * len(deliveries)
    journal: list[tuple[int, Envelope, dict[str, Any]]] = []
    for index, delivery in enumerate(deliveries):
        try:
            envelope, _ = parse_envelope(dict(delivery.headers), delivery.raw)
            journal.append((index, envelope, _journal_row(envelope, delivery)))
        except BadDelivery as exc:
            results[index] = exc
    if not journal:
        return results
    try:
        written = _with_retries(engine, connect, journal, deferral)
    except (DatabaseUnavailable, BadDelivery) as exc:
        if len(journal) == 1 or getattr(exc, "connection_lost", False):
            for index, _, _ in journal:
                results[index] = exc
            return results
        log.info("a batch of %d deliveries failed (%s); writing them one by one", len(journal), exc.detail)
        written = _Written({}, set())
        for entry in journal:
            try:
                alone = _with_retries(engine, connect, [entry], deferral)
            except (DatabaseUnavailable, BadDelivery) as refused:
                results[entry[0]] = refused
                continue
            written.outcomes.update(alone.outcomes)
            written.conflicts.update(alone.conflicts)
    for index, envelope, _ in journal:
        if index in written.outcomes:
            status, error = written.outcomes[index]
            results[index] = IngestResult(
                envelope.id,
                status,
                error,
                kind=envelope.kind,
                action=envelope.action,
                conflict=index in written.conflicts,
            )
    return results


UNAVAILABLE = "database unavailable: the delivery was not stored; send it again later"


def _unavailable(exc: SQLAlchemyError) -> CmdbSyncError:
    """What a failed write tells the sender: a 400 when the database refused the delivery's own
    data (sending it again cannot help), else a 503 that says only what to do; the driver's words
    go to the log, never to the sender."""
    if is_data_error(exc):
        return BadDelivery(f"refused by the database: {describe_error(exc)}"[:MAX_ERROR_CHARS], field="body")
    log.warning("database unavailable: %s", describe_error(exc))
    error = DatabaseUnavailable(UNAVAILABLE)
    error.connection_lost = bool(getattr(exc, "connection_invalidated", False))
    return error


def _with_retries(
    engine: Engine, connect: Connect, journal: list[tuple[int, Envelope, dict[str, Any]]], deferral: Deferral | None
) -> _Written:
    try:
        return retrying(lambda: _journal_and_project(engine, connect, journal, deferral))
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc


# A delivery journaled with one of these statuses was never projected: sent again carrying
# something else (a body, an action, an app), it is tried again with that, which replaces what
# was journaled. Sent again unchanged it is a duplicate (an export imported back is a no-op);
# `replay --failed` retries unchanged ones after a fix.
TRIED_AGAIN = frozenset({Status.UNSUPPORTED.value, Status.FAILED.value})


def _journal_and_project(
    engine: Engine, connect: Connect, journal: list[tuple[int, Envelope, dict[str, Any]]], deferral: Deferral | None
) -> _Written:
    """One transaction: project the deliveries never projected, then journal them with their status.

    An id journaled as applied or stale is a duplicate and is not projected (a different body is
    reported as a conflict, never merged); one journaled as unsupported or failed is tried again
    when it carries something else.
    Two processes receiving one id at once may both project it (the second's write is stale
    against the first's, and the rest is idempotent); ``event_ids`` then keeps one and the other
    answers duplicate. Each row is written once, with its final status; one tried again keeps the
    time it was first received (its journal month). An id whose month was archived is a duplicate."""
    written = _Written({index: (Status.DUPLICATE, None) for index, _, _ in journal}, set())
    if deferral is not None:
        deferral.attempt()
    # a batch is pipelined (PostgreSQL): a database error then fails it as a whole, and
    # ingest_batch writes its deliveries one by one, each alone and isolated
    pipelining = len(journal) > 1
    with write_lock(engine), connect() as conn, bulk.pipelined(conn, enabled=pipelining), conn.begin():
        first: dict[str, int] = {}
        for index, envelope, _ in journal:
            first.setdefault(envelope.id, index)
        candidates = [(index, envelope, row) for index, envelope, row in journal if first[envelope.id] == index]
        # in a pipeline, the held versions of every candidate's object are asked for first, so that
        # the journal's lookup brings them back with its own round trip (a duplicate's are not
        # needed: few are); alone, the delivery is looked up and written in its savepoint
        ahead = None
        if pipelining:
            prepared = prepare([envelope for _, envelope, _ in candidates])
            ahead = (prepared, look_up(conn, prepared))
        held = bulk.journaled(conn, EventId.__table__, Event.__table__, [envelope.id for _, envelope, _ in candidates])
        fresh, again = [], []
        for position, entry in enumerate(candidates):
            index, envelope, row = entry
            if envelope.id not in held:
                fresh.append(position)
                continue
            status, body, action, app = held[envelope.id]
            if status is None or body is None:  # archived: it was projected in its time
                continue
            changed = _differs(body, row["body"]) or (action, app) != (envelope.action, envelope.app)
            if status in TRIED_AGAIN and changed:
                again.append(position)
            elif status not in TRIED_AGAIN and _differs(body, row["body"]):
                log.warning(
                    "conflict: event %s was received before with a different body; the first is kept", envelope.id
                )
                written.conflicts.add(index)
        if not fresh and not again:
            return written
        projecting = [candidates[position] for position in fresh + again]
        envelopes = [envelope for _, envelope, _ in projecting]
        looked_up = (ahead[0].only(fresh + again), ahead[1]()) if ahead is not None else None
        # alone, a delivery the database refuses is kept as failed; in a batch, it fails the batch,
        # whose deliveries ingest_batch then writes one by one
        if len(projecting) == 1 or looked_up is None:
            projected = project_isolated(conn, envelopes, looked_up, deferral)
        else:
            projected = write(conn, *looked_up, deferral)
        rows = [
            {**row, "status": status.value, "error": error}
            for (_, _, row), (status, error) in zip(projecting, projected, strict=True)
        ]
        replaced = bulk.replace_journaled(conn, Event.__table__, rows[len(fresh) :], sorted(TRIED_AGAIN))
        claimed = bulk.journal(conn, EventId.__table__, Event.__table__, rows[: len(fresh)])
    if deferral is not None:
        deferral.commit()
    inserted = claimed()  # read after the commit, with its round trip
    for (index, envelope, _), outcome in zip(projecting, projected, strict=True):
        if envelope.id in inserted or envelope.id in replaced:
            written.outcomes[index] = outcome
    return written


@dataclass(frozen=True)
class _Written:
    outcomes: dict[int, Outcome]
    conflicts: set[int]


def _differs(stored: str, body: str) -> bool:
    return stored != body and stored_json(stored) != stored_json(body)


def record_statuses(conn: Connection, outcomes: Sequence[tuple[str, Outcome]]) -> None:
    """Write each event's new status (and error) to the journal, in one statement."""
    rows = [(event_id, status.value, error) for event_id, (status, error) in outcomes]
    bulk.record_statuses(conn, Event.__table__, rows)


def _journal_row(envelope: Envelope, delivery: Delivery) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "kind": envelope.kind,
        "action": envelope.action,
        "app": envelope.app,
        "org_id": envelope.org_id,
        "actor_id": envelope.actor_id,
        "time": envelope.time,
        "received_at": delivery.received_at or now_utc(),
        "headers": redact_headers(delivery.headers),
        "body": decode_body(delivery.raw),
    }
