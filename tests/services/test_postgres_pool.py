"""The Postgres pool gives connections back without asyncpg's reset round trip, and still never hands out a
connection with a transaction left open (imageextract.db.release_connection)."""

from __future__ import annotations

import pytest
from tortoise import connections

from tests.support import Backend

# The asyncpg pool exists on Postgres only: these run on that backend alone.
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@postgres_only
async def test_a_transaction_left_open_is_rolled_back_on_release(db: Backend) -> None:
    client = connections.get("default")
    await client.execute_query("SELECT 1")  # the pool opens on first use
    pool = client._pool
    assert pool.get_max_size() >= 1
    async with pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS pool_probe (n int)")
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO pool_probe VALUES (1)")
        pid = conn.get_server_pid()
    # Every connection the pool hands out now is outside a transaction, and the write above is gone.
    seen = set()
    for _ in range(pool.get_max_size() * 2):
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            seen.add(conn.get_server_pid())
            if conn.get_server_pid() == pid:
                assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
    assert pid in seen


@postgres_only
async def test_released_connections_skip_the_reset_query(db: Backend) -> None:
    """No `RESET ALL` round trip per release: seen by its effect, a session setting that RESET ALL would undo
    survives the release (our code sets none; this one is undone by hand)."""
    client = connections.get("default")
    await client.execute_query("SELECT 1")
    pool = client._pool
    async with pool.acquire() as conn:
        await conn.execute("SET application_name = 'ie-pool-probe'")
        pid = conn.get_server_pid()
    for _ in range(pool.get_max_size() * 2):
        async with pool.acquire() as conn:
            if conn.get_server_pid() == pid:
                # asyncpg's default release would have run RESET ALL here.
                assert await conn.fetchval("SHOW application_name") == "ie-pool-probe"
                await conn.execute("RESET application_name")
                return
    pytest.fail("the pool never handed the same connection back")
