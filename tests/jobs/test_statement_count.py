"""Per-job overhead, as a regression guard: the SQL statements one one-URL job costs, from authenticating
the submitting key to the job's terminal state and its after-terminal hooks (issue 14).

The job runs in this process through the real runtime (embedded broker and worker threads, the test's
database, the loopback page server), so Tortoise's query log can be counted; no reader polls the database
while it runs (the test waits on the job's own progress channel, then for the broker to drain).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from tests.pages import base_url
from tests.support import Backend

# One one-URL job; it was 28 here (about 37 with the HTTP reads) before issue 14. 15 now, the upsert of the
# stored object's reference row (stored_objects.touch, issue 12) included: key+account read, job, item,
# credits, ledger entry (one transaction); item+job read; job start, claim, slot (one transaction); item
# completion, images, touch, job counters and terminal state (one UPDATE ... RETURNING), slot back (one
# transaction); webhook endpoints. See the README.
MAX_STATEMENTS = 15


class QueryLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if not text.startswith(("Created connection", "Closed connection")):
            self.queries.append(text.split(": [", 1)[0][:200])


@pytest.fixture
async def runtime(backend: Backend) -> AsyncIterator[Any]:
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.runtime import open_runtime

    EXECUTOR_CACHE.clear()
    settings = backend.settings(redis_url=None, embedded_worker=True, worker_threads=2,
                                reconcile_interval_seconds=3600)
    async with open_runtime(settings, role="api") as rt:
        yield rt


@pytest.fixture
def query_log() -> AsyncIterator[QueryLog]:
    logger = logging.getLogger("tortoise.db_client")
    handler = QueryLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler  # type: ignore[misc]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


async def run_one_url_job(runtime: Any, headers: dict[str, str], url: str, log: QueryLog) -> list[str]:
    from imageextract.services import auth, progress
    from imageextract.services.submission import submit_job

    async with runtime.events.subscribe("job:*placeholder*"):
        pass  # pub/sub opened before counting
    log.queries.clear()
    ctx = runtime.context()
    ctx.principal = await auth.authenticate(authorization=headers["Authorization"], session_token=None)
    submitted = await submit_job(ctx, kind="url", raw_input=url)
    async with runtime.events.subscribe(progress.channel(submitted.job.id)) as sub:
        while True:
            message = await sub.get(timeout=30)
            if message.get("event") == "job" and message.get("status") in progress.TERMINAL:
                assert message["status"] == "done", message
                break
    for queue in list(runtime.broker.queues):
        await asyncio.to_thread(runtime.broker.join, queue, timeout=30_000)
    await asyncio.sleep(0.2)  # the actor's last statements (its slot) after the message is acked
    return list(log.queries)


async def test_one_url_job_statement_count(runtime: Any, query_log: QueryLog, pages: ThreadingHTTPServer) -> None:
    from imageextract.models import Account, Job, LedgerEntry
    from imageextract.services.keys import _issue
    from tests.factories import make_account

    acct = await make_account(plan="pro")
    # What an integration uses: a key of one project.
    issued = await _issue(account_id=acct["account_id"], kind="project", project_id=acct["project_id"],
                          user_id=None, label="integration")
    headers = {"Authorization": f"Bearer {issued.key}"}
    await run_one_url_job(runtime, headers, f"{base_url(pages)}/page/1", query_log)  # warm (and last_used)
    queries = await run_one_url_job(runtime, headers, f"{base_url(pages)}/page/2", query_log)
    listing = "\n".join(queries)
    assert len(queries) <= MAX_STATEMENTS, f"{len(queries)} statements for one one-URL job:\n{listing}"
    dashboard = await run_one_url_job(runtime, acct["headers"], f"{base_url(pages)}/page/3", query_log)
    # A dashboard key reads its membership and the default project in the same statement as the key; it adds
    # only (first use here) its last_used.
    assert len(dashboard) <= MAX_STATEMENTS + 1, "\n".join(dashboard)
    # The job still did everything it must: done, its images, one debit, and credits used.
    jobs = await Job.filter(account_id=acct["account_id"]).order_by("created_at")
    assert [(j.status, j.image_count, j.credits_used) for j in jobs] == [("done", n, 1) for n in (1, 2, 3)]
    debits = await LedgerEntry.filter(account_id=acct["account_id"], entry_type="job_debit").order_by("id")
    assert [(e.job_id, e.amount) for e in debits] == [(j.id, -1) for j in jobs]
    # The ledger still sums to the balance, and each entry's balance_after follows from the one before.
    entries = await LedgerEntry.filter(account_id=acct["account_id"]).order_by("id")
    account = await Account.get(id=acct["account_id"])
    assert sum(e.amount for e in entries) == account.credits == entries[-1].balance_after
    running = 0
    for e in entries:
        running += e.amount
        assert e.balance_after == running
