"""Memory of a server worker, and of the serve process that writes for it, under rounds of the
same hostile mix: does it level off (no leak)?

    .venv/bin/python bench/hostile_memory.py

Each round: five 9 MB bodies, 200 each of a 1,000-deep body, a lone surrogate and a 3,000-character
id, and 1,000 ordinary deliveries; the worker's RSS is printed after each of 10 rounds.
Measured 2026-11-29 on PostgreSQL: 149 MiB after the first round, then 133 MiB after every one of
the nine others: it levels off. CMDB_SYNC_WORKER_MAX_RSS_MIB bounds it whatever comes.
Measured 2026-12-01, with the writer in the serve process: the worker 133 MiB after the first
round, then 112; serve 111, then 120 after each of the nine others: both level off.
"""

import json
import sys
import uuid

import psutil

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import httpx
from _common import TOKEN, database, serving

big = json.dumps(
    {
        "id": "x",
        "orgId": "o",
        "time": 1,
        "objectKind": "App",
        "objectAttributes": {"name": "a", "blob": "z" * 9_000_000},
    }
).encode()
deep = ("[" * 1000 + "]" * 1000).encode()
sur = b'{"id":"s\\ud800","orgId":"o","time":1,"objectKind":"App","objectAttributes":{"name":"a"}}'
H = {
    "X-AppStack-Token": TOKEN,
    "X-AppStack-Event": "App",
    "X-AppStack-Action": "Update",
    "Content-Type": "application/json",
}
with database("postgresql") as url, serving(url, 1) as (base, p):
    serve = psutil.Process(p.pid)
    (worker,) = (c for c in serve.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline()))
    with httpx.Client(base_url=base, timeout=60) as c:
        for rnd in range(10):
            for i in range(5):
                b = big.replace(b'"id": "x"', f'"id": "big-{rnd}-{i}"'.encode())
                c.post("/webhooks/appstack", content=b, headers=H)
            for _ in range(200):
                c.post("/webhooks/appstack", content=deep, headers=H)
                c.post("/webhooks/appstack", content=sur, headers=H)
                c.post(
                    "/webhooks/appstack",
                    content=json.dumps(
                        {
                            "id": "L" * 3000,
                            "orgId": "o",
                            "time": 1,
                            "objectKind": "App",
                            "objectAttributes": {"name": "a"},
                        }
                    ),
                    headers=H,
                )
            for i in range(1000):
                c.post(
                    "/webhooks/appstack",
                    content=json.dumps(
                        {
                            "id": uuid.uuid4().hex,
                            "orgId": "o",
                            "time": 1700000000000 + i,
                            "objectKind": "App",
                            "objectAttributes": {"name": f"a{i % 50}"},
                        }
                    ),
                    headers=H,
                )
            print(
                f"round {rnd + 1}: worker RSS {worker.memory_info().rss / 2**20:.0f} MiB, "
                f"serve (the writer) {serve.memory_info().rss / 2**20:.0f} MiB",
                flush=True,
            )
