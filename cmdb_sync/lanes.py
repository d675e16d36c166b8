"""Work dealt to processes ("lanes"), for the operator commands that are CPU-bound in Python and
PostgreSQL in turn (a rebuild, an import): two lanes keep both cores busy.

Each lane is a spawned process (nothing of the parent's connections is inherited) with a pipe to
it and one from it. A lane says ``("done",)`` when its work is over, ``("failed", detail)`` when it
raised; the end of its pipe before either is a lane gone (killed, say). No queue is used: a
queue's lock would start one more process (multiprocessing's resource tracker does start for
spawned processes anyway, and its pipes are enough).
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cmdb_sync.db import describe_error

Pipe = multiprocessing.connection.Connection

# Allocations between two collections of the youngest generation (Python's default: 700), and how
# many of those make a collection of the next (default: 10 each).
BATCH_COLLECTOR_THRESHOLDS = (10_000, 10, 10)


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """The cyclic garbage collector run less often while a batch command works. A batch holds
    thousands of parsed bodies, rows and snapshots at once, and at Python's default the collector
    walked them again and again: perf over an import into PostgreSQL put 10% of the whole machine's
    CPU in it (``gc_collect_main``, ``visit_decref``...), a quarter of each lane's. What a batch
    makes is freed by reference counting when it is done; the collector still runs, for the rare
    cycle. The thresholds in force before are restored after."""
    before = gc.get_threshold()
    gc.set_threshold(*BATCH_COLLECTOR_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class LaneStopped(Exception):
    """A lane ended before its work did: it raised (``detail`` says what) or was killed."""

    def __init__(self, lane: int, detail: str) -> None:
        super().__init__(f"lane {lane} {detail}")
        self.lane = lane
        self.detail = detail


class Lanes:
    """The parent's side: send work to a lane, receive what the lanes say."""

    def __init__(self, processes: list[Any], inboxes: list[Pipe], outboxes: list[Pipe]) -> None:
        self.processes = processes
        self.inboxes = inboxes
        self.listening = {pipe: lane for lane, pipe in enumerate(outboxes)}

    @property
    def working(self) -> bool:
        return bool(self.listening)

    def send(self, lane: int, message: Any) -> None:
        self.inboxes[lane].send(message)

    def receive(self, timeout: float | None = None) -> Iterator[tuple[int, Any]]:
        """What the lanes said since the last call, waiting until one says something (at most
        ``timeout`` seconds); raises LaneStopped for a lane that failed or is gone."""
        for pipe in multiprocessing.connection.wait(list(self.listening), timeout):
            lane = self.listening[pipe]  # type: ignore[index]
            try:
                message = pipe.recv()  # type: ignore[union-attr]
            except EOFError:
                self.processes[lane].join()
                raise LaneStopped(lane, f"stopped (exit code {self.processes[lane].exitcode})") from None
            if message[0] == "done":
                del self.listening[pipe]  # type: ignore[arg-type]
            elif message[0] == "failed":
                raise LaneStopped(lane, f"failed: {message[1]}")
            else:
                yield lane, message


@contextmanager
def running(work: Callable[..., None], arguments: list[tuple[Any, ...]], *, name: str) -> Iterator[Lanes]:
    """One lane per ``arguments``: ``work(*its_arguments, inbox, outbox)`` in a spawned process.
    Leaving early (an error, Ctrl-C, SIGTERM) terminates the lanes still working: each batch in
    flight rolls back, or commits if its commit was already sent; either way it is whole."""
    context = multiprocessing.get_context("spawn")
    processes, inboxes, outboxes = [], [], []
    lanes: Lanes | None = None
    try:
        for lane, args in enumerate(arguments):
            inbox_out, inbox_in = context.Pipe(duplex=False)
            outbox_out, outbox_in = context.Pipe(duplex=False)
            process = context.Process(
                target=_lane, args=(work, args, inbox_out, outbox_in), name=f"{name} lane {lane}", daemon=True
            )
            process.start()
            inbox_out.close()  # the lane holds these ends now: the parent sees its end of pipe
            outbox_in.close()
            processes.append(process)
            inboxes.append(inbox_in)
            outboxes.append(outbox_out)
        lanes = Lanes(processes, inboxes, outboxes)
        yield lanes
    finally:
        if lanes is None or lanes.working:  # left early
            for process in processes:
                if process.is_alive():
                    process.terminate()
        for inbox in inboxes:
            inbox.close()  # a lane reading its inbox sees the end of its work
        for process in processes:
            process.join()


def _lane(work: Callable[..., None], args: tuple[Any, ...], inbox: Pipe, outbox: Pipe) -> None:
    gc.freeze()  # what the lane imported lives as long as it does: never walked by the collector
    try:
        with collecting_rarely():
            work(*args, inbox, outbox)
        outbox.send(("done",))
    except KeyboardInterrupt:  # the operator stopped the command: the parent says so
        pass
    except (EOFError, BrokenPipeError):  # the parent went away (stopped, killed): nobody to tell
        pass
    except Exception as exc:  # noqa: BLE001 - told to the parent, which stops the command with it
        detail = describe_error(exc) if isinstance(exc, SQLAlchemyError) else f"{type(exc).__name__}: {exc}"
        try:
            outbox.send(("failed", detail))
        except BrokenPipeError:
            pass
