"""The SQLite engine for Tortoise, with write transactions that take the write lock when they begin.

Tortoise opens SQLite transactions with a plain (deferred) `BEGIN`. In WAL mode a deferred transaction that
has read and then writes fails at once with "database is locked" when another connection committed in
between (SQLITE_BUSY_SNAPSHOT; the busy timeout does not apply). That happens as soon as a second process
uses the same file: `imageextract admin ...` or `migrate` beside a running server. `BEGIN IMMEDIATE` waits
for the lock (up to busy_timeout) instead, so such transactions serialize rather than fail.
Tortoise also commits before every BEGIN, a round trip to the connection's thread that does nothing on our
autocommit connection (`isolation_level=None`): it is made only when a transaction is in fact left open.

A statement outside a transaction is one trip to aiosqlite's thread, made without holding Tortoise's
connection lock (`trip`). The lock keeps other statements out of a transaction that spans several trips
(`in_transaction`); one trip cannot be split, since aiosqlite's thread runs the calls queued to it one at a
time, in order. So a trip waits for the lock only while a transaction holds it, and is queued the moment
the lock is free, before any other task runs. Holding the lock for the trip kept it held until the event
loop next ran the awaiting task, a round of the loop per statement: under 200 concurrent jobs it was held
87% of the time and every other statement queued behind it.
Used through `tortoise_config` as the engine `imageextract.db_sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError

T = TypeVar("T")


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            if self._connection._conn.in_transaction:  # read here: the lock held keeps its thread idle
                await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TransactionManagementError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)

    async def trip(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(sqlite3 connection, *args)` in aiosqlite's thread as one trip, never inside a transaction
        (see the module's docstring); sqlite3's errors become Tortoise's, as for Tortoise's own statements."""
        sqlite = self._connection
        if self._lock.locked() or sqlite is None:
            async with self.acquire_connection() as sqlite:  # a transaction's end (or the first connection)
                pass
        try:
            return await sqlite._execute(_outside_transaction, fn, sqlite._conn, *args)  # queued before we yield
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc

    async def execute_insert(self, query: str, values: list[Any]) -> int:
        self.log.debug("%s: %s", query, values)
        return await self.trip(_insert, query, values)

    async def execute_many(self, query: str, values: list[list[Any]]) -> None:
        self.log.debug("%s: %s", query, values)
        await self.trip(_many, query, values)

    async def execute_query(self, query: str, values: list[Any] | None = None) -> tuple[int, Sequence[dict[str, Any]]]:
        query = query.replace("\x00", "'||CHAR(0)||'")
        self.log.debug("%s: %s", query, values)
        return await self.trip(_query, query, values)

    async def execute_query_dict(self, query: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
        query = query.replace("\x00", "'||CHAR(0)||'")
        self.log.debug("%s: %s", query, values)
        return await self.trip(_query_dicts, query, values)


# In aiosqlite's thread: what Tortoise's SqliteClient does with each statement, in one call.


def _outside_transaction(fn: Callable[..., T], db: sqlite3.Connection, *args: Any) -> T:
    if db.in_transaction:  # never: a trip is queued only while no transaction holds the lock
        raise RuntimeError("a transaction is open on the SQLite connection")
    return fn(db, *args)


def _insert(db: sqlite3.Connection, query: str, values: list[Any]) -> int:
    cursor = db.execute(query, values)
    try:
        return int(cursor.lastrowid or 0)
    finally:
        cursor.close()


def _many(db: sqlite3.Connection, query: str, values: list[list[Any]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(query, values)
    except BaseException:
        db.rollback()
        raise
    db.commit()


def _query_dicts(db: sqlite3.Connection, query: str, values: list[Any] | None) -> list[dict[str, Any]]:
    """Rows as dicts built from plain tuples, the column names read once: Tortoise makes each row a
    `sqlite3.Row` and then a dict through the mapping protocol, which for 1,000 rows cost more than the query."""
    cursor = db.cursor()
    try:
        cursor.row_factory = None
        cursor.execute(query, values or [])
        names = tuple(column[0] for column in cursor.description or ())
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _query(db: sqlite3.Connection, query: str, values: list[Any] | None) -> tuple[int, list[Any]]:
    start = db.total_changes
    cursor = db.execute(query, values or [])
    try:
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return (db.total_changes - start) or len(rows), rows


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return ImmediateSqliteClient
