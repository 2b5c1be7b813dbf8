"""Shared fixtures: each backend (SQLite always; Postgres when reachable, required in CI) gets a fresh
database, a real server process, and per-test database access for assertions on stored state."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tortoise import Tortoise

from tests.support import Backend, ServerProcess, drop_pg_database, migrate, pg_database_or_skip


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"ie-{request.param}-"))
    url: str | None = None
    if request.param == "postgres":
        try:
            url = pg_database_or_skip()
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
    b = Backend(name=request.param, data_dir=data_dir, database_url=url)
    migrate(b)
    yield b
    if url:
        drop_pg_database(url)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server(backend: Backend) -> Iterator[ServerProcess]:
    proc = ServerProcess(backend)
    yield proc
    proc.stop()


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Backend]:
    """Tortoise connected to the backend's database inside the test's event loop."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.db import tortoise_config

    # Tortoise caches INSERT SQL per connection *name*; both backends are named "default" here.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(backend.settings()), _enable_global_fallback=True)
    try:
        yield backend
    finally:
        await Tortoise.close_connections()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
async def account(db: Backend) -> dict[str, Any]:
    """A fresh pro account with an owner, a Default project and a project key."""
    from tests.factories import make_account

    return await make_account(plan="pro")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, attach the tail of the server's log: the server runs in another process."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ServerProcess):
                report.sections.append(("server log", value.log()))
            for api in getattr(value, "apis", None) or []:
                report.sections.append((f"api log {api.port}", api.log()))
            if hasattr(value, "worker_logs"):
                report.sections.append(("worker logs", value.worker_logs()))
