"""Archived deliveries in and out: one JSON document a line.

A line is ``{"headers": {...}, "body": {...}}`` (``export`` adds ``received_at``), or a bare body.
Import also reads a file that holds one such document over several lines (a delivery saved from
AppStack's webhook log, the seed fixtures) or a JSON array of them. Import goes through the same
pipeline as the endpoint, so statuses mean the same; a document that cannot be ingested is reported
with where it is and skipped, never stopping the rest. Importing an export into the same database is
all duplicates; into an empty one it rebuilds the same state.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import msgspec
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import FillingStatistics, keyset_batches, make_engine, make_session_factory, retrying
from cmdb_sync.errors import BadDelivery, DatabaseUnavailable
from cmdb_sync.events import LONE_SURROGATE_BODY, TOO_DEEP, header, json_decoded, json_loads, parse_envelope
from cmdb_sync.ingest import Delivery, engine_of, ingest_batch
from cmdb_sync.lanes import Lanes, LaneStopped, Pipe, running
from cmdb_sync.models import Event, stored_json
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import REGISTRY, object_tables
from cmdb_sync.projections.batch import project_isolated
from cmdb_sync.projections.deferral import Deferral
from cmdb_sync.status import Status
from cmdb_sync.times import parse_event_time, to_epoch_ms

EXPORT_BATCH = 500
IMPORT_BATCH = 2000
IMPORT_LANES = 2  # processes an import into PostgreSQL ingests in (see _import_in_lanes)
# A lane's batch: this process holds up to three a lane (in flight, ready, filling), each lane one;
# at 500 the import peaked at 259 MiB in all, at 1,000 at 285 MiB, as fast.
IMPORT_LANE_BATCH = 500


class ImportStopped(Exception):
    """An import ended before its input did (the database went away, a lane was killed): what it
    answered is journaled; importing the same input again finishes it (the rest are duplicates)."""


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


ObjectVersion = tuple[str, tuple[int, str]]  # an object (its kind and names), and an event's (epoch ms, id)


@dataclass(frozen=True)
class ArchivedDelivery:
    headers: dict[str, str]
    raw: bytes
    received_at: datetime | None
    event_id: str | None = None  # the body's id, where it has one
    object_key: str = ""  # what names its object (``object_key``)
    version: ObjectVersion | None = None  # its object and (time, id), for a survey (``object_version``)


# The attributes that name an event's object, or its app, by kind. The key of an object is never
# two (every event of an object has the same), though objects share a key: an env's is its app's.
_NAMED_BY = {
    "App": ("name",),
    "Env": ("appName", "app_name"),
    "AppOrchestration": ("sn",),
    "ChangeOrder": ("sn",),
    "ChangeRequest": ("sn",),
    "ReleaseStageExecution": ("engineInstanceId", "engine_instance_id"),
}


def object_key(headers: dict[str, str], body: Any) -> str:
    """A key shared by every event of one object, read off the body without validating it: an
    import deals deliveries to lanes by it, so that each object's are ingested in order."""
    kind = body.get("objectKind") if isinstance(body, dict) else None
    attributes = body.get("objectAttributes") if isinstance(body, dict) else None
    app = header(headers, "X-AppStack-App")  # as the projection reads it
    return _key_of(kind, attributes.get if isinstance(attributes, dict) else None, app)


def _key_of(kind: Any, attribute: Callable[[str], Any] | None, app: str | None) -> str:
    """``object_key`` of a body whose ``objectAttributes`` ``attribute`` reads (None: not an
    object), sent for ``app`` (its ``X-AppStack-App``)."""
    if not isinstance(kind, str):  # refused when ingested; dealt anywhere meanwhile
        kind = None
    if attribute is not None and kind is not None:
        for name in _NAMED_BY.get(kind, ()):
            value = attribute(name)
            if isinstance(value, str) and value:
                return f"{kind}:{value}"
    return f"{kind}:{app or ''}"


def object_version(headers: dict[str, str], body: Any) -> ObjectVersion | None:
    """The object an event's snapshot is of and its ``(time, id)``, read off the delivery without
    validating it, for the kinds whose every snapshot a newer one of the same object overwrites;
    None when it does not say them plainly. Only a guess at the object the projection will name
    (a wrong guess costs a write, never a snapshot: ``Deferral``)."""
    if not isinstance(body, dict):
        return None
    attributes = body.get("objectAttributes")
    if not isinstance(attributes, dict):
        return None
    app = header(headers, "X-AppStack-App")
    return _versioned(body.get("objectKind"), body.get("orgId"), body.get("id"), body.get("time"), attributes.get, app)


def _versioned(
    kind: Any, org: Any, event_id: Any, time: Any, attribute: Callable[[str], Any], app: str | None
) -> ObjectVersion | None:
    if kind == "App":
        names = (attribute("name"),)
    elif kind == "Env":  # named as the projections name them
        names = (attribute("appName") or app, attribute("name"))
    elif kind == "VariableGroup":
        names = (app, attribute("name"))
    elif kind == "AppOrchestration":
        names = (attribute("sn"),)
    else:
        return None
    if not isinstance(org, str) or not isinstance(event_id, str) or not all(isinstance(n, str) for n in names):
        return None
    if type(time) is not int:  # epoch ms, as AppStack sends it, is taken as it is
        try:
            time = to_epoch_ms(parse_event_time(time))
        except ValueError:
            return None
    return "\x1f".join((kind, org, *names)), (time, event_id)  # one string: a third of a tuple's memory


# A survey stops remembering objects past this many (about 300 bytes each), and the import then
# writes every snapshot, as it did without one.
SURVEY_OBJECTS = 200_000

Survey = dict[str, tuple[int, str]]  # each object's newest (epoch ms, id) in the input


def survey(sources: Iterable[TextIO]) -> Survey | None:
    """Each object's newest ``(time, id)`` in seekable JSON Lines files, read ahead of the import
    (each file is left at its start): a snapshot that a newer one overwrites later in the same
    input is then not written (``Deferral``). Reads only the fields that name the object (0.85 s
    of CPU for the bench's 200 MB, while the lanes start). None when there is nothing to go by
    (a file of one document, too many objects)."""
    newest: Survey = {}
    for source in sources:
        buffer = getattr(source, "buffer", None)  # bytes, where it can: msgspec reads them as they are
        lines: Iterable[bytes | str] = buffer if isinstance(buffer, io.BufferedIOBase) else source
        try:
            for line in lines:
                found = _line_version(line)
                if found is None:
                    continue
                key, version = found
                current = newest.get(key)
                if current is None and len(newest) == SURVEY_OBJECTS:
                    return None
                if current is None or version > current:
                    newest[key] = version
        finally:
            source.seek(0)
    return newest or None


class _Named(msgspec.Struct):
    """The attributes that name an event's object (``_NAMED_BY``, ``_versioned``)."""

    name: Any = None
    appName: Any = None
    app_name: Any = None
    sn: Any = None
    engineInstanceId: Any = None
    engine_instance_id: Any = None


class _Surveyed(msgspec.Struct):
    """What a survey reads of a line: the fields of a bare body, or of the body it wraps."""

    headers: dict[str, Any] | None = None  # of a line that wraps its body
    body: _Surveyed | None = None
    id: Any = None
    time: Any = None
    orgId: Any = None
    objectKind: Any = None
    objectAttributes: _Named | None = None


def _line_version(line: bytes | str) -> ObjectVersion | None:
    try:
        document = _decode_surveyed(line)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return None  # not JSON Lines, not strict JSON, not shaped as a delivery: the import says what it is
    body = document.body if document.body is not None and document.objectKind is None else document
    app = None
    if body is not document:  # a bare body's app is what the import will make of it: not read here
        headers = {name: value for name, value in (document.headers or {}).items() if isinstance(value, str)}
        app = header(headers, "X-AppStack-App")
    return _named_version(body, app)


def _named_version(body: _Surveyed, app: str | None) -> ObjectVersion | None:
    """``object_version`` of a body as a survey reads it, sent for ``app``."""
    named = body.objectAttributes
    if named is None:
        return None
    return _versioned(body.objectKind, body.orgId, body.id, body.time, lambda name: getattr(named, name), app)


_decode_surveyed = msgspec.json.Decoder(_Surveyed).decode
_TOP_LEVEL_TEXTS = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def _body_text(line: str, body: Any, *, wrapped: bool, strict: bool) -> bytes:
    """The body as it is journaled: the line's own text of it, when msgspec read the line (strict
    JSON, so the text says what re-encoding it would say, up to spacing and escapes, which a
    redelivery's duplicate check looks through: it compares parsed bodies). Encoding every body
    again was a quarter of an import's reading process (``json.dumps``: 9% of all its processes'
    samples). What only the standard library reads (NaN...) is encoded again, as it always was; a
    body archived as a string is that string."""
    try:
        if isinstance(body, str):  # written as a JSON string, it may hold an escaped lone surrogate
            return body.encode()
        if not strict:
            return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate, as the endpoint says it
        raise BadDelivery(LONE_SURROGATE_BODY) from None
    return bytes(_TOP_LEVEL_TEXTS(line)["body"]) if wrapped else line.strip().encode()


def parse_line(line: str) -> ArchivedDelivery:
    """One archive line, or BadDelivery saying what is wrong with it."""
    return _wrapped_line(line) or _any_line(line)


class _WrappedLine(msgspec.Struct):
    """A line that wraps its body, the body left as its text."""

    headers: dict[str, str] | None = None
    body: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    received_at: Any = None
    objectKind: Any = msgspec.UNSET  # present: a bare body that has a "body" attribute


_decode_wrapped = msgspec.json.Decoder(_WrappedLine).decode


def _wrapped_line(line: str) -> ArchivedDelivery | None:
    """``_any_line``'s answer for the usual line (``{"headers": {...}, "body": {...}}``, strict JSON,
    headers of strings, the body an object), read in one pass that leaves the body as its text
    and reads only what names its object (as a survey reads it); None for any other line.
    ``_any_line`` decoded every body whole, then the line again for the body's text (callgrind
    over 5,000 bench lines: 115k instructions a line against this reading's 80k). The one body
    this reads and ``_any_line`` would not take as strict JSON holds a number beyond a float's
    range (``1e400``): it is journaled as the line holds it, as the webhook journals it, where
    ``_any_line`` wrote it again (``Infinity``); both read back as the same body."""
    try:
        document = _decode_wrapped(line)
        if isinstance(document.body, msgspec.UnsetType) or not isinstance(document.objectKind, msgspec.UnsetType):
            return None
        body = _decode_surveyed(document.body)
    except (msgspec.DecodeError, UnicodeError, RecursionError):  # _any_line says what it is
        return None
    headers = document.headers or {}
    attributes = body.objectAttributes
    attribute = None if attributes is None else lambda name: getattr(attributes, name)
    app = header(headers, "X-AppStack-App")
    return ArchivedDelivery(
        headers=headers,
        raw=bytes(document.body),
        received_at=_received_at(document.received_at),
        event_id=_event_id(body.id),
        object_key=_key_of(body.objectKind, attribute, app),
        version=_named_version(body, app),
    )


def _received_at(value: Any) -> datetime | None:
    """An archive line's ``received_at`` (export writes it): ISO-8601 with its offset; anything
    but a string is not read."""
    if not isinstance(value, str):
        return None
    try:
        received_at = datetime.fromisoformat(value)
    except ValueError:
        msg = "received_at: not ISO-8601"
        raise BadDelivery(msg) from None
    if received_at.tzinfo is None:
        msg = "received_at: needs a UTC offset"
        raise BadDelivery(msg)
    return received_at


def _event_id(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) else None


def _any_line(line: str) -> ArchivedDelivery:
    """``parse_line`` for any line: decoded whole, with the standard library for what msgspec
    refuses (NaN, a lone surrogate), a bare body's headers made from it."""
    try:
        document, strict = json_decoded(line)
    except ValueError as exc:
        _refuse_undecodable(line)
        msg = f"not valid JSON ({exc})"
        raise BadDelivery(msg) from None
    except RecursionError:  # deeper than any reader goes (the webhook refuses past MAX_DEPTH)
        raise BadDelivery(TOO_DEEP) from None
    if not strict:  # msgspec takes only text that is Unicode throughout
        _refuse_undecodable(line)
    if not isinstance(document, dict):
        msg = "not a JSON object"
        raise BadDelivery(msg)
    wrapped = "body" in document and "objectKind" not in document
    if wrapped:
        headers, body = document.get("headers") or {}, document["body"]
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            msg = "headers: must be an object of strings"
            raise BadDelivery(msg)
        if not strict and not _unicode(headers):  # msgspec takes no lone surrogate; json.loads does
            msg = "headers: hold a lone surrogate (\\ud800-\\udfff without its pair), which is not Unicode text"
            raise BadDelivery(msg)
    else:
        body = document
        headers = headers_for_bare_body(document)
    received_at = _received_at(document.get("received_at")) if "body" in document else None
    return ArchivedDelivery(
        headers=headers,
        raw=_body_text(line, body, wrapped=wrapped, strict=strict),
        received_at=received_at,
        event_id=_event_id(body.get("id")) if isinstance(body, dict) else None,
        object_key=object_key(headers, body),
        version=object_version(headers if wrapped else {}, body),  # as ``survey`` reads it
    )


# `import` reads files with errors="surrogateescape": a byte that is not UTF-8 becomes U+DC80..U+DCFF
# in the text, and the line that holds it is refused, not the whole import.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _refuse_undecodable(line: str) -> None:
    found = _ESCAPED_BYTE.search(line)
    if found is not None:
        byte = ord(found.group()) - 0xDC00
        msg = f"not valid UTF-8 text (byte 0x{byte:02x} at character {found.start() + 1})"
        raise BadDelivery(msg)


def _unicode(value: Any) -> bool:
    """Whether a decoded value is Unicode text throughout (no database stores a lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


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
    except RecursionError:
        yield name, BadDelivery(TOO_DEEP)
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
    except RecursionError:  # a document, too deep to read: refused alone, with where it is
        return True
    return True


def import_documents(
    session_factory: sessionmaker[Session],
    located: Iterable[tuple[str, str | BadDelivery]],
    reporter: Reporter,
    *,
    batch_size: int | None = None,
    surveying: Callable[[], Survey | None] | None = None,
) -> None:
    """Ingest every document, a batch at a time; a bad one is noted with where it is and counted as
    ``invalid``. Into PostgreSQL, in lanes (``_import_in_lanes``), where a snapshot that a newer
    one overwrites later in the input (``surveying``: ``survey`` of the input) is not written."""
    batch_size = batch_size or IMPORT_BATCH
    engine = engine_of(session_factory)
    if engine.dialect.name == "postgresql" and IMPORT_LANES > 1:
        url = engine.url.render_as_string(hide_password=False)
        statistics = FillingStatistics(engine, [table.name for table in object_tables()])
        lane_batch = min(batch_size, IMPORT_LANE_BATCH)
        _import_in_lanes(url, _parsed(located, reporter), reporter, lane_batch, statistics, surveying)
        return
    batch: list[tuple[str, Delivery]] = []
    for where, archived in _parsed(located, reporter):
        batch.append((where, _delivery(archived)))
        if len(batch) == batch_size:
            _ingest(session_factory, batch, reporter)
            batch = []
    _ingest(session_factory, batch, reporter)


def _parsed(
    located: Iterable[tuple[str, str | BadDelivery]], reporter: Reporter
) -> Iterator[tuple[str, ArchivedDelivery]]:
    for where, text in located:
        try:
            if isinstance(text, BadDelivery):
                raise text
            yield where, parse_line(text)
        except BadDelivery as exc:
            _invalid(reporter, where, exc)


def _delivery(archived: ArchivedDelivery) -> Delivery:
    return Delivery(archived.headers, archived.raw, archived.received_at)


# --- into PostgreSQL, in lanes ---------------------------------------------------------------------
#
# An import is Python (parsing, snapshots, rows) and PostgreSQL's work in turn; two processes keep
# both cores busy. Deliveries are dealt to lanes by their object (``object_key``), so each
# object's deliveries are ingested in the file's order and answered as one process would; copies
# of one id in flight at once go to the lane of the first (one journals it, the other finds it
# journaled). A lane has one batch in flight at a time (it is sent its next only once it answered
# the last: neither side can block the other on a full pipe), and this process parses the next
# ones meanwhile.


def _import_in_lanes(
    url: str,
    parsed: Iterator[tuple[str, ArchivedDelivery]],
    reporter: Reporter,
    batch_size: int,
    statistics: FillingStatistics,
    surveying: Callable[[], Survey | None] | None,
) -> None:
    try:
        with running(_import_lane, [(url,)] * IMPORT_LANES, name="cmdb-sync import") as importing:
            surveyed = surveying() if surveying is not None else None  # while the lanes start
            dealer = _Dealer(importing, reporter, batch_size, statistics, surveyed or {})
            for number, (where, archived) in enumerate(parsed):
                dealer.deal(where, archived)
                if number % 64 == 0:
                    dealer.settle(wait=False)
            dealer.finish()
    except LaneStopped as exc:
        raise ImportStopped(f"import lane {exc.lane} {exc.detail}") from None


Batch = list[tuple[str, ArchivedDelivery]]


class _Dealer:
    """Deals parsed deliveries to the lanes. Each lane has a batch in flight, one ready to go the
    moment it answers, and one filling; this process blocks only when a lane has all three."""

    def __init__(
        self, lanes: Lanes, reporter: Reporter, batch_size: int, statistics: FillingStatistics, surveyed: Survey
    ) -> None:
        self.lanes, self.reporter, self.batch_size, self.statistics = lanes, reporter, batch_size, statistics
        self.surveyed = surveyed
        self.answered = 0
        count = len(lanes.processes)
        self.in_flight: list[Batch | None] = [None] * count
        self.ready: list[Batch | None] = [None] * count
        self.filling: list[Batch] = [[] for _ in range(count)]
        self.route: dict[str, int] = {}  # ids not answered yet, and their lane
        self.copies: Counter[str] = Counter()

    def deal(self, where: str, archived: ArchivedDelivery) -> None:
        event_id = archived.event_id
        lane = _lane_of(archived.object_key)
        if event_id is not None:
            lane = self.route.setdefault(event_id, lane)
            self.copies[event_id] += 1
        self.filling[lane].append((where, archived))
        if len(self.filling[lane]) >= self.batch_size:
            while self.ready[lane] is not None:
                self.settle(wait=True)
            self.ready[lane], self.filling[lane] = self.filling[lane], []
            self._send_ready(lane)

    def finish(self) -> None:
        for lane, batch in enumerate(self.filling):
            if batch:
                while self.ready[lane] is not None:
                    self.settle(wait=True)
                self.ready[lane], self.filling[lane] = batch, []
                self._send_ready(lane)
        while any(batch is not None for batch in self.in_flight):
            self.settle(wait=True)
        for lane in range(len(self.in_flight)):
            self.lanes.send(lane, None)  # no more: the lane says it is done
        while self.lanes.working:
            for _ in self.lanes.receive():
                pass

    def settle(self, *, wait: bool) -> None:
        """Report what the lanes answered (waiting for an answer when ``wait``), and send each
        lane that answered its ready batch."""
        for lane, (_, outcomes) in self.lanes.receive(None if wait else 0):
            batch, self.in_flight[lane] = self.in_flight[lane] or [], None
            for (where, archived), outcome in zip(batch, outcomes, strict=True):
                if archived.event_id is not None:
                    self.copies[archived.event_id] -= 1
                    if not self.copies[archived.event_id]:
                        del self.copies[archived.event_id], self.route[archived.event_id]
                _report(self.reporter, where, outcome)
            self._send_ready(lane)
            self.answered += len(batch)
            self.statistics.written(self.answered)

    def _send_ready(self, lane: int) -> None:
        batch = self.ready[lane]
        if batch is None or self.in_flight[lane] is not None:
            return
        self.in_flight[lane], self.ready[lane] = batch, None
        # plain tuples: pickling a dataclass instance cost twice as much (the pipe carries 200 MB an import)
        self.lanes.send(lane, [self._sent(archived) for _, archived in batch])

    def _sent(self, archived: ArchivedDelivery) -> tuple[Any, ...]:
        """What a lane is sent of a delivery; last, the id of the newer event of its object that
        comes later in the input, if the survey saw one."""
        later = None
        if archived.version is not None:
            key, version = archived.version
            newest = self.surveyed.get(key)
            if newest is not None and newest > version:
                later = newest[1]
        return archived.headers, archived.raw, archived.received_at, archived.event_id, later


def _lane_of(key: str) -> int:
    return zlib.crc32(key.encode()) % IMPORT_LANES


def _import_lane(url: str, inbox: Pipe, outbox: Pipe) -> None:
    """One lane of an import, in a process of its own: each batch it is sent, ingested, answered.
    A snapshot that a later one of the same object overwrites is applied but not written
    (``Deferral``); one still due is written from the journal before the lane says it is done."""
    engine = make_engine(url, pool_size=1)
    deferral = Deferral()
    try:
        sessions = make_session_factory(engine)
        while (sent := inbox.recv()) is not None:
            deliveries = [Delivery(headers, raw, received_at) for headers, raw, received_at, _, _ in sent]
            deferral.later = {event_id: later for _, _, _, event_id, later in sent if later is not None}
            results = ingest_batch(sessions, deliveries, deferral=deferral)
            outbox.send(("batch", [_outcome(result) for result in results]))
            _write_deferred(engine, deferral, deferral.due(event_id for _, _, _, event_id, _ in sent))
        _write_deferred(engine, deferral, [version[1] for version, _ in deferral.pending.values()])
    finally:
        engine.dispose()


def _write_deferred(engine: Any, deferral: Deferral, due: list[str]) -> None:
    """Write the deferred snapshots that are ``due`` (their newer event came and wrote nothing, or
    the input is over) as the journal holds them, under the version guard, a batch at a time;
    their statuses stand. Read back from the journal, not kept: most are never due (on the bench
    journal, none)."""
    for start in range(0, len(due), IMPORT_LANE_BATCH):
        ids = due[start : start + IMPORT_LANE_BATCH]

        def write(ids: list[str] = ids) -> None:
            with engine.begin() as conn:
                columns = (Event.id, cast(Event.headers, Text), Event.body)
                journaled = conn.execute(select(*columns).where(Event.id.in_(ids))).all()
                project_isolated(
                    conn, [envelope for _, headers, body in journaled if (envelope := _envelope(headers, body))]
                )

        retrying(write)
        deferral.settled(ids)


def _envelope(headers: str, body: str) -> Any:
    """A journaled delivery's envelope; None if it is no longer one (it was, when it was journaled)."""
    try:
        return parse_envelope(json_loads(headers), body)[0]
    except BadDelivery:
        return None


Outcome = tuple[str, str | None]  # a delivery's status, or "invalid" or "unavailable" and why


def _outcome(result: Any) -> Outcome:
    """What ``ingest_batch`` answered for a delivery, as a lane sends it back (an error is not sent
    across processes, its words are)."""
    if isinstance(result, DatabaseUnavailable):
        return "unavailable", result.detail
    if isinstance(result, BadDelivery):
        return "invalid", result.detail
    return result.status.value, None


def _report(reporter: Reporter, where: str, outcome: Outcome) -> None:
    """Count a delivery's outcome; a bad one is noted with where it is; the database gone stops the import."""
    what, detail = outcome
    if what == "unavailable":
        raise DatabaseUnavailable(detail or "")
    if what == "invalid":
        _invalid(reporter, where, BadDelivery(detail or ""))
    else:
        reporter.advance(what)


def _ingest(session_factory: sessionmaker[Session], batch: list[tuple[str, Delivery]], reporter: Reporter) -> None:
    if not batch:
        return
    for (where, _), result in zip(batch, ingest_batch(session_factory, [d for _, d in batch]), strict=True):
        _report(reporter, where, _outcome(result))


def _invalid(reporter: Reporter, where: str, exc: BadDelivery) -> None:
    reporter.note(f"{where}: skipped: {exc}")
    reporter.advance(Status.INVALID)


def export_lines(
    session_factory: sessionmaker[Session], *, since: datetime | None = None, kind: str | None = None
) -> Iterator[str]:
    """The journal as archive lines, in the order it was received (``received_order``)."""
    stmt = select(*EXPORTED_COLUMNS)
    if since is not None:
        stmt = stmt.where(Event.time >= since)
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    for batch in received_order(session_factory, stmt, EXPORT_BATCH):
        for event in batch:
            yield export_line(event)


# what an archive line is made of, and what puts the lines in order (``received_order``)
EXPORTED_COLUMNS = (Event.id, Event.headers, Event.body, Event.received_at, Event.status, Event.time)
HELD_AT_MOST = 10_000  # rows of one received millisecond ordered together, at most


def received_order(session_factory: sessionmaker[Session], selection: Any, batch_size: int) -> Iterator[list[Any]]:
    """The journal rows ``selection`` takes (``EXPORTED_COLUMNS``), in batches, in the order they
    were received as far as the journal knows it: by received time, which has millisecond
    precision, so that a group-commit batch's deliveries often share it. Within one millisecond
    they come in the order that gives each event its journaled status again when the lines are
    imported: the applied events first, oldest first (of one object, that is the order they
    applied in), then the others (a stale event was overtaken by one of those, or by an earlier
    one). By id alone, a stale delivery and the newer one of its object received in the same
    millisecond could change places, and their import answer the stale one applied.

    A batch ends at a change of received time: the last millisecond of one read is held back and
    ordered whole with the next read's, up to ``HELD_AT_MOST`` rows (a server receives a few
    thousand deliveries a second; only a file imported with one ``received_at`` on every line
    makes more share one, and memory stays bounded then, each chunk of them ordered alone)."""
    held: list[Any] = []
    for batch in keyset_batches(session_factory, selection, [Event.received_at, Event.id], batch_size):
        rows = held + batch
        last = rows[-1].received_at
        cut = len(rows)
        while cut and rows[cut - 1].received_at == last:
            cut -= 1
        if cut == 0 and len(rows) >= HELD_AT_MOST:
            cut = len(rows)
        ready, held = rows[:cut], rows[cut:]
        if ready:
            yield sorted(ready, key=_received_place)
    if held:
        yield sorted(held, key=_received_place)


def _received_place(row: Any) -> tuple[Any, ...]:
    if row.status == Status.APPLIED:
        return (row.received_at, 0, row.time, row.id)
    return (row.received_at, 1, row.id)


def export_line(event: Any) -> str:
    """One journal row (``headers``, ``body``, ``received_at``) as an archive line. The body goes
    as the journal holds it, spacing and escapes kept, so that importing the export journals the
    same text again (a restore is byte for byte); a body that cannot go verbatim on one line (a
    line break in it, a space around it, JSON only the standard library reads) is encoded again."""
    body = event.body
    if _one_line_object(body):
        headers = json.dumps(event.headers, ensure_ascii=False, separators=(",", ":"))
        return f'{{"headers":{headers},"body":{body},"received_at":"{event.received_at.isoformat()}"}}'
    document = {"headers": event.headers, "body": stored_json(body), "received_at": event.received_at.isoformat()}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _one_line_object(body: str) -> bool:
    """Whether ``body`` is a strict JSON object, starting and ending with its braces, on one line."""
    if not (body.startswith("{") and body.endswith("}")) or "\n" in body or "\r" in body:
        return False
    try:
        _TOP_LEVEL_TEXTS(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return True


def write_lines(lines: Iterable[str], out: TextIO, reporter: Reporter) -> None:
    for line in lines:
        out.write(line + "\n")
        reporter.advance(Status.EXPORTED)
