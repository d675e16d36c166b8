"""Many rows in one statement whose text never changes: how the batch projector talks to the database.

On PostgreSQL every set of rows goes as one JSON document (``INSERT ... SELECT ... FROM
json_to_recordset(%(rows)s::json) AS r(...)``, encoded by msgspec); keys to look up go as binary
arrays. The statement text is the same whatever the number of rows, so psycopg parses it once and
the server prepares it, where a multi-row ``VALUES`` is a new, long statement for every batch
(measured: a third of the batch projector's time went to building and parsing those; then a third
of what remained to psycopg's array dumpers, which the JSON document replaced). On SQLite, which
has no arrays and no network, the same operations are plain SQLAlchemy statements, built once per
table.

On PostgreSQL the statements go straight to psycopg (``_pg``), not through SQLAlchemy's execute
(measured: 45 us of Python a statement, ten statements a batch). Inside ``pipelined`` a statement
whose rows nobody reads is only queued, and goes with the next one whose rows are read (or the
commit): a batch of webhook deliveries waits for four round trips instead of eleven.

Values arrive as the projections make them (aware UTC datetimes, JSON-able values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import msgspec
import psycopg
from psycopg.types.json import Json
from sqlalchemy import Connection, Table, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from cmdb_sync.models import parent_column

Key = tuple[Any, ...]
_PG = postgresql.dialect()


def _pg_type(table: Table, name: str) -> str:
    """The column's PostgreSQL type."""
    return table.c[name].type.compile(dialect=_PG).lower()


def _pg_select(table: Table, columns: Sequence[str]) -> str:
    """``SELECT "a", "b", ... FROM json_to_recordset(%(rows)s::json) AS r("a" type, ...)``: the rows
    as one JSON document (see ``_pg_rows``)."""
    definitions = ", ".join(f'"{name}" {_pg_type(table, name)}' for name in columns)
    return f"SELECT {_quoted(columns)} FROM json_to_recordset(%(rows)s::json) AS r({definitions})"


def _pg_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Json]:
    """The rows as one JSON array of objects, the parameter of ``_pg_select``. Measured against one
    binary array per column (psycopg builds those in Python, value by value): a third of a
    webhook batch's time went to building the arrays; msgspec encodes the document in C, and
    PostgreSQL's JSON parser is cheaper still. Datetimes go as RFC 3339 with their offset. The
    document goes as msgspec's bytes (``Json`` with its encoder), not decoded to text for psycopg
    to encode again."""
    return {"rows": Json(rows, dumps=_encode)}


_encode = msgspec.json.Encoder().encode


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


# --- PostgreSQL: statements on the driver's connection ---------------------------------------------


def _pg(conn: Connection, sql: str, params: dict[str, Any], *, rows: bool = True) -> list[tuple[Any, ...]]:
    """Run one statement on the connection's psycopg connection, in its transaction; its rows, or
    (``rows=False``) nothing, so that in a pipeline it is only queued. A driver error is raised as
    SQLAlchemy would have raised it, which is what every caller knows how to judge."""
    driver = conn.connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if rows else []
    except psycopg.Error as exc:
        raise _as_sqlalchemy(exc, sql, driver) from exc


def _pg_later(conn: Connection, sql: str, params: dict[str, Any]) -> Callable[[], list[tuple[Any, ...]]]:
    """``_pg``, its rows read when asked: in a pipeline, with whichever round trip comes first (the
    commit's, when asked after it)."""
    driver = conn.connection.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
    except psycopg.Error as exc:
        raise _as_sqlalchemy(exc, sql, driver) from exc

    def rows() -> list[tuple[Any, ...]]:
        try:
            return cursor.fetchall()
        except psycopg.Error as exc:
            raise _as_sqlalchemy(exc, sql, driver) from exc

    return rows


def _as_sqlalchemy(exc: psycopg.Error, sql: str | None, driver: Any) -> DBAPIError:
    return DBAPIError.instance(  # type: ignore[no-any-return]
        sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=bool(driver.broken)
    )


@contextmanager
def pipelined(conn: Connection, *, enabled: bool = True) -> Iterator[None]:
    """On PostgreSQL, the block's statements in psycopg's pipeline mode: those whose rows are not
    read are sent with the next round trip. An error surfaces at that round trip (or the commit),
    so a pipelined transaction can only fail as a whole; elsewhere, or not ``enabled``, nothing."""
    if not enabled or conn.dialect.name != "postgresql":
        yield
        return
    driver = conn.connection.driver_connection
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            yield
    except psycopg.Error as exc:
        raise _as_sqlalchemy(exc, None, driver) from exc


def plan_by_key(conn: Connection) -> None:
    """On PostgreSQL, plan the rest of the transaction's statements as what they are: a few rows
    found by key. A prepared statement keeps the plan it got when it was prepared; prepared while a
    table was small (a new database, a rebuild's fresh tables, any table autovacuum has not yet
    analyzed), that plan reads the whole table, and goes on reading it as the table grows
    (measured on 2,000 envs: the held versions' lookup and the labels' delete each scanned every
    row, 0.5 ms a batch each; per batch of 8 webhook deliveries PostgreSQL's CPU went from 5.0 to
    2.7 ms with index lookups). Every statement of a batch has an index to find its rows by."""
    if conn.dialect.name == "postgresql":
        _pg(conn, "SET LOCAL enable_seqscan = off", {}, rows=False)


# --- the held versions of some objects -----------------------------------------------------------


def held_versions(
    conn: Connection, table: Table, identity: tuple[str, ...], keys: Sequence[Key]
) -> Callable[[], dict[Key, tuple[Any, Any]]]:
    """What it returns gives ``(version_at, version_id)`` of each object held, by key (absent keys
    are not held). On PostgreSQL the rows are read when asked: in a pipeline, the lookups of every
    kind of a batch, and the journal's, come back in one round trip."""
    if not keys:
        return dict
    if conn.dialect.name == "postgresql":
        params = {f"c{i}": [key[i] for key in keys] for i in range(len(identity))}
        rows = _pg_later(conn, _pg_held_sql(table, identity), params)
        width = len(identity)
        return lambda: {row[:width]: (row[-2], row[-1]) for row in rows()}
    held: dict[Key, tuple[Any, Any]] = {}
    columns = [table.c[name] for name in identity]
    for start in range(0, len(keys), 500):
        stmt = select(*columns, table.c.version_at, table.c.version_id).where(
            tuple_(*columns).in_(keys[start : start + 500])
        )
        for row in conn.execute(stmt):
            held[tuple(row[: len(identity)])] = (row.version_at, row.version_id)
    return lambda: held


@cache
def _pg_held_sql(table: Table, identity: tuple[str, ...]) -> str:
    arrays = ", ".join(f"%(c{i})b::{_pg_type(table, name)}[]" for i, name in enumerate(identity))
    aliases = ", ".join(f"k{i}" for i in range(len(identity)))
    joined = " AND ".join(f't."{name}" = k.k{i}' for i, name in enumerate(identity))
    held = ", ".join(f't."{name}"' for name in identity)
    return (
        f"SELECT {held}, t.version_at, t.version_id "
        f'FROM "{table.name}" AS t JOIN unnest({arrays}) AS k({aliases}) ON {joined}'
    )


def journaled(
    conn: Connection, event_ids: Table, events: Table, ids: Sequence[str]
) -> dict[str, tuple[str | None, str | None, str | None, str | None]]:
    """``(status, body, action, app)`` of each of ``ids`` ever journaled; all None for one whose
    month was archived (the journal row is the one of its first receipt, in that month's partition)."""
    if not ids:
        return {}
    if conn.dialect.name == "postgresql":
        sql = (
            "SELECT i.id, e.status, e.body, e.action, e.app FROM event_ids i LEFT JOIN events e "
            "ON e.id = i.id AND e.received_at = i.received_at WHERE i.id = ANY(%(v)b::varchar[])"
        )
        rows: Any = _pg(conn, sql, {"v": list(ids)})
    else:
        columns = (event_ids.c.id, events.c.status, events.c.body, events.c.action, events.c.app)
        joined = event_ids.outerjoin(events, events.c.id == event_ids.c.id)
        rows = conn.execute(select(*columns).select_from(joined).where(event_ids.c.id.in_(ids)))
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def journal(conn: Connection, event_ids: Table, events: Table, rows: list[dict[str, Any]]) -> Callable[[], set[str]]:
    """Journal the deliveries whose id was never journaled; what it returns gives the ids journaled.
    The id is claimed in ``event_ids`` (``ON CONFLICT DO NOTHING``: of two processes journaling one
    id at once, one wins) and the row goes to the journal in the same statement. On PostgreSQL the
    ids are read when asked: asked after the commit, in a pipeline, they come back with the commit's
    round trip instead of one of their own (the writer's last statement before it commits)."""
    if not rows:
        return set
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        claimed_rows = _pg_later(conn, _pg_journal_sql(events, columns), _pg_rows(rows))
        return lambda: {row[0] for row in claimed_rows()}
    claim = sqlite.insert(event_ids).on_conflict_do_nothing(index_elements=["id"]).returning(event_ids.c.id)
    claimed = set(conn.execute(claim, [{"id": row["id"], "received_at": row["received_at"]} for row in rows]).scalars())
    fresh = [row for row in rows if row["id"] in claimed]
    if fresh:
        conn.execute(insert(events), fresh)
    return lambda: claimed


@cache
def _pg_journal_sql(events: Table, columns: tuple[str, ...]) -> str:
    return (
        f"WITH r AS MATERIALIZED ({_pg_select(events, columns)}), "
        "claimed AS (INSERT INTO event_ids (id, received_at) SELECT id, received_at FROM r "
        "ON CONFLICT (id) DO NOTHING RETURNING id) "
        f'INSERT INTO "{events.name}" ({_quoted(columns)}) SELECT r.* FROM r '
        "WHERE r.id IN (SELECT id FROM claimed) RETURNING id"
    )


def replace_journaled(conn: Connection, events: Table, rows: list[dict[str, Any]], statuses: Sequence[str]) -> set[str]:
    """Rewrite the journal rows of ``rows`` (by id; the time each was first received stays) whose
    status is still one of ``statuses``; the ids rewritten."""
    if not rows:
        return set()
    columns = tuple(name for name in rows[0] if name != "received_at")
    if conn.dialect.name == "postgresql":
        params = {**_pg_rows(rows), "statuses": list(statuses)}
        return {row[0] for row in _pg(conn, _pg_replace_sql(events, columns), params)}
    replaced = set()
    for row in rows:
        stmt = (
            update(events)
            .where(events.c.id == row["id"], events.c.status.in_(statuses))
            .values({name: row[name] for name in columns if name != "id"})
        )
        if conn.execute(stmt).rowcount:
            replaced.add(row["id"])
    return replaced


@cache
def _pg_replace_sql(events: Table, columns: tuple[str, ...]) -> str:
    sets = ", ".join(f'"{name}" = r."{name}"' for name in columns if name != "id")
    return (
        f'UPDATE "{events.name}" AS t SET {sets} FROM ({_pg_select(events, columns)}) AS r '
        "WHERE t.id = r.id AND t.status = ANY(%(statuses)s) RETURNING t.id"
    )


# --- guarded upsert ------------------------------------------------------------------------------


def upsert(
    conn: Connection, table: Table, identity: tuple[str, ...], rows: list[dict[str, Any]], insert_only: tuple[str, ...]
) -> dict[Key, int]:
    """Insert each row, or overwrite the held one when the row's ``(version_at, version_id)`` is
    greater (ids compared by code point); the ids of the rows written, by key."""
    columns = tuple(rows[0])
    width = len(identity)
    if conn.dialect.name == "postgresql":
        result: Any = _pg(conn, _pg_upsert_sql(table, identity, columns, insert_only), _pg_rows(rows))
    else:
        result = conn.execute(_sqlite_upsert(table, identity, columns, insert_only), rows)
    return {tuple(row[1 : 1 + width]): row[0] for row in result}


def _updated(identity: tuple[str, ...], columns: tuple[str, ...], insert_only: tuple[str, ...]) -> list[str]:
    return [name for name in columns if name not in identity and name not in insert_only]


@cache
def _pg_upsert_sql(
    table: Table, identity: tuple[str, ...], columns: tuple[str, ...], insert_only: tuple[str, ...]
) -> str:
    sets = ", ".join(f'"{name}" = excluded."{name}"' for name in _updated(identity, columns, insert_only))
    held, new = f'"{table.name}"', "excluded"
    return (
        f'INSERT INTO "{table.name}" ({_quoted(columns)}) {_pg_select(table, columns)} '
        f"ON CONFLICT ({_quoted(identity)}) DO UPDATE SET {sets} "
        f'WHERE {held}.version_at IS NULL OR ({held}.version_at, {held}.version_id COLLATE "C") '
        f'< ({new}.version_at, {new}.version_id COLLATE "C") '
        f"RETURNING id, {_quoted(identity)}"
    )


@cache
def _sqlite_upsert(
    table: Table, identity: tuple[str, ...], columns: tuple[str, ...], insert_only: tuple[str, ...]
) -> Any:
    stmt = sqlite.insert(table)
    excluded = stmt.excluded
    guard = or_(
        table.c.version_at.is_(None),
        tuple_(table.c.version_at, table.c.version_id) < tuple_(excluded.version_at, excluded.version_id),
    )
    sets = {name: excluded[name] for name in _updated(identity, columns, insert_only)}
    return stmt.on_conflict_do_update(index_elements=list(identity), set_=sets, where=guard).returning(
        table.c.id, *(table.c[name] for name in identity)
    )


# --- plain inserts -------------------------------------------------------------------------------


def insert_rows(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, key: tuple[str, ...] = ()
) -> dict[Key, int]:
    """Insert the rows; with ``key`` (columns unique among them), their new ids by that key."""
    if not rows:
        return {}
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        result: Any = _pg(conn, _pg_insert_sql(table, columns, key), _pg_rows(rows), rows=bool(key))
    else:
        stmt = insert(table)
        if not key:
            conn.execute(stmt, rows)
            return {}
        result = conn.execute(stmt.returning(table.c.id, *(table.c[name] for name in key)), rows)
    return {tuple(row[1:]): row[0] for row in result} if key else {}


@cache
def _pg_insert_sql(table: Table, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    returning = f" RETURNING id, {_quoted(key)}" if key else ""
    return f'INSERT INTO "{table.name}" ({_quoted(columns)}) {_pg_select(table, columns)}{returning}'


def insert_ignoring_conflicts(
    conn: Connection, table: Table, conflict: tuple[str, ...], rows: list[dict[str, Any]], *, mostly_held: bool = False
) -> None:
    """Insert the rows whose ``conflict`` key is not held yet. ``mostly_held``: most keys are held
    already, and others write them (PostgreSQL): the held ones are left out before inserting, for
    an insert that meets a key another transaction has just written or updated waits for it to
    end (two rebuild or import lanes waited on each other that way for a tenth of their time)."""
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        _pg(conn, _pg_insert_ignoring_sql(table, columns, conflict, mostly_held), _pg_rows(rows), rows=False)
        return
    conn.execute(sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict)), rows)


@cache
def _pg_insert_ignoring_sql(
    table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], mostly_held: bool
) -> str:
    held = " AND ".join(f't."{name}" = r."{name}"' for name in conflict)
    where = f' WHERE NOT EXISTS (SELECT 1 FROM "{table.name}" AS t WHERE {held})' if mostly_held else ""
    return (
        f'INSERT INTO "{table.name}" ({_quoted(columns)}) {_pg_select(table, columns)}{where} '
        f"ON CONFLICT ({_quoted(conflict)}) DO NOTHING"
    )


def delete_children(conn: Connection, table: Table, column: str, parent_ids: list[int]) -> None:
    """Delete the rows of ``table`` whose ``column`` is one of ``parent_ids``, and the rows below
    them (a job's stages, and their tasks): what a foreign key's cascade did (``models.parent_id``)."""
    if not parent_ids:
        return
    if conn.dialect.name == "postgresql":
        _pg(conn, _pg_delete_sql(table, column), {"ids": parent_ids}, rows=False)
        return
    for start in range(0, len(parent_ids), 500):
        chunk = parent_ids[start : start + 500]
        _delete_below(conn, table, select(table.c.id).where(table.c[column].in_(chunk)))
        conn.execute(table.delete().where(table.c[column].in_(chunk)))


@cache
def _below(table: Table) -> tuple[tuple[Table, str], ...]:
    """The tables whose rows belong to a row of ``table``, with the column that says which."""
    return tuple(
        (child, column) for child in table.metadata.sorted_tables if (column := parent_column(child, table)) is not None
    )


def _delete_below(conn: Connection, table: Table, ids: Any) -> None:
    """Delete the rows below the rows of ``table`` that ``ids`` selects, the deepest first."""
    for child, column in _below(table):
        _delete_below(conn, child, select(child.c.id).where(child.c[column].in_(ids)))
        conn.execute(child.delete().where(child.c[column].in_(ids)))


def _pg_below(table: Table, ids: str) -> list[str]:
    """The ``WITH`` parts deleting the rows below the rows of ``table`` that the query ``ids``
    selects: each table's delete returns the ids that the next level down is deleted by. They
    all see the rows as they were when the statement began, the parent rows deleted beside them
    included."""
    parts = []
    for child, column in _below(table):
        name = f"below_{child.name}"
        returning = " RETURNING id" if _below(child) else ""
        parts.append(f'{name} AS (DELETE FROM "{child.name}" WHERE "{column}" = ANY(ARRAY({ids})){returning})')
        parts += _pg_below(child, f"SELECT id FROM {name}")
    return parts


def _pg_deletes(table: Table, column: str) -> tuple[list[str], str]:
    """The ``WITH`` parts deleting what is below the rows of ``table`` under the parents ``%(ids)s``, and those rows' own delete."""
    under = f'"{column}" = ANY(%(ids)b::integer[])'
    return _pg_below(table, f'SELECT id FROM "{table.name}" WHERE {under}'), f'DELETE FROM "{table.name}" WHERE {under}'


@cache
def _pg_delete_sql(table: Table, column: str) -> str:
    below, delete = _pg_deletes(table, column)
    return f"WITH {', '.join(below)} {delete}" if below else delete


def replace_children(
    conn: Connection,
    table: Table,
    column: str,
    parent_ids: list[int],
    rows: list[dict[str, Any]],
    *,
    key: tuple[str, ...] = (),
) -> dict[Key, int]:
    """The rows of ``table`` under ``parent_ids`` become ``rows`` (the old ones' own children are
    deleted with them); with ``key``, the new ids by that key. On PostgreSQL one statement, the
    deletes in a ``WITH``: they touch other rows than the insert, and a child table has no unique
    key but its id (measured: two statements fewer in a batch of Env deliveries, each ~0.3 ms of a
    batch's fixed cost)."""
    if not rows or conn.dialect.name != "postgresql":
        delete_children(conn, table, column, parent_ids)
        return insert_rows(conn, table, rows, key=key)
    columns = tuple(rows[0])
    params = {**_pg_rows(rows), "ids": parent_ids}
    result: Any = _pg(conn, _pg_replace_children_sql(table, column, columns, key), params, rows=bool(key))
    return {tuple(row[1:]): row[0] for row in result} if key else {}


@cache
def _pg_replace_children_sql(table: Table, column: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    below, delete = _pg_deletes(table, column)
    return f"WITH {', '.join([*below, f'gone AS ({delete})'])} {_pg_insert_sql(table, columns, key)}"


# --- the journal's statuses ----------------------------------------------------------------------


def record_statuses(conn: Connection, table: Table, rows: list[tuple[str, str, str | None]]) -> None:
    """Set ``status`` and ``error`` of each ``(id, status, error)``, in one statement. A row that
    already says so is left alone: a replay mostly finds what the journal holds, and rewriting a
    journal row (its body and six indexes) was a fifth of a rebuild's time in PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        ids, statuses, errors = (list(column) for column in zip(*rows, strict=True))
        _pg(conn, _pg_status_sql(table), {"i": ids, "s": statuses, "e": errors}, rows=False)
        return
    changed = or_(table.c.status != bindparam("s"), table.c.error.is_distinct_from(bindparam("e")))
    stmt = (
        update(table).where(table.c.id == bindparam("i"), changed).values(status=bindparam("s"), error=bindparam("e"))
    )
    conn.execute(stmt, [{"i": i, "s": s, "e": e} for i, s, e in rows])


@cache
def _pg_status_sql(table: Table) -> str:
    return (
        f'UPDATE "{table.name}" AS t SET status = r.s, error = r.e '
        "FROM unnest(%(i)b::varchar[], %(s)b::varchar[], %(e)b::text[]) AS r(i, s, e) WHERE t.id = r.i "
        "AND (t.status <> r.s OR t.error IS DISTINCT FROM r.e)"
    )
