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
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from tortoise import connections

from imageextract.db_sqlite import ImmediateSqliteClient

T = TypeVar("T")


def connection() -> Any:
    return connections.get("default")


def is_sqlite(conn: Any) -> bool:
    return bool(conn.capabilities.dialect == "sqlite")


def single_trip(conn: Any) -> bool:
    """Whether `conn` is the SQLite client itself (not a transaction): `sqlite_trip` can serve it."""
    return isinstance(conn, ImmediateSqliteClient)


async def sqlite_trip(conn: Any, fn: Callable[..., T], *args: Any) -> T:
    """`fn(sqlite3 connection, *args)` as one trip to aiosqlite's thread, outside any transaction and without
    holding Tortoise's lock across it (db_sqlite.ImmediateSqliteClient.trip)."""
    return await conn.trip(fn, *args)


def marks(conn: Any, count: int, start: int = 1) -> list[str]:
    """Parameter placeholders for this dialect: `?` (SQLite) or `$n` (Postgres)."""
    if is_sqlite(conn):
        return ["?"] * count
    return [f"${i}" for i in range(start, start + count)]


def columns(alias: str, names: Iterable[str]) -> str:
    return ", ".join(f'{alias}."{name}"' for name in names)


async def rows(conn: Any, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows of a SELECT as dicts, built here from the driver's plain rows with the column names read
    once. Tortoise's `execute_query_dict` makes each SQLite row a `sqlite3.Row` and then a dict through the
    mapping protocol, field by field: for 1,000 rows that cost more than the query itself. Not for
    `... RETURNING`: Tortoise's Postgres client runs UPDATE, DELETE and INSERT without rows."""
    if single_trip(conn):  # one trip to aiosqlite's thread instead of three (execute, fetch, close)
        return await sqlite_trip(conn, _sqlite_dicts, sql, list(params))
    _, records = await conn.execute_query(sql, list(params))
    if not records:
        return []
    names = tuple(records[0].keys())
    return [dict(zip(names, record, strict=True)) for record in records]


async def tuples(conn: Any, sql: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """The rows of a SELECT as the driver's own sequences, cells in the order the SELECT names them: for a
    reader that builds one object per row from known positions (no dict per row at all)."""
    if single_trip(conn):
        return await sqlite_trip(conn, _sqlite_tuples, sql, list(params))
    _, records = await conn.execute_query(sql, list(params))
    return list(records)


def _sqlite_tuples(db: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    cursor = db.cursor()
    try:
        cursor.row_factory = None
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _sqlite_dicts(db: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """In aiosqlite's thread: the query on a cursor of plain tuples, made dicts."""
    cursor = db.cursor()
    try:
        cursor.row_factory = None
        cursor.execute(sql, params)
        names = tuple(column[0] for column in cursor.description)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


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
