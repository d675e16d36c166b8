"""Each web UI page's query count and render time, in-process, on the seed plus the browser tests'
deliveries (tests/ui/conftest.py), on PostgreSQL or SQLite:

    .venv/bin/python bench/ui_pages.py postgresql+psycopg://postgres@127.0.0.1:5432/DB   # an empty database
    .venv/bin/python bench/ui_pages.py sqlite:////tmp/ui-pages.db

The 100-env page on the 100,000-env inventory is measured by `run.py --only reads`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402
from sqlalchemy import Engine, event  # noqa: E402

from cmdb_sync import migrate  # noqa: E402
from cmdb_sync.app import create_app  # noqa: E402
from cmdb_sync.db import Database  # noqa: E402
from cmdb_sync.ingest import Delivery, ingest_batch  # noqa: E402
from tests.conftest import FIXTURES, make_settings  # noqa: E402
from tests.ui.conftest import ADMIN, ORG, READER, extra_deliveries  # noqa: E402

PAGES = {
    "apps": "/ui",
    "an app": f"/ui/apps/{ORG}/myapp-demo",
    "an app, as of": f"/ui/apps/{ORG}/myapp-demo?as_of=2024-12-16T10:00:00Z",
    "envs, two labels": "/ui/envs?label_name=envType&label_value=production&label_name=region&label_value=cn-shanghai",
    "envs, an image": "/ui/envs?artifact=demo/backend",
    "a change order": f"/ui/change-orders/{ORG}/ui-co-1",
    "history": f"/ui/history/env/{ORG}/myapp-demo/test-env",
    "journal": "/ui/journal",
    "a delivery": "/ui/journal/ui-deploy",
}


def main(url: str) -> None:
    migrate.upgrade(url)
    seed = [json.loads(p.read_text()) for p in sorted((FIXTURES / "seed").glob("*.json"))]
    deliveries = [
        Delivery(d["headers"], json.dumps(d["body"], ensure_ascii=False).encode()) for d in seed + extra_deliveries()
    ]
    with Database.open(url) as database:
        ingest_batch(database.engine, deliveries)
    count = [0]

    def counted(*_: object) -> None:
        count[0] += 1

    app = create_app(make_settings(url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    print("| page | queries | median ms (of 20) |\n|---|---|---|")
    with TestClient(app) as client:
        client.cookies.set("cmdb_sync_session", ADMIN)
        for name, path in PAGES.items():
            assert client.get(path).status_code == 200, path
            count[0] = 0
            event.listen(Engine, "before_cursor_execute", counted)
            client.get(path)
            event.remove(Engine, "before_cursor_execute", counted)
            queries = count[0]
            samples = []
            for _ in range(20):
                started = time.perf_counter()
                client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
            print(f"| {name} (`{path}`) | {queries} | {statistics.median(samples):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
