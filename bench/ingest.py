"""Webhook ingest throughput and latency through the real server (granian) on loopback.

    .venv/bin/python bench/ingest.py --backend postgresql --workers 2 --events 5000 --concurrency 16

Each delivery is an Env snapshot with labels (journal row + upsert + children replaced); envs are
spread over 200 objects so that versions conflict as in real traffic. The run is bounded by
--events and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter

import httpx
from _common import TOKEN, database, serving


def delivery(i: int) -> tuple[dict[str, str], bytes]:
    body = {
        "id": uuid.uuid4().hex,
        "user": {"id": "bench"},
        "orgId": "org-bench",
        "time": 1_700_000_000_000 + i,
        "objectKind": "Env",
        "objectAttributes": {
            "name": f"env-{i % 200}",
            "appName": f"app-{i % 20}",
            "displayName": "bench",
            "resourcePoolName": "default",
            "deployGroupName": "k8s",
            "profiles": [{"name": "vars", "displayName": "vars", "type": "APP"}],
            "spec": {"rolloutStrategy": None, "replicasManagement": "SYSTEM"},
            "labelList": [
                {"namespace": "default", "name": "envType", "value": "production"},
                {"name": "i", "value": str(i)},
            ],
        },
    }
    headers = {
        "X-AppStack-Event": "Env",
        "X-AppStack-Action": "Update",
        "X-AppStack-Token": TOKEN,
        "X-AppStack-App": f"app-{i % 20}",
    }
    return headers, json.dumps(body).encode()


async def run(base: str, events: int, concurrency: int) -> tuple[float, list[float], Counter[str]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            headers, body = delivery(i)
            started = time.perf_counter()
            response = await client.post("/webhooks/appstack", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            statuses[str(response.status_code) + " " + response.json().get("status", "?")] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with database(args.backend) as url, serving(url, args.workers) as base:
        asyncio.run(run(base, 200, args.concurrency))  # warm-up: first upserts, connection pools
        elapsed, latencies, statuses = asyncio.run(run(base, args.events, args.concurrency))
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000  # noqa: E731
    print(
        f"backend={args.backend} workers={args.workers} concurrency={args.concurrency} events={args.events}: "
        f"{args.events / elapsed:,.0f} deliveries/s, latency p50 {pct(0.50):.1f} ms, p95 {pct(0.95):.1f} ms, "
        f"p99 {pct(0.99):.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms; {dict(statuses)}"
    )


if __name__ == "__main__":
    main()
