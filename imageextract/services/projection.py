"""List reads as plain rows: one SELECT of named columns, rows as the driver returns them, no ORM per row.

Tortoise's `values()` already avoids model objects, but still converts every cell through its field
(a UUID object built and turned back into a string, each datetime re-parsed, each boolean checked): for
1,000 images that was most of a `/result` request. Here the SQL is written for the columns asked for, and
only the cells whose driver type differs from what a view needs are converted, per dialect:

- SQLite: booleans arrive as 0/1, JSON as text, datetimes as ISO text, UUIDs as text already;
- Postgres (asyncpg): UUIDs arrive as `uuid.UUID`, JSON as text, booleans and datetimes typed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tortoise import connections


def connection() -> Any:
    return connections.get("default")


def is_sqlite(conn: Any) -> bool:
    return bool(conn.capabilities.dialect == "sqlite")


def marks(conn: Any, count: int, start: int = 1) -> list[str]:
    """Parameter placeholders for this dialect: `?` (SQLite) or `$n` (Postgres)."""
    if is_sqlite(conn):
        return ["?"] * count
    return [f"${i}" for i in range(start, start + count)]


def columns(alias: str, names: Iterable[str]) -> str:
    return ", ".join(f'{alias}."{name}"' for name in names)


async def rows(conn: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows of a SELECT as dicts, built from the driver's plain rows with the column names read once (on
    SQLite by the engine itself: db_sqlite). Not for `... RETURNING`: Tortoise's Postgres client runs UPDATE,
    DELETE and INSERT without rows."""
    if is_sqlite(conn):
        return list(await conn.execute_query_dict(sql, list(params)))
    _, records = await conn.execute_query(sql, list(params))
    if not records:
        return []
    names = tuple(records[0].keys())
    return [dict(zip(names, record, strict=True)) for record in records]


async def tuples(conn: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """The rows of a SELECT as the driver's own sequences, cells in the order the SELECT names them: for a
    reader that builds one object per row from known positions (no dict per row at all)."""
    _, records = await conn.execute_query(sql, list(params))
    return list(records)


def as_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def as_str(value: Any) -> str | None:
    return None if value is None else str(value)


def as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
