"""Archived deliveries in and out: one JSON document a line.

A line is ``{"headers": {...}, "body": {...}}`` (``export`` adds ``received_at``), or a bare body.
Import also reads a file that holds one such document over several lines (a delivery saved from
AppStack's webhook log, the seed fixtures) or a JSON array of them. Import goes through the same
pipeline as the endpoint, so statuses mean the same; a document that cannot be ingested is reported
with where it is and skipped, never stopping the rest. Importing an export into the same database is
all duplicates; into an empty one it rebuilds the same state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import keyset_batches
from cmdb_sync.errors import BadDelivery, DatabaseUnavailable
from cmdb_sync.events import json_loads
from cmdb_sync.ingest import Delivery, ingest_batch
from cmdb_sync.models import Event, stored_json
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import REGISTRY
from cmdb_sync.status import Status

EXPORT_BATCH = 500
IMPORT_BATCH = 2000


def headers_for_bare_body(body: dict[str, Any]) -> dict[str, str]:
    """Headers a bare body implies: kind from ``objectKind``, app from the attributes, action from
    a top-level ``action`` when the archive kept one, else the kind's default (history kinds only
    send status updates; an object kind's snapshot without an action is taken to say it exists)."""
    kind = body.get("objectKind")
    headers: dict[str, str] = {}
    if not isinstance(kind, str):
        return headers
    headers["X-AppStack-Event"] = kind
    projection = REGISTRY.get(kind)
    action = body.get("action")
    if isinstance(action, str):
        headers["X-AppStack-Action"] = action
    elif projection is not None:
        headers["X-AppStack-Action"] = projection.default_action
    app = projection.app_of(body.get("objectAttributes")) if projection is not None else None
    if app:
        headers["X-AppStack-App"] = app
    return headers


@dataclass(frozen=True)
class ArchivedDelivery:
    headers: dict[str, str]
    raw: bytes
    received_at: datetime | None


def parse_line(line: str) -> ArchivedDelivery:
    """One archive line, or BadDelivery saying what is wrong with it."""
    try:
        document = json_loads(line)
    except ValueError as exc:
        msg = f"not valid JSON ({exc})"
        raise BadDelivery(msg) from None
    if not isinstance(document, dict):
        msg = "not a JSON object"
        raise BadDelivery(msg)
    if "body" in document and "objectKind" not in document:
        headers, body = document.get("headers") or {}, document["body"]
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            msg = "headers: must be an object of strings"
            raise BadDelivery(msg)
    else:
        body = document
        headers = headers_for_bare_body(document)
    received_at = None
    if isinstance(document.get("received_at"), str) and "body" in document:
        try:
            received_at = datetime.fromisoformat(document["received_at"])
        except ValueError:
            msg = "received_at: not ISO-8601"
            raise BadDelivery(msg) from None
        if received_at.tzinfo is None:
            msg = "received_at: needs a UTC offset"
            raise BadDelivery(msg)
    raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return ArchivedDelivery(headers=headers, raw=raw.encode(), received_at=received_at)


def documents(name: str, source: TextIO) -> Iterator[tuple[str, str | BadDelivery]]:
    """The archived deliveries of one file, each with where it is (``FILE line N``, ``FILE item N``).

    A file whose first line is a JSON object on its own is JSON Lines, read a line at a time (an
    export of millions stays flat in memory). Otherwise the file is one JSON document, over one
    line or several: an object is one delivery, an array a list of them."""
    lines = iter(source)
    head: list[str] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    first = head[-1] if head else ""
    if not first.strip():
        return
    if _is_document(first) and not first.lstrip().startswith("["):  # a one-line array is one document
        yield f"{name} line {len(head)}", first
        for number, line in enumerate(lines, start=len(head) + 1):
            if line.strip():
                yield f"{name} line {number}", line
        return
    text = "".join(head) + "".join(lines)
    try:
        document = json.loads(text)
    except ValueError as exc:
        yield name, BadDelivery(f"not JSON Lines, nor one JSON document ({exc})")
        return
    if isinstance(document, list):
        for number, item in enumerate(document, start=1):
            yield f"{name} item {number}", json.dumps(item, ensure_ascii=False)
    else:
        yield name, json.dumps(document, ensure_ascii=False)


def count_json_lines(source: TextIO) -> int | None:
    """How many documents a seekable JSON Lines file holds (for a progress bar); None for a file
    of one JSON document over several lines. The file is left at its start."""
    count = 0
    json_lines = None
    for line in source:
        if line.strip():
            if json_lines is None:
                json_lines = _is_document(line) and not line.lstrip().startswith("[")
            count += 1
    source.seek(0)
    return count if json_lines else None


def _is_document(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def import_documents(
    session_factory: sessionmaker[Session],
    located: Iterable[tuple[str, str | BadDelivery]],
    reporter: Reporter,
    *,
    batch_size: int = IMPORT_BATCH,
) -> None:
    """Ingest every document, a batch at a time; a bad one is noted with where it is and counted as ``invalid``."""
    batch: list[tuple[str, Delivery]] = []
    for where, text in located:
        try:
            if isinstance(text, BadDelivery):
                raise text
            archived = parse_line(text)
        except BadDelivery as exc:
            _invalid(reporter, where, exc)
            continue
        batch.append((where, Delivery(archived.headers, archived.raw, archived.received_at)))
        if len(batch) == batch_size:
            _ingest(session_factory, batch, reporter)
            batch = []
    _ingest(session_factory, batch, reporter)


def _ingest(session_factory: sessionmaker[Session], batch: list[tuple[str, Delivery]], reporter: Reporter) -> None:
    if not batch:
        return
    for (where, _), result in zip(batch, ingest_batch(session_factory, [d for _, d in batch]), strict=True):
        if isinstance(result, DatabaseUnavailable):
            raise result
        if isinstance(result, BadDelivery):
            _invalid(reporter, where, result)
        else:
            reporter.advance(result.status)


def _invalid(reporter: Reporter, where: str, exc: BadDelivery) -> None:
    reporter.note(f"{where}: skipped: {exc}")
    reporter.advance(Status.INVALID)


def export_lines(
    session_factory: sessionmaker[Session], *, since: datetime | None = None, kind: str | None = None
) -> Iterator[str]:
    """The journal as archive lines, in the order it was received, read in keyset batches."""
    stmt = select(Event.id, Event.headers, Event.body, Event.received_at)
    if since is not None:
        stmt = stmt.where(Event.time >= since)
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    for batch in keyset_batches(session_factory, stmt, [Event.received_at, Event.id], EXPORT_BATCH):
        for event in batch:
            yield export_line(event)


def export_line(event: Any) -> str:
    """One journal row (``headers``, ``body``, ``received_at``) as an archive line."""
    document = {"headers": event.headers, "body": stored_json(event.body), "received_at": event.received_at.isoformat()}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def write_lines(lines: Iterable[str], out: TextIO, reporter: Reporter) -> None:
    for line in lines:
        out.write(line + "\n")
        reporter.advance(Status.EXPORTED)
