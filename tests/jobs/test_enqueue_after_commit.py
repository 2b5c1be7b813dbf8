"""Messages to workers leave only after COMMIT (services/unit_of_work.py), and survive a broker outage.

- A rolled-back transaction sends nothing: the real unit of work on the real in-process broker, and a real
  submission whose debit fails inside its transaction.
- A job accepted while the broker refuses sends is processed once the broker is back: an API process and a
  worker process on a Redis server this test starts on a free loopback port, stops and restarts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import dramatiq
import httpx
import pytest

from tests.jobs.helpers import wait_for_job
from tests.pages import base_url
from tests.support import REQUIRE_SERVICES, Backend, ServerProcess, free_port


@pytest.fixture
async def runtime(backend: Backend) -> AsyncIterator[Any]:
    """This process's own runtime on the test database: the in-process broker, no worker consuming it."""
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.runtime import open_runtime

    EXECUTOR_CACHE.clear()
    async with open_runtime(backend.settings(embedded_worker=False, redis_url=None), role="api") as rt:
        yield rt


def sent(runtime: Any) -> list[tuple[str, list[Any]]]:
    """Every message waiting in the in-process broker (taken out of it)."""
    messages: list[tuple[str, list[Any]]] = []
    for queue in runtime.broker.queues.values():
        while not queue.empty():
            message = dramatiq.Message.decode(queue.get_nowait())
            messages.append((message.actor_name, list(message.args)))
    return messages


async def test_rolled_back_unit_of_work_sends_nothing(runtime: Any) -> None:
    from imageextract.models import Job
    from imageextract.services.unit_of_work import unit_of_work

    job_id = uuid.uuid4()
    with pytest.raises(RuntimeError, match="boom"):
        async with unit_of_work(runtime) as uow:
            await Job.create(id=job_id, type="url", status="queued", input={"value": "http://127.0.0.1/"},
                             total_items=1, using_db=uow.conn)
            uow.enqueue("process_item", "never")
            raise RuntimeError("boom")
    assert sent(runtime) == []
    assert not await Job.exists(id=job_id)

    async with unit_of_work(runtime) as uow:
        await Job.create(id=job_id, type="url", status="queued", input={"value": "http://127.0.0.1/"},
                         total_items=1, using_db=uow.conn)
        uow.enqueue("process_item", "after-commit")
        assert sent(runtime) == [], "nothing leaves before COMMIT"
    assert sent(runtime) == [("process_item", ["after-commit"])]
    assert await Job.exists(id=job_id)


async def test_submission_sends_only_what_it_commits(runtime: Any) -> None:
    from imageextract.errors import InsufficientCredits
    from imageextract.models import Job, JobItem, LedgerEntry
    from imageextract.services import auth
    from imageextract.services.submission import submit_job
    from tests.factories import make_account

    broke = await make_account(plan="pro", credits=0)
    ctx = runtime.context()
    ctx.principal = await auth.authenticate(authorization=broke["headers"]["Authorization"], session_token=None)
    with pytest.raises(InsufficientCredits):
        await submit_job(ctx, kind="bulk", raw_input=["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    assert sent(runtime) == []
    assert await Job.filter(account_id=broke["account_id"]).count() == 0
    assert await LedgerEntry.filter(account_id=broke["account_id"], entry_type="job_debit").count() == 0

    rich = await make_account(plan="pro")
    ctx.principal = await auth.authenticate(authorization=rich["headers"]["Authorization"], session_token=None)
    submitted = await submit_job(ctx, kind="bulk", raw_input=["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    items = await JobItem.filter(job_id=submitted.job.id).order_by("position").values_list("id", flat=True)
    assert sorted(sent(runtime)) == sorted(("process_item", [str(i)]) for i in items)


# Broker outage -----------------------------------------------------------------------------------


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if REQUIRE_SERVICES:  # CI: the machine's Redis package is required, so is its server binary
            raise RuntimeError("redis-server is required for this run but not installed")
        pytest.skip("redis-server not installed")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_job_accepted_while_broker_down_runs_when_it_is_back(backend: Backend, own_redis: RedisServer,
                                                                   db: Backend, pages: ThreadingHTTPServer) -> None:
    if backend.name != "postgres":
        pytest.skip("an API process and a worker process share Postgres")
    from imageextract.models import Job
    from tests.factories import make_account

    env = {"IMAGEEXTRACT_REDIS_URL": own_redis.url, "IMAGEEXTRACT_REDIS_NAMESPACE": f"ie-{uuid.uuid4().hex[:8]}"}
    api = ServerProcess(backend, extra_env=env)
    worker_log = open(backend.data_dir / f"worker-outage-{own_redis.port}.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "imageextract.cli", "worker", "--processes", "1", "--threads",
                               "2"], env=dict(os.environ) | {
        "IMAGEEXTRACT_DATA_DIR": str(backend.data_dir), "IMAGEEXTRACT_DATABASE_URL": backend.database_url or "",
        "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8,::1/128", "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false"} | env,
        stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        acct = await make_account(plan="pro")
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
            # The stack works.
            r = await client.post("/api/v1/jobs", headers=acct["headers"],
                                  json={"type": "url", "input": f"{base_url(pages)}/page/1"})
            assert r.status_code == 202
            assert (await wait_for_job(client, r.json()["job_id"], acct["headers"], 60))["status"] == "done"

            own_redis.stop()
            r = await client.post("/api/v1/jobs", headers=acct["headers"],
                                  json={"type": "url", "input": f"{base_url(pages)}/page/2"})
            assert r.status_code == 202, r.text  # accepted: the job is committed, its message waits
            job_id = r.json()["job_id"]
            job = await Job.get(id=job_id)
            assert job.status == "queued" and job.credits_reserved == 1
            await asyncio.sleep(1.0)
            assert (await Job.get(id=job_id)).status == "queued"

            own_redis.start()  # same port, empty: the message can only come from the API's retry
            body = await wait_for_job(client, job_id, acct["headers"], 60)
            assert body["status"] == "done" and body["image_count"] == 2
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        api.stop()
