"""The SQLite engine for Tortoise, with write transactions that take the write lock when they begin.

Tortoise opens SQLite transactions with a plain (deferred) `BEGIN`. In WAL mode a deferred transaction that
has read and then writes fails at once with "database is locked" when another connection committed in
between (SQLITE_BUSY_SNAPSHOT; the busy timeout does not apply). That happens as soon as a second process
uses the same file: `imageextract admin ...` or `migrate` beside a running server. `BEGIN IMMEDIATE` waits
for the lock (up to busy_timeout) instead, so such transactions serialize rather than fail.
Tortoise also commits before every BEGIN, a round trip to the connection's thread that does nothing on our
autocommit connection (`isolation_level=None`): it is made only when a transaction is in fact left open.
Used through `tortoise_config` as the engine `imageextract.db_sqlite`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.exceptions import TransactionManagementError


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


client_class = ImmediateSqliteClient


def get_client_class(db_info: dict[str, Any]) -> type[SqliteClient]:
    return ImmediateSqliteClient
