"""A generated journal of AppStack deliveries of all seven kinds, deterministic for a seed.

    .venv/bin/python bench/generate.py --events 200000 > journal.jsonl     # import format

The mix is what a busy organisation sends: mostly Env and App updates, orchestrations with
placeholders and components, variable groups, change orders with jobs, stages and tasks (whose
artifacts name images), change requests and pipeline runs; some deletes; times rise with a little
disorder, so a share of events arrives stale.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator

ORG = "org-bench"
BASE_TIME = 1_700_000_000_000
# share of each kind in the stream
MIX = [
    ("Env", 0.40),
    ("App", 0.15),
    ("AppOrchestration", 0.10),
    ("VariableGroup", 0.08),
    ("ChangeOrder", 0.15),
    ("ChangeRequest", 0.07),
    ("ReleaseStageExecution", 0.05),
]
REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]
ENV_TYPES = ["production", "staging", "testing", "development"]


def _labels(rng: random.Random, env: int) -> list[dict[str, str]]:
    return [
        {"namespace": "default", "name": "envType", "value": ENV_TYPES[env % 4], "displayName": "环境类型"},
        {"namespace": "default", "name": "region", "value": REGIONS[(env // 4) % 4], "displayName": "地域"},
        {"namespace": "default", "name": "team", "value": f"team-{rng.randrange(20)}"},
    ]


def attributes(kind: str, rng: random.Random, apps: int, i: int) -> tuple[str, dict[str, object], str]:
    """(app, objectAttributes, action) of one delivery."""
    app_no = rng.randrange(apps)
    app = f"app-{app_no:05d}"
    env_no = rng.randrange(10)
    if kind == "App":
        action = "Delete" if rng.random() < 0.01 else "Update"
        return app, {"name": app, "description": f"service {app_no}", "type": "APP", "creatorId": "u1"}, action
    if kind == "Env":
        action = "Delete" if rng.random() < 0.02 else "Update"
        attrs = {
            "name": f"env-{env_no}",
            "appName": app,
            "displayName": f"环境 {env_no}",
            "description": None,
            "lockBy": "u1" if rng.random() < 0.1 else None,
            "resourcePoolName": f"pool-{env_no % 3}",
            "deployGroupName": "k8s",
            "profiles": [{"name": f"{app}-vars", "displayName": "vars", "type": "APP"}],
            "spec": {"rolloutStrategy": [{"batches": 2}], "replicasManagement": "SYSTEM"},
            "labelList": _labels(rng, env_no),
        }
        return app, attrs, action
    if kind == "VariableGroup":
        values = {f"KEY_{k}": f"value-{rng.randrange(1000)}" for k in range(rng.randrange(3, 12))}
        attrs = {
            "name": f"{app}-vars",
            "displayName": "vars",
            "type": "APP",
            "vars": [{"key": k, "value": v, "description": k.lower()} for k, v in values.items()],
        }
        return app, attrs, "Update"
    if kind == "AppOrchestration":
        attrs = {
            "sn": f"{app}@KUBERNETES",
            "name": app,
            "app": {"name": app},
            "storageType": "BUILTIN",
            "format": "MANIFEST",
            "type": "AppBuiltInOrchestration",
            "labelPolicy": "NONE",
            "suitableResourceTypes": ["KUBERNETES"],
            "revision": {
                "sha": f"{rng.getrandbits(64):016x}",
                "message": "update",
                "author": "u1",
                "commitTime": BASE_TIME,
            },
            "labelList": [],
            "placeholderList": [
                {"name": f"p{k}", "type": "string", "value": str(rng.randrange(100)), "overridable": True}
                for k in range(rng.randrange(3, 10))
            ],
            "componentList": [
                {
                    "name": f"c{k}",
                    "kind": "Deployment",
                    "content": "apiVersion: apps/v1\nkind: Deployment\n" * 5,
                    "priority": k,
                    "type": "KUBERNETES",
                }
                for k in range(rng.randrange(1, 4))
            ],
        }
        return app, attrs, "Update"
    if kind == "ChangeOrder":
        sn = f"co-{i // 3}"  # a change order is updated a few times as it runs
        state = rng.choice(["RUNNING", "SUCCESS", "SUCCESS", "FAILED"])
        image = f"registry.example.com/{app}:v{rng.randrange(100)}"
        tasks = [
            {
                "sn": f"{sn}-t{t}",
                "name": f"task {t}",
                "state": state,
                "contextContent": json.dumps({"artifacts": {"image.backend": image}}),
                "engineTaskResultContent": json.dumps({"taskErrorMessages": {}}),
            }
            for t in range(2)
        ]
        jobs = [
            {
                "sn": f"{sn}-j{j}",
                "envName": f"env-{(env_no + j) % 10}",
                "state": state,
                "startedAt": BASE_TIME + i,
                "endedAt": BASE_TIME + i + 1000,
                "stages": [
                    {"sn": f"{sn}-j{j}-s{s}", "name": f"stage {s}", "state": state, "tasks": tasks} for s in range(2)
                ],
            }
            for j in range(2)
        ]
        attrs = {"sn": sn, "appName": app, "name": "deploy", "state": state, "version": f"v{i}", "jobs": jobs}
        return app, attrs, "StatusUpdate"
    if kind == "ChangeRequest":
        attrs = {
            "sn": f"cr-{i // 4}",
            "appName": app,
            "name": "feature",
            "state": rng.choice(["DEVELOPING", "INTEGRATING", "RELEASED"]),
            "branch": "feature/x",
            "originBranch": "master",
            "appCodeRepo": {"repoUrl": f"https://git.example.com/{app}.git"},
        }
        return app, attrs, "StatusUpdate"
    attrs = {
        "releaseWorkflowSn": f"wf-{app_no}",
        "releaseStageSn": f"stage-{env_no % 3}",
        "engineInstanceId": f"run-{i // 3}",
        "state": rng.choice(["RUNNING", "SUCCESS"]),
        "context": {"triggerMode": "MANUAL", "startTime": BASE_TIME + i, "endTime": BASE_TIME + i + 500},
    }
    return app, attrs, "StatusUpdate"


def deliveries(events: int, *, apps: int = 2000, seed: int = 7) -> Iterator[tuple[dict[str, str], dict[str, object]]]:
    """(headers, body) of each delivery, in arrival order."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    for i in range(events):
        kind = rng.choices(kinds, weights)[0]
        app, attrs, action = attributes(kind, rng, apps, i)
        time = BASE_TIME + i * 10 - rng.randrange(0, 50)  # a little disorder: some arrive stale
        body = {
            "id": f"ev-{seed}-{i:08d}",
            "user": {"id": f"user-{rng.randrange(50)}"},
            "orgId": ORG,
            "time": time,
            "objectKind": kind,
            "objectAttributes": attrs,
        }
        headers = {"X-AppStack-Event": kind, "X-AppStack-Action": action, "X-AppStack-App": app}
        yield headers, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out = sys.stdout
    for headers, body in deliveries(args.events, apps=args.apps, seed=args.seed):
        out.write(json.dumps({"headers": headers, "body": body}, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
