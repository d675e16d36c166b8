"""The serve process's writer, which every worker hands its deliveries to over a local socket.

Under ``cmdb-sync serve`` the group-commit writer runs in the serve process, not in each worker:
a worker reads a delivery, sends it here and waits for its answer; the writer journals and
projects whatever has arrived from every worker in one batch (``ingest.ingest_batch``), commits,
then answers each. Measured on 2 cores (bench/README.md): with the writer inside the worker, HTTP
and projection shared one core and the batches held ~8 deliveries (0.64x the baseline receiver);
here they run on two, and the batches hold what every sender has waiting.

The rules of group commit hold unchanged: an answer is sent only after the commit, so an
acknowledged delivery is durable; a delivery whose sender went away is still written (its retry
is then a duplicate); a worker that loses the writer answers 503, and sending again is safe (what
a worker that died had sent may or may not be written: none of it was acknowledged). Outside ``serve`` (the tests, another ASGI server) each process keeps its own writer
(``group_commit.GroupCommitWriter``).

The writer's loop is single-threaded: it reads frames while no batch is being written, and a batch
blocks it; what arrives meanwhile waits in the socket, to be the next batch.

Frames: a 4-byte big-endian length, then msgpack. A worker sends ``[id, headers, body,
received_at]``; the writer answers ``[id, "ok", event_id, status, error, kind, action, conflict]``
or ``[id, error class, detail, extra]``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import struct
import threading
from typing import Any, Protocol

import msgspec
from sqlalchemy import Engine

from cmdb_sync.errors import BadDelivery, CmdbSyncError, DatabaseUnavailable
from cmdb_sync.group_commit import write_batch
from cmdb_sync.ingest import Delivery, HeldConnection, IngestResult
from cmdb_sync.status import Status

log = logging.getLogger(__name__)

WRITER_SOCKET_ENV = "CMDB_SYNC_WRITER_SOCKET"
MAX_BATCH = 256
STOP_SECONDS = 10.0  # how long a stopping writer waits for workers still connected to close
MAX_FRAME_BYTES = 1 << 30  # far above any body the workers accept (CMDB_SYNC_MAX_BODY_BYTES)
UNREACHABLE = "the writer (the serve process) cannot be reached: the delivery was not stored; send it again later"
LOST = "the writer (the serve process) went away before answering: send the delivery again (a duplicate is answered as one)"

_LENGTH = struct.Struct(">I")
_ERRORS: dict[str, type[CmdbSyncError]] = {
    cls.__name__: cls for cls in (CmdbSyncError, BadDelivery, DatabaseUnavailable)
}


class Writer(Protocol):
    """What the webhook route hands a delivery to: a writer in its own process or in the serve process."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    async def submit(self, delivery: Delivery) -> IngestResult: ...

    async def check(self) -> None:
        """Raise DatabaseUnavailable when deliveries handed over now could not be written."""


class _Frames:
    """Splits a byte stream into decoded frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._decoder = msgspec.msgpack.Decoder()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, start)
            if size > MAX_FRAME_BYTES:
                msg = f"a frame of {size} bytes"
                raise ValueError(msg)
            end = start + _LENGTH.size + size
            if len(buffer) < end:
                break
            frames.append(self._decoder.decode(memoryview(buffer)[start + _LENGTH.size : end]))
            start = end
        del buffer[:start]
        return frames


_encoder = msgspec.msgpack.Encoder(enc_hook=str)


def _frame(message: list[Any]) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


def _answer(request_id: int, outcome: Any) -> list[Any]:
    if isinstance(outcome, IngestResult):
        return [
            request_id,
            "ok",
            outcome.event_id,
            outcome.status.value,
            outcome.error,
            outcome.kind,
            outcome.action,
            outcome.conflict,
        ]
    if isinstance(outcome, CmdbSyncError):
        return [request_id, type(outcome).__name__, outcome.detail, outcome.extra]
    return [request_id, CmdbSyncError.__name__, "unexpected error; it was logged", {}]


def _outcome(answer: list[Any]) -> IngestResult | CmdbSyncError:
    if answer[1] == "ok":
        _, _, event_id, status, error, kind, action, conflict = answer
        return IngestResult(event_id, Status(status), error, kind=kind, action=action, conflict=conflict)
    _, name, detail, extra = answer
    return _ERRORS.get(name, CmdbSyncError)(detail, **extra)


# --- the serve process's side --------------------------------------------------------------------


class WriterService:
    """Listens on a Unix socket (bound at construction, so workers started afterwards find it) and
    writes what the workers send, in batches, on a thread of its own."""

    def __init__(self, engine: Engine, path: str, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.path = path
        self.max_batch = max_batch
        self._connection = HeldConnection(engine)
        self._pending: list[tuple[_WorkerPeer, int, Delivery]] = []
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopping_at: float | None = None
        self.peers: set[_WorkerPeer] = set()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(512)
        self._thread = threading.Thread(target=self._run, name="cmdb-sync-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what has arrived, and what workers still connected send until they close (at most
        ``STOP_SECONDS``), then stop."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop)
            self._thread.join()
        self._listener.close()
        self._connection.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _stop(self) -> None:
        self._stopping = True
        self._stopping_at = self._loop.time()
        self._wake.set()

    def connected(self, peer: _WorkerPeer) -> None:
        self.peers.add(peer)

    def disconnected(self, peer: _WorkerPeer) -> None:
        self.peers.discard(peer)
        self._wake.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        server = await self._loop.create_unix_server(lambda: _WorkerPeer(self), sock=self._listener)
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._patience())
                except TimeoutError:
                    log.warning("stopping with %d worker(s) still connected", len(self.peers))
                    return
                self._wake.clear()
                while self._pending:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    self._write(batch)
                    await _let_readers_run()
                if self._stopping and not self.peers:
                    return
        finally:
            server.close()
            for peer in list(self.peers):  # unanswered, they answer 503: nothing is acknowledged unwritten
                peer.close()

    def _patience(self) -> float | None:
        """How long to wait for the next delivery: for ever, until stopping; then a worker still
        connected may have deliveries on their way (sent before it went), read until it closes."""
        if self._stopping_at is None:
            return None
        return max(0.0, self._stopping_at + STOP_SECONDS - self._loop.time())

    def received(self, peer: _WorkerPeer, request_id: int, delivery: Delivery) -> None:
        self._pending.append((peer, request_id, delivery))
        self._wake.set()

    def _write(self, batch: list[tuple[_WorkerPeer, int, Delivery]]) -> None:
        outcomes = write_batch(self.engine, [delivery for _, _, delivery in batch], self._connection)
        for (peer, request_id, _), outcome in zip(batch, outcomes, strict=True):
            peer.send(_answer(request_id, outcome))


async def _let_readers_run() -> None:
    """Yield twice: the first lets the loop poll its sockets (their callbacks are queued behind
    this task), the second lets those callbacks run, so the next batch holds what arrived."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class _WorkerPeer(asyncio.Protocol):
    """One worker's connection, as the writer sees it."""

    def __init__(self, service: WriterService) -> None:
        self.service = service
        self.frames = _Frames()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.service.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.disconnected(self)

    def data_received(self, data: bytes) -> None:
        try:
            for request_id, headers, raw, received_at in self.frames.feed(data):
                self.service.received(self, request_id, Delivery(headers, raw, received_at))
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            log.error("a worker sent what the writer cannot read (%s): its connection is closed", exc)
            if self.transport is not None:
                self.transport.abort()

    def send(self, answer: list[Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(answer))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# --- a worker's side ----------------------------------------------------------------------------


class RemoteWriter:
    """A worker's handle on the serve process's writer: one connection, opened at the first
    delivery and again after it is lost."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ids = itertools.count()
        self._peer: _WriterPeer | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Nothing to start: the connection is opened by the first delivery, on the worker's loop."""

    def stop(self) -> None:
        if self._peer is not None and self._peer.transport is not None:
            self._peer.transport.close()
        self._peer = None

    async def check(self) -> None:
        """The writer accepts a connection (its loop closes its socket when it stops)."""
        await self._connected()

    async def submit(self, delivery: Delivery) -> IngestResult:
        peer = await self._connected()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        peer.send([request_id, dict(delivery.headers), delivery.raw, delivery.received_at])
        peer.waiting[request_id] = future
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    async def _connected(self) -> _WriterPeer:
        loop = asyncio.get_running_loop()
        if self._usable(self._peer, loop):
            return self._peer  # type: ignore[return-value]
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:  # one connection, however many deliveries arrive before it is open
            if self._usable(self._peer, loop):
                return self._peer  # type: ignore[return-value]
            try:
                _, peer = await loop.create_unix_connection(lambda: _WriterPeer(loop), self.path)
            except OSError as exc:
                log.error("the writer at %s cannot be reached: %s", self.path, exc)
                raise DatabaseUnavailable(UNREACHABLE) from None
            self._peer = peer
            return peer

    @staticmethod
    def _usable(peer: _WriterPeer | None, loop: asyncio.AbstractEventLoop) -> bool:
        return peer is not None and peer.open and peer.loop is loop


class _WriterPeer(asyncio.Protocol):
    """The writer's connection, as a worker sees it: answers are matched to waiting requests by id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.frames = _Frames()
        self.transport: asyncio.Transport | None = None
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def data_received(self, data: bytes) -> None:
        try:
            answers = self.frames.feed(data)
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            log.error("the writer sent what this worker cannot read (%s): reconnecting", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        for answer in answers:
            future = self.waiting.pop(answer[0], None)
            if future is not None and not future.done():  # a request that went away: nobody waits
                future.set_result(_outcome(answer))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.waiting:
            log.error("the connection to the writer was lost with %d deliveries unanswered", len(self.waiting))
        for future in self.waiting.values():
            if not future.done():
                future.set_result(DatabaseUnavailable(LOST))
        self.waiting.clear()

    def send(self, message: list[Any]) -> None:
        if not self.open or self.transport is None:
            raise DatabaseUnavailable(LOST)
        self.transport.write(_frame(message))
