"""Peak memory of `cmdb-sync replay --rebuild` as the journal grows: it must stay flat.

    .venv/bin/python bench/replay_memory.py --backend sqlite --sizes 5000 20000

Fills a fresh database's journal with N Env deliveries (through the ingest pipeline for the first
ones, then as journal rows written in bulk, the way a long-lived journal looks), then runs the
rebuild in a child process and reads that process's peak RSS and its time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import database, fill_journal
from ingest import delivery

from cmdb_sync import migrate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    args = parser.parse_args()
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as workdir, database(args.backend) as url:
            migrate.upgrade(url)
            fill_journal(url, (delivery(i) for i in range(size)))
            env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url}
            started = time.perf_counter()
            with tempfile.TemporaryFile("w+") as err:
                child = subprocess.Popen(
                    [sys.executable, "-m", "cmdb_sync", "replay", "--rebuild"],
                    env=env,
                    cwd=workdir,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    text=True,
                )
                _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not all children's
                child.returncode = os.waitstatus_to_exitcode(status)
                elapsed = time.perf_counter() - started
                err.seek(0)
                summary = err.read().strip().splitlines()[-1]
            if child.returncode != 0:
                raise SystemExit(f"replay failed: {summary}")
            print(
                f"backend={args.backend} journal={size:,} events: rebuild in {elapsed:.1f} s "
                f"({size / elapsed:,.0f} events/s), peak RSS {usage.ru_maxrss / 1024:.0f} MiB; {summary}"
            )


if __name__ == "__main__":
    main()
