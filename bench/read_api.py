"""Read API latency on a large inventory, through the real server on loopback.

    .venv/bin/python bench/read_api.py --backend postgresql --envs 20000

Builds the inventory the way production does (journal, then `replay --rebuild`): --envs envs over
200 apps, each with labels, and one successful change order per env so every env has a current
deployment. Then times each route over --requests requests. Lists are keyset pages: the first page
and a page deep in the list must cost the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import httpx
from _common import ADMIN, database, fill_journal, serving

from cmdb_sync import migrate


def inventory(envs: int):
    for i in range(envs):
        app, env = f"app-{i % 200:03d}", f"env-{i:05d}"
        labels = [
            {"namespace": "default", "name": "envType", "value": ("production", "test", "dev")[i % 3]},
            {"namespace": "default", "name": "region", "value": ("cn", "us")[i % 2]},
        ]
        attrs = {"name": env, "appName": app, "displayName": env, "labelList": labels, "profiles": []}
        yield event("Env", "Create", app, attrs, i)
        task = {
            "sn": f"t{i}",
            "state": "SUCCESS",
            "contextContent": json.dumps({"artifacts": {"image.backend": f"registry/{app}:{i}"}}),
        }
        job = {
            "sn": f"j{i}",
            "envName": env,
            "state": "SUCCESS",
            "endedAt": 1_700_000_000_000 + i,
            "stages": [{"sn": f"s{i}", "tasks": [task]}],
        }
        order = {"sn": f"co{i}", "appName": app, "state": "SUCCESS", "version": f"v{i}", "jobs": [job]}
        yield event("ChangeOrder", "StatusUpdate", app, order, i)


def event(kind: str, action: str, app: str, attrs: dict, i: int) -> tuple[dict[str, str], bytes]:
    body = {
        "id": uuid.uuid4().hex,
        "orgId": "org-bench",
        "time": 1_700_000_000_000 + i,
        "objectKind": kind,
        "objectAttributes": attrs,
    }
    return {"X-AppStack-Event": kind, "X-AppStack-Action": action, "X-AppStack-App": app}, json.dumps(body).encode()


def timed(client: httpx.Client, url: str, requests: int) -> tuple[float, float, int]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    items = len(response.json().get("items", [])) if "items" in response.json() else 1
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--envs", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with database(args.backend) as url:
        migrate.upgrade(url)
        fill_journal(url, inventory(args.envs))
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cmdb_sync", "replay", "--rebuild"],
            env={**os.environ, "CMDB_SYNC_DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        print(
            f"backend={args.backend}: {args.envs:,} envs and {args.envs:,} change orders built in {time.perf_counter() - started:.0f} s"
        )
        with serving(url) as base, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
            deep = None
            cursor = None
            for _ in range(20):  # walk 20 pages in, to time a page deep in the list
                page = client.get("/api/v1/envs", params={"limit": 50, **({"cursor": cursor} if cursor else {})}).json()
                cursor = page["next_cursor"]
            deep = cursor
            routes = {
                "envs, first page of 50": "/api/v1/envs?limit=50",
                "envs, page 21 of 50": f"/api/v1/envs?limit=50&cursor={deep}",
                "envs, page of 500": "/api/v1/envs?limit=500",
                "envs by two labels": "/api/v1/envs?label=envType=production&label=region=cn&limit=50",
                "envs by artifact": "/api/v1/envs?artifact=registry/app-007:&limit=50",
                "one env with current deployment": "/api/v1/apps/app-007/envs/env-00007",
                "an app's envs": "/api/v1/apps/app-007/envs?limit=50",
                "an app's change orders": "/api/v1/apps/app-007/change-orders?limit=50",
                "journal, first page": "/api/v1/events?limit=50",
            }
            for name, route in routes.items():
                p50, p95, items = timed(client, route, args.requests)
                print(f"  {name:34} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   ({items} items)")


if __name__ == "__main__":
    main()
