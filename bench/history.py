"""A history-heavy inventory filled directly in SQL: `apps` apps × 10 envs × `versions` versions
each (3 labels), with the journal rows and the version index exactly as ingest writes them.

Ingesting 2,000,000 deliveries through the pipeline would take most of an hour here; the as-of and
history reads only read the journal, the versions and the apps, so those are written in bulk by
PostgreSQL itself (INSERT ... SELECT FROM generate_series).
"""

from __future__ import annotations

import psycopg

from cmdb_sync import migrate

BASE_MS = 1_700_000_000_000
STEP_MS = 60_000  # a version of each env a minute apart, all envs at once


def fill_history(url: str, apps: int, versions: int) -> int:
    """Fill the database; return the epoch milliseconds of the middle version (a moment to ask about)."""
    migrate.upgrade(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO apps (org_id, name, description, type, version_at, version_id)
            SELECT 'org-bench', format('app-%%s', lpad(a::text, 5, '0')), 'bench', 'APP',
                   to_timestamp(%(base)s / 1000.0), format('app-%%s', a)
            FROM generate_series(0, %(apps)s - 1) AS a
            """,
            {"apps": apps, "base": BASE_MS},
        )
        conn.execute(
            """
            INSERT INTO events (id, kind, action, app, org_id, actor_id, time, received_at, status, error, headers, body)
            SELECT format('app-%%s', a), 'App', 'Create', format('app-%%s', lpad(a::text, 5, '0')), 'org-bench', 'u',
                   to_timestamp(%(base)s / 1000.0), now(), 'applied', NULL,
                   json_build_object('X-AppStack-Event', 'App', 'X-AppStack-Action', 'Create',
                                     'X-AppStack-App', format('app-%%s', lpad(a::text, 5, '0'))),
                   json_build_object('id', format('app-%%s', a), 'user', json_build_object('id', 'u'),
                                     'orgId', 'org-bench', 'time', %(base)s, 'objectKind', 'App',
                                     'objectAttributes', json_build_object('name', format('app-%%s', lpad(a::text, 5, '0')),
                                                                           'type', 'APP', 'description', 'bench'))::text
            FROM generate_series(0, %(apps)s - 1) AS a
            """,
            {"apps": apps, "base": BASE_MS},
        )
        conn.execute(
            """
            INSERT INTO versions (event_id, kind, org_id, app_name, name, time, deleted)
            SELECT format('app-%%s', a), 'App', 'org-bench', format('app-%%s', lpad(a::text, 5, '0')),
                   format('app-%%s', lpad(a::text, 5, '0')), to_timestamp(%(base)s / 1000.0), false
            FROM generate_series(0, %(apps)s - 1) AS a
            """,
            {"apps": apps, "base": BASE_MS},
        )
        envs = """
            FROM generate_series(0, %(apps)s - 1) AS a, generate_series(0, 9) AS e, generate_series(1, %(versions)s) AS v,
                 LATERAL (SELECT format('app-%%s', lpad(a::text, 5, '0')) AS app,
                                 format('env-%%s-%%s-%%s', a, e, v) AS id,
                                 %(base)s + v * %(step)s AS ms) AS k
        """
        conn.execute(
            f"""
            INSERT INTO events (id, kind, action, app, org_id, actor_id, time, received_at, status, error, headers, body)
            SELECT k.id, 'Env', CASE WHEN v = 1 THEN 'Create' ELSE 'Update' END, k.app, 'org-bench', 'u',
                   to_timestamp(k.ms / 1000.0), now(), 'applied', NULL,
                   json_build_object('X-AppStack-Event', 'Env',
                                     'X-AppStack-Action', CASE WHEN v = 1 THEN 'Create' ELSE 'Update' END,
                                     'X-AppStack-App', k.app),
                   json_build_object(
                       'id', k.id, 'user', json_build_object('id', 'u'), 'orgId', 'org-bench', 'time', k.ms,
                       'objectKind', 'Env',
                       'objectAttributes', json_build_object(
                           'name', format('env-%%s', e), 'appName', k.app, 'resourcePoolName', 'default',
                           'lockBy', CASE WHEN v %% 2 = 0 THEN 'ops' END,
                           'labelList', json_build_array(
                               json_build_object('namespace', 'default', 'name', 'envType',
                                                 'value', (ARRAY['production','staging','testing','development'])[e %% 4 + 1]),
                               json_build_object('namespace', 'default', 'name', 'region',
                                                 'value', (ARRAY['cn-hangzhou','cn-shanghai','cn-beijing','cn-shenzhen'])[(a + e) %% 4 + 1]),
                               json_build_object('namespace', 'default', 'name', 'version', 'value', v::text))))::text
            {envs}
            """,
            {"apps": apps, "versions": versions, "base": BASE_MS, "step": STEP_MS},
        )
        conn.execute(
            f"""
            INSERT INTO versions (event_id, kind, org_id, app_name, name, time, deleted)
            SELECT k.id, 'Env', 'org-bench', k.app, format('env-%%s', e), to_timestamp(k.ms / 1000.0), false
            {envs}
            """,
            {"apps": apps, "versions": versions, "base": BASE_MS, "step": STEP_MS},
        )
        conn.execute("VACUUM ANALYZE")
    return BASE_MS + (versions // 2) * STEP_MS
