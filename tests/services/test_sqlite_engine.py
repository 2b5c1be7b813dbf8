"""Two processes on one SQLite file (a server and `imageextract admin ...`): a transaction that reads, then
writes, must not fail because another connection committed in between."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from imageextract import db
from imageextract.config import Settings
from imageextract.models import User


async def test_transactions_take_the_write_lock_up_front(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    EXECUTOR_CACHE.clear()
    await db.migrate(settings)
    await db.init_db(settings)
    other = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite://"), timeout=0.2,
                            check_same_thread=False, isolation_level=None)
    try:
        async with in_transaction() as conn:
            assert not await User.filter(email="a@example.com").using_db(conn).exists()
            # Another process writes meanwhile. With a deferred BEGIN it would succeed and our INSERT below
            # would fail with "database is locked"; with BEGIN IMMEDIATE it waits for us instead.
            try:
                await asyncio.to_thread(other.execute, "INSERT INTO users (id, email, name, created_at) "
                                                       "VALUES ('usr_other', 'b@example.com', 'B', '2026-01-01')")
                other_wrote = True
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                other_wrote = False
            await User.create(id="usr_a", email="a@example.com", name="A", using_db=conn)
        assert not other_wrote, "the other connection had to wait for our transaction"
        assert await User.filter(id="usr_a").exists()
        other.execute("INSERT INTO users (id, email, name, created_at) "
                      "VALUES ('usr_other', 'b@example.com', 'B', '2026-01-01')")  # and succeeds once we are done
        assert await User.filter(id="usr_other").exists()
    finally:
        other.close()
        await Tortoise.close_connections()


async def test_writes_queued_together_commit_together_and_fail_alone(tmp_path: Path) -> None:
    """Group commit (db_sqlite): writes that gather while the connection's thread is busy run in one
    transaction, each in its own savepoint. A broken constraint, a refused step of `sql.transaction`, and an
    error that ends the whole transaction each fail only their own caller; every other write is committed
    (read back from a second connection) and answers its own result."""
    import threading

    from tortoise.exceptions import IntegrityError

    from imageextract.db_sqlite import ImmediateSqliteClient
    from imageextract.services.projection import connection
    from imageextract.services.sql import Refused, Statement, Step, transaction

    settings = Settings(data_dir=tmp_path)
    EXECUTOR_CACHE.clear()
    await db.migrate(settings)
    await db.init_db(settings)
    client = connection()
    assert isinstance(client, ImmediateSqliteClient)
    insert = Statement("INSERT INTO users (id, email, name, created_at) VALUES (:id, :email, 'N', '2026-01-01')")
    seen: dict[str, bool] = {}
    gate = threading.Event()

    def held(sqlite: sqlite3.Connection) -> None:  # keeps the thread busy while the writes gather
        gate.wait(10)

    def noted(sqlite: sqlite3.Connection, name: str) -> str:
        seen[name] = sqlite.in_transaction  # inside the group's transaction, or alone
        sqlite.execute("INSERT INTO users (id, email, name, created_at) VALUES (?, ?, 'N', '2026-01-01')",
                       (name, f"{name}@example.com"))
        return name

    def fatal(sqlite: sqlite3.Connection) -> None:  # as SQLite does on a full disk: the transaction is gone
        sqlite.execute("INSERT INTO users (id, email, name, created_at) VALUES ('usr_lost', 'l@x', 'N', '2026')")
        sqlite.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    try:
        busy = asyncio.create_task(client.trip(held))
        await asyncio.sleep(0.05)
        calls = [
            client.trip(noted, "usr_1", write=True),
            insert.execute(id="usr_2", email="two@example.com"),
            insert.execute(id="usr_dup", email="two@example.com"),  # the unique email: IntegrityError
            transaction([Step(insert, {"id": "usr_3", "email": "three@example.com"}),
                         Step(Statement('UPDATE users SET name=\'x\' WHERE id=\'nobody\''), required="gone")]),
            client.trip(fatal, write=True),
            transaction([Step(insert, {"id": "usr_4", "email": "four@example.com"}),
                         Step(Statement("SELECT id FROM users WHERE id='usr_4'"), fetch=True)]),
            client.trip(noted, "usr_5", write=True),
        ]
        tasks = [asyncio.create_task(c) for c in calls]
        await asyncio.sleep(0.05)
        gate.set()
        await busy
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        gate.set()
    assert results[0] == "usr_1" and results[1] == 1 and results[6] == "usr_5"
    assert isinstance(results[2], IntegrityError)
    assert isinstance(results[3], Refused) and results[3].outcome == "gone"
    assert isinstance(results[4], OperationalError) and "disk is full" in str(results[4])
    assert results[5] == [1, [{"id": "usr_4"}]]
    assert seen == {"usr_1": True, "usr_5": True}, "the writes ran inside one shared transaction"
    other = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite://"))
    try:
        kept = {row[0] for row in other.execute("SELECT id FROM users")}
    finally:
        other.close()
    assert {"usr_1", "usr_2", "usr_4", "usr_5"} <= kept
    assert not kept & {"usr_dup", "usr_3", "usr_lost"}
    # A write alone runs as it always did, in a transaction of its own.
    assert await client.trip(noted, "usr_6", write=True) == "usr_6" and seen["usr_6"] is False
    await Tortoise.close_connections()
