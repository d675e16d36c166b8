"""EXPLAIN (ANALYZE, BUFFERS) of the main query of every list route, as Markdown.

    .venv/bin/python bench/plans.py postgresql+psycopg://postgres@127.0.0.1:5432/DB > plans.md

DB is an inventory filled by ``run.py``'s reads target (``fill_inventory``: 10,000 apps x 10
envs); the queries are built by the read package itself, so the plans are the ones served.
"""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from cmdb_sync.models import App, ChangeOrder, Env, EnvLabel, Event
from cmdb_sync.read.common import like
from cmdb_sync.read.deployments import envs_running_artifact
from cmdb_sync.read.inventory import _env_select, envs_statement
from cmdb_sync.read.pagination import encode_cursor

ENV_ORDER = (Env.app_name, Env.name, Env.org_id)


def queries() -> dict[str, object]:
    labelled = _env_select(False)
    for name, value in (("envType", "production"), ("region", "cn-shanghai")):
        labelled = labelled.where(
            exists().where(EnvLabel.env_id == Env.id, EnvLabel.name == name, EnvLabel.value == value)
        )
    return {
        "GET /api/v1/envs?limit=100 (first page)": _env_select(False).order_by(*ENV_ORDER).limit(101),
        "GET /api/v1/envs?limit=100&cursor=... (a page deep in the list)": envs_statement(
            False, app=None, org_id=None, labels=[], artifact=None, cursor=encode_cursor(["app-09990", "env-0", "org"])
        )
        .where(Env.app_name > "app-09990")
        .order_by(*ENV_ORDER)
        .limit(101),
        "GET /api/v1/envs?label=envType=production&label=region=cn-shanghai&limit=100": labelled.order_by(
            *ENV_ORDER
        ).limit(101),
        "GET /api/v1/envs?artifact=app-00420:&limit=100": _env_select(False)
        .where(envs_running_artifact(like("app-00420:")))
        .order_by(*ENV_ORDER)
        .limit(101),
        "GET /api/v1/apps/{app}/envs": _env_select(False)
        .where(Env.org_id == "org-bench", Env.app_name == "app-00042")
        .order_by(Env.name)
        .limit(51),
        "GET /api/v1/apps?limit=100": select(App)
        .where(App.deleted_at.is_(None))
        .order_by(App.name, App.org_id)
        .limit(101),
        "GET /api/v1/apps/{app}/change-orders": select(ChangeOrder)
        .where(ChangeOrder.org_id == "org-bench", ChangeOrder.app_name == "app-00420")
        .order_by(ChangeOrder.started_at.desc(), ChangeOrder.sn.desc())
        .limit(51),
        "GET /api/v1/events?limit=50 (admin)": select(Event)
        .order_by(Event.received_at.desc(), Event.id.desc())
        .limit(51),
    }


def main() -> None:
    url = make_url(sys.argv[1])
    dsn = [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-d",
        url.database,
    ]
    for title, stmt in queries().items():
        sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql.replace("%%", "%")
        plan = subprocess.run(["psql", *dsn, "-c", explain], capture_output=True, text=True, check=True).stdout
        print(f"#### {title}\n\n```\n{plan.strip()}\n```\n")


if __name__ == "__main__":
    main()
