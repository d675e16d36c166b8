"""Group commit: one writer per server process, so concurrent deliveries share transactions.

Each request hands its delivery to the writer and waits. The writer thread takes whatever is
waiting (at most ``max_batch``), ingests it as one batch (one transaction, one commit), and
answers every waiting request. Under light load a delivery is written as soon as it arrives: the
writer never waits for a batch to fill; under heavy load batches grow by themselves while the
previous commit is in flight, which is what makes them cheap.

An answer is given only after the commit, so an acknowledged delivery is durable; a request whose
sender went away is still written (the sender's retry is then a duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from cmdb_sync.errors import CmdbSyncError, DatabaseUnavailable
from cmdb_sync.ingest import Delivery, HeldConnection, IngestResult, ingest_batch

log = logging.getLogger(__name__)

MAX_BATCH = 256
_STOP = object()


@dataclass
class _Waiting:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class GroupCommitWriter:
    """One writer thread per server process (measured on PostgreSQL: 2 to 4 writers were within
    noise of one, the process being bounded by its CPU per delivery; SQLite has one write lock)."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._connection = HeldConnection(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cmdb-sync-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish what is waiting, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
            self._connection.close()

    async def check(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            msg = "the writer is not running"
            raise DatabaseUnavailable(msg)

    async def submit(self, delivery: Delivery) -> IngestResult:
        """Journal and project one delivery with whatever else is waiting; raises what ingest raises."""
        if self._thread is None:
            msg = "the writer is not running"
            raise DatabaseUnavailable(msg)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Waiting(delivery, loop, future))
        outcome = await asyncio.shield(future)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Waiting]) -> None:
        outcomes = write_batch(self.engine, [waiting.delivery for waiting in batch], self._connection)
        for waiting, outcome in zip(batch, outcomes, strict=True):
            try:
                waiting.loop.call_soon_threadsafe(_settle, waiting.future, outcome)
            except RuntimeError:  # the request's event loop is closed: nobody waits for this answer
                log.info("an answer had no one left to wait for it")


def write_batch(engine: Engine, deliveries: list[Delivery], connection: HeldConnection) -> list[Any]:
    """A writer's batch (this process's, or serve's for its workers: ``handoff``): each delivery's
    result or error, never an exception, so that no sender is left waiting for ever."""
    try:
        return ingest_batch(engine, deliveries, connect=connection)
    except Exception:  # a bug: say so (500)
        log.exception("a batch of %d deliveries could not be written", len(deliveries))
        return [CmdbSyncError("unexpected error; it was logged")] * len(deliveries)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if not future.done():
        future.set_result(outcome)
