"""Test support: backends (SQLite, Postgres), a real server process, accounts made through the services."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The embedded default is always tested. Postgres and Redis are tested when these point at servers
# (.ci/run sets both and IMAGEEXTRACT_TEST_REQUIRE_SERVICES=1, which turns "skip" into "fail").
REQUIRE_SERVICES = os.environ.get("IMAGEEXTRACT_TEST_REQUIRE_SERVICES") == "1"
PG_ADMIN_DSN = os.environ.get("IMAGEEXTRACT_TEST_DATABASE_URL") or None  # each run creates its own database there
REDIS_URL = os.environ.get("IMAGEEXTRACT_TEST_REDIS_URL") or None


def require_redis() -> str:
    """The test Redis URL; skips (or fails, when services are required) if unset or unreachable."""
    import pytest
    import redis

    if REDIS_URL is None:
        if REQUIRE_SERVICES:
            raise RuntimeError("IMAGEEXTRACT_TEST_REDIS_URL must be set when services are required")
        pytest.skip("IMAGEEXTRACT_TEST_REDIS_URL not set")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        if REQUIRE_SERVICES:
            raise RuntimeError(f"Redis is required for this run but unreachable: {exc}") from exc
        pytest.skip(f"Redis not reachable: {exc}")
    return REDIS_URL


@dataclass
class Backend:
    name: str
    data_dir: Path
    database_url: str | None
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Any:
        from imageextract.config import Settings

        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "create_demo_account": False,
            "ssrf_allow": ["127.0.0.0/8", "::1/128"],
        }
        values.update(overrides)
        return Settings(**values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pg_admin(sql: str) -> None:
    import asyncpg

    assert PG_ADMIN_DSN is not None
    conn = await asyncpg.connect(PG_ADMIN_DSN.replace("postgres://", "postgresql://", 1), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> str | None:
    """A fresh database for this test run, or None when Postgres is not configured or not reachable."""
    if PG_ADMIN_DSN is None:
        if REQUIRE_SERVICES:
            raise RuntimeError("IMAGEEXTRACT_TEST_DATABASE_URL must be set when services are required")
        return None
    name = f"ie_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        if REQUIRE_SERVICES:
            raise RuntimeError(f"Postgres is required for this run but unreachable: {exc}") from exc
        return None
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def pg_database_or_skip() -> str:
    """`create_pg_database()`, skipping the test when Postgres is not configured (a run that requires services
    fails in create_pg_database instead)."""
    import pytest

    url = create_pg_database()
    if url is None:
        pytest.skip("Postgres not configured or not reachable (IMAGEEXTRACT_TEST_DATABASE_URL)")
    return url


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(backend: Backend) -> None:
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract import db

    EXECUTOR_CACHE.clear()
    asyncio.run(db.migrate(backend.settings()))


class ServerProcess:
    """`imageextract serve` in a child process: real HTTP on loopback."""

    def __init__(self, backend: Backend, extra_env: dict[str, str] | None = None) -> None:
        self.backend = backend
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "IMAGEEXTRACT_DATA_DIR": str(backend.data_dir),
            "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false",
            "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8,::1/128",
            "IMAGEEXTRACT_WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.3,0.3,0.3",
            "IMAGEEXTRACT_RECONCILE_INTERVAL_SECONDS": "1",
            "IMAGEEXTRACT_ITEM_RETRY_DELAYS": "0.2,0.2",
            "PYTHONUNBUFFERED": "1",
        })
        if backend.database_url:
            env["IMAGEEXTRACT_DATABASE_URL"] = backend.database_url
        env.update(backend.env)
        env.update(extra_env or {})
        self.log_path = backend.data_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imageextract.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in server mode on a free loopback port, for the length of the block; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
