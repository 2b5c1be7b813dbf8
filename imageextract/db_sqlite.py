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
Writes queued together commit together (group commit). Each commit of a WAL database in SQLite's default
`synchronous=FULL` waits for an fsync of the log, and the connection's thread does nothing else meanwhile:
under 200 concurrent jobs that thread was busy 76% of the run, most of it in commits, and every statement
queued behind it. So a trip is not sent to the thread by itself: calls gather in a list, and the one queued
run of the thread takes all that have gathered by the time it starts. Reads among them run as they are;
two or more writes run in one `BEGIN IMMEDIATE ... COMMIT`, each inside its own savepoint, so a write that
fails (a refused step, a constraint) is rolled back alone and its caller gets its error, as before. No caller
hears of its write before the COMMIT that makes it durable, so durability is what it was; only the fsyncs
are shared. A single write runs as it always did.
Used through `tortoise_config` as the engine `imageextract.db_sqlite`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar

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


class _Call(NamedTuple):
    """A trip waiting for the connection's thread: `fn(db, *args)`; `write`: it changes the database."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    write: bool
    future: asyncio.Future[Any]


_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def is_write(query: str) -> bool:
    """A statement that changes rows (DDL and PRAGMAs run alone, outside any group)."""
    return _WRITE.match(query) is not None


class ImmediateSqliteClient(SqliteClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: list[_Call] = []
        self._calls_lock = threading.Lock()  # the loop adds calls, the connection's thread takes them
        self._reader: _Reader | None = None

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)

    def read_now(self, query: str, values: list[Any]) -> list[dict[str, Any]] | None:
        """A point read (a few rows by a unique key), made at once on the calling thread: None when it
        cannot be, and the caller then takes the trip (`execute_query_dict`). See `_Reader`."""
        reader = self._reader
        if reader is None:
            if self.filename == ":memory:" or self._connection is None:
                return None
            reader = self._reader = _Reader(self.filename)
        return reader.rows(query, values)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        await super().close()

    async def trip(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """`fn(sqlite3 connection, *args)` in aiosqlite's thread as one trip, never inside a transaction
        of Tortoise's (see the module's docstring); a `write` may share its commit with other writes.
        sqlite3's errors become Tortoise's, as for Tortoise's own statements."""
        sqlite = self._connection
        if self._lock.locked() or sqlite is None:
            async with self.acquire_connection() as sqlite:  # a transaction's end (or the first connection)
                pass
        if not sqlite._running or not sqlite._connection:
            raise ValueError("Connection closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._calls_lock:
            self._calls.append(_Call(fn, args, write, future))
            first = len(self._calls) == 1
        if first:  # queued before we yield: no BEGIN of a transaction can come between
            sqlite._tx.put_nowait((None, partial(self._run_calls, sqlite._conn)))
        try:
            return await future
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc

    def _run_calls(self, db: sqlite3.Connection) -> None:
        """In aiosqlite's thread: every call gathered so far; their callers hear in one wake-up of the loop."""
        with self._calls_lock:
            calls, self._calls = self._calls, []
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        if db.in_transaction:  # never: a call is queued only while no transaction holds the lock
            error = RuntimeError("a transaction is open on the SQLite connection")
            outcomes = [(call.future, False, error) for call in calls]
        else:
            writes = [call for call in calls if call.write]
            for call in calls:
                if not call.write or len(writes) == 1:
                    outcomes.append(_run_one(db, call))
            if len(writes) > 1:
                outcomes += _run_group(db, writes)
        if outcomes:
            outcomes[0][0].get_loop().call_soon_threadsafe(_settle, outcomes)

    async def execute_insert(self, query: str, values: list[Any]) -> int:
        self.log.debug("%s: %s", query, values)
        return await self.trip(_insert, query, values, write=True)

    async def execute_many(self, query: str, values: list[list[Any]]) -> None:
        self.log.debug("%s: %s", query, values)
        await self.trip(_many, query, values, write=True)

    async def execute_query(self, query: str, values: list[Any] | None = None) -> tuple[int, Sequence[dict[str, Any]]]:
        query = query.replace("\x00", "'||CHAR(0)||'")
        self.log.debug("%s: %s", query, values)
        return await self.trip(_query, query, values, write=is_write(query))

    async def execute_query_dict(self, query: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
        query = query.replace("\x00", "'||CHAR(0)||'")
        self.log.debug("%s: %s", query, values)
        return await self.trip(_query_dicts, query, values, write=is_write(query))


class _Reader:
    """A second connection to the same file, for point reads made on the thread that first used it (the
    event loop's), without the trip to aiosqlite's thread.

    A trip is two thread wake-ups: the connection's thread to run the statement, the loop to hear of it. A
    point read (an API key with its account, a job, an item with its job) takes about 40 microseconds in
    SQLite, and the two wake-ups 0.1 ms with the process idle, 0.5-1 ms each while the loop is busy (the
    woken thread waits for the GIL): every request paid one for its key. In WAL mode a reader sees every
    committed transaction and never waits for the writer, so a read made here sees what a trip would.
    It never waits at all: `busy_timeout` is 0, so a database locked past what a reader can pass (a WAL
    being recovered) answers SQLITE_BUSY at once, and the read goes by the trip, which waits. Only the
    thread that opened it uses it; any other gets None and takes the trip. `query_only`: it cannot write."""

    def __init__(self, filename: str) -> None:
        self.thread = threading.get_ident()
        self.db = sqlite3.connect(filename, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout=0")
        self.db.execute("PRAGMA query_only=1")

    def rows(self, query: str, values: list[Any]) -> list[dict[str, Any]] | None:
        if threading.get_ident() != self.thread:
            return None
        try:
            return _query_dicts(self.db, query, values)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise OperationalError(exc) from exc

    def close(self) -> None:
        self.db.close()


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # its caller was cancelled meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _run_one(db: sqlite3.Connection, call: _Call) -> tuple[asyncio.Future[Any], bool, Any]:
    try:
        return call.future, True, call.fn(db, *call.args)
    except BaseException as exc:  # noqa: BLE001 - it goes to the caller, as aiosqlite would send it
        return call.future, False, exc


def _run_group(db: sqlite3.Connection, calls: list[_Call]) -> list[tuple[asyncio.Future[Any], bool, Any]]:
    """Writes in one transaction, each in a savepoint of its own, and one COMMIT for all. A write that fails
    is rolled back alone. An error that ends the whole transaction (SQLite rolls it back itself: disk full,
    I/O error) fails its own call; the calls that ran before it in that transaction are run again in a new
    one. A failed COMMIT fails every call it would have made durable."""
    outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
    pending = calls
    while pending:
        try:
            db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:  # noqa: BLE001 - e.g. locked by another process past the busy timeout
            return outcomes + [(call.future, False, exc) for call in pending]
        ran: list[tuple[_Call, Any]] = []
        rest: list[_Call] = []
        for index, call in enumerate(pending):
            db.execute("SAVEPOINT grouped")
            try:
                value = call.fn(db, *call.args)
            except BaseException as exc:  # noqa: BLE001 - it goes to its caller
                outcomes.append((call.future, False, exc))
                if not db.in_transaction:  # the transaction is gone with the writes before this one
                    rest = [earlier for earlier, _ in ran] + pending[index + 1:]
                    ran = []
                    break
                db.execute("ROLLBACK TO grouped")
                db.execute("RELEASE grouped")
            else:
                db.execute("RELEASE grouped")
                ran.append((call, value))
        if db.in_transaction:
            try:
                db.commit()
            except BaseException as exc:  # noqa: BLE001
                db.rollback()
                outcomes += [(call.future, False, exc) for call, _ in ran]
            else:
                outcomes += [(call.future, True, value) for call, value in ran]
        pending = rest
    return outcomes


# In aiosqlite's thread: what Tortoise's SqliteClient does with each statement, in one call.


def _insert(db: sqlite3.Connection, query: str, values: list[Any]) -> int:
    cursor = db.execute(query, values)
    try:
        return int(cursor.lastrowid or 0)
    finally:
        cursor.close()


def _many(db: sqlite3.Connection, query: str, values: list[list[Any]]) -> None:
    if db.in_transaction:  # a savepoint of a group (above)
        db.executemany(query, values)
        return
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
