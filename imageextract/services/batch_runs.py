"""Running batches: feeding items to the workers fairly, live counts, webhooks, and the retention sweep.

Fairness: a batch's items stay `pending` until `pump` moves a window of them (the plan's
`url_worker_concurrency`) to `queued` and sends one message each. Each finished item pumps again. So a
10,000-item batch keeps at most a window of messages in the queue, and another account's job waits behind a
window, not behind the whole batch; the per-account slots (`Account.active_items`, taken with a conditional
UPDATE in pipeline.process_item) cap how many run at once across every worker process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from imageextract.context import Context
from imageextract.models import Batch, Image, Job, JobItem, RateCounter, StagedFile
from imageextract.services import progress
from imageextract.services.batch_results import delete_results
from imageextract.services.batches import TERMINAL_BATCH, BatchView, _view, get_batch
from imageextract.services.sql import Statement
from imageextract.services.staged_files import sweep_unused
from imageextract.services.unit_of_work import Message, send_messages

OPEN_JOB = ("pending", "queued", "processing")
# The next `free` pending items of a batch, from its `next_position`, moved to queued in one statement (each
# row re-checked as pending, so two pumps never queue an item twice). updated_at moves too: the reconciler
# takes a queued item untouched for ITEM_STUCK_SECONDS as lost.
_QUEUE_NEXT = Statement("""
    UPDATE "job_items" SET "status"='queued', "updated_at"=:now
    WHERE "status"='pending' AND "id" IN (
        SELECT "id" FROM "job_items" WHERE "job_id"=:job AND "status"='pending'
          AND "position">=(SELECT "next_position" FROM "batches" WHERE "id"=:job)
        ORDER BY "position" LIMIT :free)
    RETURNING "id", "position"
""")
_ADVANCE = Statement('UPDATE "batches" SET "next_position"=:last WHERE "id"=:job AND "next_position"<:last')


def _now() -> datetime:
    return datetime.now(UTC)


async def pump(runtime: Any, job_id: Any, *, job: Job | None = None, finished: bool = False) -> int:
    """Queue the next pending items of a batch, up to its window. Safe to call from anywhere, any number of
    times: each item moves pending -> queued by a conditional UPDATE, so only one caller sends its message.

    `finished`: the caller's item just ended, so exactly one place in the window is free (no count needed).
    `job` (already loaded by the caller) saves a read; its status may be stale, which only costs a no-op. The
    scan starts at the batch's `next_position`, so each call reads a window of rows, not the whole batch."""
    job = job or await Job.get_or_none(id=job_id)
    if job is None or job.type != "batch" or job.status in ("done", "failed", "cancelled"):
        return 0
    in_flight = -1
    if finished:
        free = 1
    else:
        state = await Batch.filter(id=job.id).values("window")
        if not state:
            return 0
        in_flight = await JobItem.filter(job_id=job.id, status__in=["queued", "processing"]).count()
        free = state[0]["window"] - in_flight
    if free <= 0:
        return 0
    rows = await _QUEUE_NEXT.rows(job=job.id, free=free, now=_now())
    if rows:
        last = max(int(r["position"]) for r in rows) + 1
        await _ADVANCE.execute(job=job.id, last=last)
    moved = [str(r["id"]) for r in sorted(rows, key=lambda r: int(r["position"]))]
    # Off the loop, retried, and in one go for the window (the sweep re-queues what is still lost).
    await send_messages(runtime, [Message("process_item", (item_id,)) for item_id in moved])
    if not rows and in_flight == 0:  # (only known when counted)
        from imageextract.services.pipeline import maybe_finalize

        await maybe_finalize(runtime, job.id)
    return len(moved)


async def follow_counts(ctx: Context, batch_id: str) -> AsyncIterator[BatchView]:
    """The batch's counts now, then at most one update per `batch_progress_interval_seconds` while items
    change, and always the final state; ends after it."""
    job, batch = await get_batch(ctx, batch_id)
    runtime = ctx.services
    interval = ctx.settings.batch_progress_interval_seconds
    async with runtime.events.subscribe(progress.channel(job.id)) as subscription:
        view = await _view(job, batch, ctx)
        yield view
        if view.status in TERMINAL_BATCH:
            return
        last_sent, dirty = time.monotonic(), False
        while True:
            wait = max(0.0, interval - (time.monotonic() - last_sent)) if dirty else 5.0
            try:
                message = await subscription.get(timeout=wait)
            except TimeoutError:
                message = None
            if message is not None:
                dirty = True
                ended = message.get("event") == "job" and message.get("status") in progress.TERMINAL
                if not ended and time.monotonic() - last_sent < interval:
                    continue
            job = await Job.get(id=job.id)
            batch = await Batch.get(id=batch.id)
            fresh = await _view(job, batch, ctx)
            if fresh.counts != view.counts or fresh.status != view.status:
                view = fresh
                yield view
            last_sent, dirty = time.monotonic(), False
            if view.status in TERMINAL_BATCH:
                return


# Webhooks ---------------------------------------------------------------------------------------------

_EVENT = {"completed": "batch.completed", "partially_failed": "batch.partially_failed",
          "failed": "batch.failed", "cancelled": "batch.cancelled"}


async def webhook_event(runtime: Any, job: Job) -> tuple[str, dict[str, Any]] | None:
    """The event a batch's end sends (batch.completed|partially_failed|failed|cancelled) and its payload."""
    batch = await Batch.get_or_none(id=job.id)
    if batch is None:
        return None
    ctx = runtime.context()
    view = await _view(job, batch, ctx)
    event_type = _EVENT.get(view.status)
    if event_type is None:
        return None
    base = runtime.settings.base_url
    return event_type, {
        "type": event_type,
        "created_at": _now().isoformat().replace("+00:00", "Z"),
        "data": {
            "batch_id": view.id, "project_id": job.project_id,  # type: ignore[attr-defined]
            "status": view.status, "total_items": view.total_items, "counts": view.counts,
            "credits_used": job.credits_used, "metadata": job.metadata,
            "status_url": f"{base}/api/v1/batches/{view.id}",
        },
    }


# Sweep ------------------------------------------------------------------------------------------------


async def expire_batch(runtime: Any, job_id: Any) -> bool:
    """Delete a batch's results (images and item result documents) and inputs with their bytes (bytes another
    job still uses stay)."""
    claimed = await Batch.filter(id=job_id, expired_at=None).update(expired_at=_now())
    if not claimed:
        return False
    storage = runtime.storage
    keys = set(await Image.filter(job_id=job_id).exclude(storage_key=None).values_list("storage_key", flat=True))
    await Image.filter(job_id=job_id).delete()
    for key in keys:
        if not await Image.filter(storage_key=key).exists():
            with contextlib.suppress(Exception):
                await storage.delete(key)
    for key in await StagedFile.filter(batch_id=job_id).values_list("storage_key", flat=True):
        with contextlib.suppress(Exception):
            await storage.delete(key)
    await StagedFile.filter(batch_id=job_id).delete()
    with contextlib.suppress(Exception):  # the item result documents (services/batch_results.py)
        await delete_results(storage, job_id)
    return True


async def expire_due(runtime: Any, *, now: datetime | None = None, limit: int = 50) -> int:
    """Expire batches that ended more than `batch_retention_hours` ago (results and inputs, with bytes)."""
    now = now or _now()
    cutoff = now - timedelta(hours=runtime.settings.batch_retention_hours)
    due = await Job.filter(type="batch", finished_at__lte=cutoff, batch__expired_at=None).order_by("finished_at") \
        .limit(limit) \
        .values_list("id", flat=True)
    return sum([int(await expire_batch(runtime, job_id)) for job_id in due])


async def sweep(runtime: Any, *, now: datetime | None = None) -> dict[str, int]:
    """One round: unused staged files past their window, batches past retention, and a pump for every open
    batch (a lost message only delays it). Any process may run it, any number at once."""

    staged = await sweep_unused(runtime, now=now)
    expired = await expire_due(runtime, now=now)
    # Per-minute submission counters are worth nothing once their minute is over.
    await RateCounter.filter(bucket__startswith="batches:", window_end__lt=(now or _now()) - timedelta(hours=1)).delete()
    pumped = 0
    for job_id in await Job.filter(type="batch", status__in=list(OPEN_JOB)).values_list("id", flat=True):
        pumped += await pump(runtime, job_id)
    return {"staged_swept": staged, "batches_expired": expired, "batch_items_pumped": pumped}
