"""Workers that do not outlive the ``cmdb-sync serve`` process that started them.

granian replaces a worker that dies; nothing replaces a parent that dies (``kill -9``): its workers
would go on answering, unsupervised, and a new ``serve`` would start beside them. So ``serve``
names itself in the workers' environment, and each worker checks once a second that it is still
its parent's child; when not, it exits.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "CMDB_SYNC_SUPERVISOR_PID"
CHECK_SECONDS = 1.0


def watch_parent() -> None:
    """In a worker started by ``serve``: exit when the parent is gone. Elsewhere (tests, another
    ASGI server): nothing."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or int(supervisor) == os.getpid():
        return
    threading.Thread(target=_watch, args=(int(supervisor),), name="cmdb-sync-parent-watch", daemon=True).start()


def _watch(supervisor: int) -> None:
    stop = threading.Event()
    while not stop.wait(CHECK_SECONDS):
        if os.getppid() != supervisor:
            log.error("the serve process (pid %d) is gone: this worker exits", supervisor)
            os._exit(3)
