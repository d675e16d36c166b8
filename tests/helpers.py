"""Builders of deliveries and a canonical dump of the projected state, for comparing outcomes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, select

from cmdb_sync.models import Base, parent_of
from cmdb_sync.projections import PROJECTIONS

ORG = "org-1"
APP = "shop"
# each kind's table by the columns that name one object
NATURAL_KEYS = {projection.table.name: projection.identity for projection in PROJECTIONS}


def _parent(table: Any) -> tuple[str, str]:
    link = parent_of(table)
    assert link is not None, f"{table.name} is listed as a child table but declares no parent column"
    return link


# child table: (its parent's id column, the parent table); parents come before their children, and
# a child is known by its parent's key and its position
CHILDREN = {child.name: _parent(child) for projection in PROJECTIONS for child in projection.children}


def delivery(
    kind: str,
    action: str,
    attributes: Any,
    *,
    time: Any,
    event_id: str | None = None,
    org: str | None = ORG,
    app: str | None = APP,
) -> dict[str, Any]:
    headers = {"X-AppStack-Event": kind, "X-AppStack-Action": action}
    if app is not None:
        headers["X-AppStack-App"] = app
    body: dict[str, Any] = {
        "id": event_id or uuid.uuid4().hex,
        "user": {"id": "user-1"},
        "time": time,
        "objectKind": kind,
        "objectAttributes": attributes,
    }
    if org is not None:
        body["orgId"] = org
    return {"headers": headers, "body": body}


def app_event(action: str, time: Any, *, name: str = APP, description: str = "", **kw: Any) -> dict[str, Any]:
    return delivery("App", action, {"name": name, "description": description, "type": "APP"}, time=time, app=name, **kw)


def env_event(
    action: str, time: Any, *, name: str = "prod", app: str = APP, labels: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    attrs = {
        "name": name,
        "appName": app,
        "displayName": f"{name} env",
        "description": kw.pop("description", None),
        "lockBy": kw.pop("lock_by", None),
        "resourcePoolName": "default",
        "deployGroupName": "k8s",
        "profiles": [{"name": "vars", "displayName": "Vars", "type": "APP"}],
        "spec": {"rolloutStrategy": None, "replicasManagement": "SYSTEM"},
        "labelList": [
            {"namespace": "default", "name": k, "value": v, "displayName": k, "displayValue": v}
            for k, v in (labels or {"envType": "production"}).items()
        ],
    }
    return delivery("Env", action, attrs, time=time, app=app, **kw)


def variable_group_event(
    action: str,
    time: Any,
    *,
    name: str = "vars",
    app: str | None = APP,
    values: dict[str, str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"name": name, "displayName": name}
    if values is not None:
        attrs["vars"] = [{"key": k, "value": v, "description": f"{k} var"} for k, v in values.items()]
    return delivery("VariableGroup", action, attrs, time=time, app=app, **kw)


def orchestration_event(
    action: str, time: Any, *, sn: str = f"{APP}@KUBERNETES", app: str = APP, message: str = "init", **kw: Any
) -> dict[str, Any]:
    attrs = {
        "sn": sn,
        "name": app,
        "app": {"name": app},
        "storageType": "BUILTIN",
        "format": "MANIFEST",
        "type": "AppBuiltInOrchestration",
        "labelPolicy": "NONE",
        "suitableResourceTypes": ["KUBERNETES"],
        "revision": {"sha": uuid.uuid4().hex, "message": message, "author": "user-1", "commitTime": 1722237027908},
        "labelList": [],
        "placeholderList": [{"name": "image.backend", "type": "string", "value": "NULL", "overridable": True}],
        "componentList": [{"name": "svc", "kind": "Service", "content": "---", "priority": 1, "type": "KUBERNETES"}],
    }
    return delivery("AppOrchestration", action, attrs, time=time, app=app, **kw)


def raw(delivery_: dict[str, Any]) -> bytes:
    return json.dumps(delivery_["body"], ensure_ascii=False).encode()


def dump_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every projected row, by natural key rather than surrogate id, sorted: equal states dump equal."""
    tables = Base.metadata.tables
    state: dict[str, list[tuple[Any, ...]]] = {}
    keys: dict[str, dict[int, tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, natural in NATURAL_KEYS.items():
            rows = conn.execute(select(tables[name])).mappings().all()
            keys[name] = {row["id"]: tuple(row[k] for k in natural) for row in rows}
            state[name] = sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k != "id")) for row in rows)
        for name, (fk, parent) in CHILDREN.items():
            rows = conn.execute(select(tables[name])).mappings().all()
            keys[name] = {row["id"]: (keys[parent][row[fk]], row["position"]) for row in rows}
            state[name] = sorted(
                tuple(sorted((k, repr(keys[parent][v] if k == fk else v)) for k, v in row.items() if k != "id"))
                for row in rows
            )
    return state


def change_order_event(
    sn: str, time: Any, *, env: str = "prod", state: str = "SUCCESS", image: str = "r/app:1", **kw: Any
) -> dict[str, Any]:
    task = {
        "sn": f"{sn}-t",
        "state": state,
        "contextContent": json.dumps({"artifacts": {"image.backend": image}}),
        "engineTaskResultContent": json.dumps({"taskErrorMessages": {}}),
    }
    job = {
        "sn": f"{sn}-j",
        "envName": env,
        "state": state,
        "endedAt": 1000,
        "stages": [{"sn": f"{sn}-s", "tasks": [task]}],
    }
    attrs = {"sn": sn, "appName": APP, "state": state, "version": f"v-{sn}", "jobs": [job]}
    return delivery("ChangeOrder", "StatusUpdate", attrs, time=time, **kw)


def stopped(command: list[str], env: dict[str, str], holder: Any, stop: Any) -> tuple[int, str]:
    """Run ``command`` (a cmdb-sync command) in a process of its own; ``stop(process)`` waits until
    it stands where the test wants it and stops it (a signal to it, or to one of its lanes). Its
    exit status and what it printed on stderr. ``holder``, the connection holding the lock the
    command waits on, is let go whatever happens."""
    import subprocess

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stop(process)
        _, err = process.communicate(timeout=60)
    finally:
        holder.rollback()
        holder.close()
        if process.poll() is None:
            process.kill()
    return process.returncode, err


def lanes_of(pid: int) -> list[Any]:
    """The lanes (spawned processes, not multiprocessing's resource tracker) of a command."""
    import psutil

    return [
        child
        for child in psutil.Process(pid).children()
        if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


@contextmanager
def queries_sent() -> Iterator[list[str]]:
    """The statements any engine sends meanwhile, in order (SQLite's BEGIN of a read is not one)."""
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement != "BEGIN":
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", count)
