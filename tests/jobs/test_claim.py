"""An item's claim: the job's start, the item's claim and the account's slot are one transaction.

The item is read first (one statement, `pipeline._read`). A message for an account at its concurrency limit
changes nothing (the item stays queued, its job too). Another transaction can commit between that read and
the updates; the updates' own conditions refuse what moved on, tested here with a row read before the
change: a slot taken meanwhile rolls the job's start and the claim back, and an item of a job cancelled
meanwhile is skipped without taking a slot. The runtime is real (the test's database,
the embedded broker without worker threads, so nothing else processes the job).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import Backend


@pytest.fixture
async def runtime(backend: Backend) -> AsyncIterator[Any]:
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.runtime import open_runtime

    EXECUTOR_CACHE.clear()
    settings = backend.settings(redis_url=None, embedded_worker=False, reconcile_interval_seconds=3600)
    async with open_runtime(settings, role="api") as rt:
        yield rt


async def _queued_job(runtime: Any, plan: str) -> tuple[Any, str, str]:
    from imageextract.services import auth
    from imageextract.services.submission import submit_job
    from tests.factories import make_account

    acct = await make_account(plan=plan)
    ctx = runtime.context()
    ctx.principal = await auth.authenticate(authorization=acct["headers"]["Authorization"], session_token=None)
    # Never fetched: the claim is all this test runs.
    submitted = await submit_job(ctx, kind="url", raw_input="http://127.0.0.1:9/never-fetched")
    return submitted.job, submitted.item_ids[0], acct["account_id"]


async def _row(item_id: str) -> dict[str, Any]:
    from imageextract.services import pipeline

    rows = await pipeline._ITEM_AND_JOB.rows(id=item_id)
    assert len(rows) == 1
    return rows[0]


async def _state(job_id: Any, item_id: str, account_id: str) -> tuple[str, str, int, int, Any]:
    from imageextract.models import Account, Job, JobItem

    job, item, account = await Job.get(id=job_id), await JobItem.get(id=item_id), await Account.get(id=account_id)
    return job.status, item.status, item.attempts, account.active_items, job.started_at


async def test_an_account_at_its_limit_defers_and_changes_nothing(runtime: Any) -> None:
    from imageextract.models import Account
    from imageextract.services import pipeline
    from imageextract.services.plans import PLANS

    job, item_id, account_id = await _queued_job(runtime, "pro")
    limit = PLANS["pro"].url_worker_concurrency
    await Account.filter(id=account_id).update(active_items=limit)
    assert await pipeline.process_item(runtime, item_id) == "deferred"
    assert await _state(job.id, item_id, account_id) == ("queued", "queued", 0, limit, None)


async def test_a_slot_taken_meanwhile_rolls_back_the_start_and_the_claim(runtime: Any) -> None:
    from imageextract.models import Account
    from imageextract.services import pipeline
    from imageextract.services.plans import PLANS

    job, item_id, account_id = await _queued_job(runtime, "pro")
    row = await _row(item_id)  # read while a slot is free ...
    assert row["a__active_items"] == 0
    limit = PLANS["pro"].url_worker_concurrency
    await Account.filter(id=account_id).update(active_items=limit)  # ... then other workers take them all
    assert await pipeline._claim(runtime, item_id, row) == ("deferred", None)
    # Neither the job's start nor the claim was kept: the next attempt finds both as they were.
    assert await _state(job.id, item_id, account_id) == ("queued", "queued", 0, limit, None)

    await Account.filter(id=account_id).update(active_items=limit - 1)
    claim, item = await pipeline._claim(runtime, item_id)
    assert claim == "started" and item is not None
    assert (item.status, item.attempts, item.job.status) == ("processing", 1, "processing")
    status, item_status, attempts, active, started_at = await _state(job.id, item_id, account_id)
    assert (status, item_status, attempts, active) == ("processing", "processing", 1, limit)
    assert started_at is not None
    # The same message delivered again (at least once), with a slot free, finds the item claimed: skipped,
    # and the free slot is not taken.
    await Account.filter(id=account_id).update(active_items=0)
    assert await pipeline._claim(runtime, item_id) == ("skipped", None)
    assert (await _state(job.id, item_id, account_id))[2:4] == (1, 0)
    # ... and so does one that read the item while it was still queued (attempts 0): the claim's condition
    # on the attempt refuses it.
    assert await pipeline._claim(runtime, item_id, row) == ("skipped", None)
    assert (await _state(job.id, item_id, account_id))[2:4] == (1, 0)


async def test_an_item_of_a_cancelled_job_is_skipped_without_a_slot(runtime: Any) -> None:
    from imageextract.models import Job
    from imageextract.services import pipeline

    job, item_id, account_id = await _queued_job(runtime, "pro")
    row = await _row(item_id)  # read while the job is queued ...
    await Job.filter(id=job.id).update(status="cancelled")  # ... cancelled before the claim
    assert await pipeline._claim(runtime, item_id, row) == ("skipped", None)
    assert await _state(job.id, item_id, account_id) == ("cancelled", "queued", 0, 0, None)
    # read after the cancel: refused by what the read sees
    assert await pipeline._claim(runtime, item_id) == ("skipped", None)
    assert await _state(job.id, item_id, account_id) == ("cancelled", "queued", 0, 0, None)


# The fetch starts once the item's read finds it claimable, beside the claim's commit (pipeline.process_item).


async def _queued_url_job(runtime: Any, plan: str, url: str) -> tuple[Any, str, str]:
    from imageextract.services import auth
    from imageextract.services.submission import submit_job
    from tests.factories import make_account

    acct = await make_account(plan=plan)
    ctx = runtime.context()
    ctx.principal = await auth.authenticate(authorization=acct["headers"]["Authorization"], session_token=None)
    submitted = await submit_job(ctx, kind="url", raw_input=url)
    return submitted.job, submitted.item_ids[0], acct["account_id"]


async def test_a_message_deferred_for_want_of_a_slot_sends_the_source_no_request(runtime: Any) -> None:
    from imageextract.models import Account
    from imageextract.services import pipeline
    from imageextract.services.plans import PLANS
    from tests.pages import base_url, serve_pages

    with serve_pages() as server:
        job, item_id, account_id = await _queued_url_job(runtime, "pro", f"{base_url(server)}/page/2")
        limit = PLANS["pro"].url_worker_concurrency
        await Account.filter(id=account_id).update(active_items=limit)
        assert await pipeline.process_item(runtime, item_id) == "deferred"
        assert server.hits == []  # type: ignore[attr-defined]
        assert await _state(job.id, item_id, account_id) == ("queued", "queued", 0, limit, None)


async def test_a_message_delivered_twice_at_once_extracts_the_source_once(runtime: Any) -> None:
    """At least once: the same message twice, both read the item queued and both start fetching; one claim
    commits and the other is refused by the claim's own condition, its fetch cancelled and nothing of it
    kept: one attempt, one set of images, the slot given back, no refund."""
    from imageextract.models import Image, JobItem, LedgerEntry
    from imageextract.services import pipeline
    from tests.pages import base_url, serve_pages

    with serve_pages() as server:
        job, item_id, account_id = await _queued_url_job(runtime, "pro", f"{base_url(server)}/page/3")
        outcomes = await asyncio.gather(pipeline.process_item(runtime, item_id),
                                        pipeline.process_item(runtime, item_id))
        assert sorted(outcomes) == ["done", "skipped"]
        item = await JobItem.get(id=item_id)
        assert (item.status, item.attempts, item.image_count) == ("done", 1, 3)
        images = await Image.filter(item_id=item_id).order_by("position").values_list("position", "alt_text")
        assert images == [(0, "image 0"), (1, "image 1"), (2, "image 2")]
        assert (await _state(job.id, item_id, account_id))[:4] == ("done", "done", 1, 0)
        assert not await LedgerEntry.filter(job_id=job.id, entry_type="job_refund").exists()
        assert server.hits.count("/page/3") in (1, 2)  # type: ignore[attr-defined]


# The completion: a subscriber in this process hears of the terminal state before the terminal hooks run.


async def test_a_live_stream_hears_the_terminal_event_before_the_terminal_hooks_run(runtime: Any) -> None:
    """The SSE route and GraphQL subscriptions follow a job with `live.follow_batches`; the completing item
    publishes its last event and the job's terminal event, then runs the terminal hooks (webhooks), which no
    client waits for. The stream, reading with the SSE route's heartbeat, has its closing batch by the time
    the first hook runs."""
    from imageextract.services import live, pipeline
    from tests.pages import base_url, serve_pages

    with serve_pages() as server:
        job, item_id, _ = await _queued_url_job(runtime, "pro", f"{base_url(server)}/page/2")
        heard: list[list[tuple[Any, Any]]] = []
        ready = asyncio.Event()

        async def follow() -> None:
            async for batch in live.follow_batches(runtime, job.id, heartbeat=15.0):
                assert batch is not None
                heard.append([(e.get("event"), e.get("status") or e["item"]["status"]) for e in batch])
                ready.set()

        seen_by_hook: list[list[list[tuple[Any, Any]]]] = []

        async def hook(_runtime: Any, finished: Any) -> None:
            seen_by_hook.append(list(heard))

        runtime.terminal_hooks.insert(0, hook)
        follower = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(ready.wait(), 10)  # subscribed, with the opening state
            assert await pipeline.process_item(runtime, item_id) == "done"
            await asyncio.wait_for(follower, 10)
        finally:
            runtime.terminal_hooks.remove(hook)
            follower.cancel()
        assert heard[-1] == [("item", "done"), ("job", "done")]
        assert seen_by_hook == [heard], "the first hook ran before the stream had the terminal event"
