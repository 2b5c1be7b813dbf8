"""Two processes on one SQLite file (a server and `imageextract admin ...`): a transaction that reads, then
writes, must not fail because another connection committed in between."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
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
