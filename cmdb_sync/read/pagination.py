"""Keyset pagination with opaque cursors.

A cursor holds the sort key of the last row served; the next page is the rows strictly after it
in a total order (every key is unique within the list). Keys are natural (names, sns), never
surrogate ids, so a cursor means the same after ``replay --rebuild``. Rows inserted between two pages therefore
never shift the page boundary: nothing already listed repeats and nothing listed before is skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, Select, bindparam, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cmdb_sync.db import beyond, past
from cmdb_sync.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _encode_value(value: Any) -> Any:
    return {"dt": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"dt"}:
        return datetime.fromisoformat(value["dt"])
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[ColumnElement[Any]]) -> list[Any]:
    """The sort key a cursor holds, each value of its key's type; anything else is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError
        decoded = [_decode_value(v) for v in values]
        if not all(_fits(value, key) for value, key in zip(decoded, keys, strict=True)):
            raise ValueError
        return decoded
    except (ValueError, binascii.Error, UnicodeError, TypeError, RecursionError, OverflowError):
        msg = "cursor: not a cursor this list gave out"
        raise BadRequest(msg, field="cursor") from None


def _fits(value: Any, key: ColumnElement[Any]) -> bool:
    """Whether a cursor value can be compared with its key: the key's Python type, text that is
    Unicode, a time with its offset that stays in range in UTC."""
    expected = key.type.python_type
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError on a lone surrogate
    if isinstance(value, datetime):
        value.astimezone(UTC)  # OverflowError at the edges of time
        return expected is datetime and value.tzinfo is not None
    return isinstance(value, expected) and not isinstance(value, bool)


def paginate(
    session: Session,
    stmt: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of ``stmt`` ordered by ``keys`` (all ascending, or all descending)."""
    paged = page_statement(stmt, keys, limit=limit, cursor=cursor, descending=descending)
    rows = session.execute(paged).all()
    return page_of(rows, len(keys), limit)


def page_statement(
    stmt: Select[Any], keys: Sequence[ColumnElement[Any]], *, limit: int, cursor: str | None, descending: bool = False
) -> Select[Any]:
    """``stmt`` past the cursor, in key order, one row more than the page (to know whether another
    follows), with the keys as its last columns."""
    if cursor is not None:
        stmt = stmt.where(past(keys, decode_cursor(cursor, keys), descending=descending))
    return _in_key_order(stmt, keys, descending).limit(limit + 1)


def bound_page_statement(
    stmt: Select[Any], keys: Sequence[ColumnElement[Any]], *, after: bool, descending: bool = False
) -> Select[Any]:
    """``page_statement`` with the cursor's values (``after``: past a cursor) and the limit as
    named parameters, which ``page_parameters`` gives: one statement, built once, serves every
    page of its shape, and SQLAlchemy finds its compiled form without walking it again."""
    if after:
        bound = tuple_(*(bindparam(f"_after_{i}", type_=key.type) for i, key in enumerate(keys)))
        stmt = stmt.where(beyond(keys, bound, descending=descending))
    return _in_key_order(stmt, keys, descending).limit(bindparam("_limit", type_=Integer))


def _in_key_order(stmt: Select[Any], keys: Sequence[ColumnElement[Any]], descending: bool) -> Select[Any]:
    """``stmt`` ordered by ``keys``, which it also selects as its last columns (``page_of`` makes
    the next cursor of them)."""
    order = [key.desc() if descending else key.asc() for key in keys]
    return stmt.add_columns(*(key.label(f"_page_key_{i}") for i, key in enumerate(keys))).order_by(*order)


def page_parameters(keys: Sequence[ColumnElement[Any]], *, limit: int, cursor: str | None) -> dict[str, Any]:
    """The parameters of ``bound_page_statement`` for one page (a bad cursor is a 400)."""
    parameters: dict[str, Any] = {"_limit": limit + 1}
    if cursor is not None:
        parameters.update({f"_after_{i}": value for i, value in enumerate(decode_cursor(cursor, keys))})
    return parameters


def page_of(rows: Sequence[Any], key_count: int, limit: int) -> tuple[list[Any], str | None]:
    """The page of ``page_statement``'s rows, and the cursor to the next one (None at the end)."""
    if len(rows) <= limit:
        return list(rows), None
    page = list(rows[:limit])
    last = page[-1]
    return page, encode_cursor([last[i] for i in range(len(last) - key_count, len(last))])
