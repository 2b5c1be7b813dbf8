"""The job pipeline: one message per item, idempotent claims, images stored once, refunds, one finalize.

Delivery is at least once, so every step is a conditional UPDATE on the state it expects:
- an item is claimed only from queued (or from processing whose lease has expired, after a crash);
- an item is completed only by the attempt that claimed it;
- a job is finalized only from a non-terminal status, so its terminal event and webhooks happen once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.models import Account, Image, Job, JobItem
from imageextract.services import ledger, progress
from imageextract.services.plans import GUEST_PLAN, PLANS

log = logging.getLogger("imageextract.pipeline")

SLOT_RETRY_MS = 300
# A source that failed for a reason that may pass (timeout, connection error, 408/425/429/5xx) is tried again
# after IMAGEEXTRACT_ITEM_RETRY_DELAYS; a 404, an SSRF refusal or an unreadable document is final at once.
_TRANSIENT_HTTP = re.compile(r"^HTTP (408|425|429|5\d\d)\b")
_TRANSIENT_NETWORK = re.compile(r"(ConnectError|ConnectTimeout|ReadError|ReadTimeout|RemoteProtocolError|"
                                r"WriteError|PoolTimeout|DNS lookup for \S+ (failed|timed out))")


def is_transient(item: JobItem, code: str | None, message: str | None) -> bool:
    if item.kind != "url":
        return False  # parsing a document is deterministic: the same bytes fail the same way
    if code == "timeout":
        return True
    return code == "fetch_failed" and bool(_TRANSIENT_HTTP.match(message or "") or
                                          _TRANSIENT_NETWORK.search(message or ""))


def _now() -> datetime:
    return datetime.now(UTC)


async def enqueue_items(ctx: Context, item_ids: list[str]) -> None:
    """After commit: one message per item. A failed enqueue is recovered by the reconciler."""
    runtime = ctx.services
    for item_id in item_ids:
        try:
            runtime.enqueue("process_item", item_id)
        except Exception:
            log.exception("enqueue failed for item %s; the reconciler will pick it up", item_id)


async def _take_slot(account_id: str | None) -> bool:
    if account_id is None:
        return True
    account = await Account.get_or_none(id=account_id)
    if account is None:
        return False
    limit = (PLANS.get(account.plan) or GUEST_PLAN).url_worker_concurrency
    taken = await Account.filter(id=account_id, active_items__lt=limit).update(active_items=F("active_items") + 1)
    return bool(taken)


async def _give_slot(account_id: str | None) -> None:
    if account_id is not None:
        await Account.filter(id=account_id, active_items__gt=0).update(active_items=F("active_items") - 1)


async def process_item(runtime: Any, item_id: str) -> str:
    """Extract one source. Returns what happened (for logs and tests): done, failed, skipped, deferred."""
    item = await JobItem.get_or_none(id=item_id).select_related("job")
    if item is None or item.status in progress.TERMINAL:
        return "skipped"
    job: Job = item.job
    if job.status in progress.TERMINAL:
        return "skipped"
    if not await _take_slot(job.account_id):  # type: ignore[attr-defined]
        runtime.enqueue("process_item", item_id, delay=SLOT_RETRY_MS)
        return "deferred"
    outcome = "skipped"
    try:
        outcome = await _process_claimed(runtime, item_id, job)
        return outcome
    finally:
        await _give_slot(job.account_id)  # type: ignore[attr-defined]
        if job.type == "batch" and outcome in ("done", "failed"):  # a batch is fed a window at a time:
            from imageextract.services.batch_runs import pump  # this item's place goes to the next one

            try:
                await pump(runtime, job.id, job=job, finished=True)
            except Exception:
                log.exception("pump failed for batch %s; the sweep pumps it again", job.id)


async def _process_claimed(runtime: Any, item_id: str, job: Job) -> str:
    settings = runtime.settings
    now = _now()
    await Job.filter(id=job.id, status="queued").update(status="processing", started_at=now)
    if await Job.filter(id=job.id, status="processing").count() == 0:
        return "skipped"  # cancelled (or finished) meanwhile
    claimable = Q(status__in=["queued", "pending"]) | Q(status="processing", lease_expires_at__lt=now)
    claimed = await JobItem.filter(Q(id=item_id) & claimable).update(
        status="processing", attempts=F("attempts") + 1, started_at=now, updated_at=now,
        lease_expires_at=now + timedelta(seconds=settings.item_stuck_seconds),
    )
    if not claimed:
        return "skipped"
    item = await JobItem.get(id=item_id)
    attempt = item.attempts
    await progress.publish(runtime, job.id, progress.item_event(job.id, item))
    await progress.publish_job(runtime, job.id)

    started = time.monotonic()
    heartbeat = asyncio.create_task(_renew_lease(item_id, attempt, settings.item_stuck_seconds))
    try:
        result = await _extract(runtime, item)
        stored = await _store_images(runtime, result.images) if result.status == "done" else []
    finally:
        heartbeat.cancel()
    duration_ms = int((time.monotonic() - started) * 1000)
    return await _complete(runtime, job, item, attempt, result, stored, duration_ms)


async def _renew_lease(item_id: str, attempt: int, stuck_seconds: float) -> None:
    """While this process works on the item, keep its lease alive; a dead process stops renewing, so the
    reconciler can tell a crashed attempt from a long one."""
    every = max(0.5, stuck_seconds / 3)
    while True:
        await asyncio.sleep(every)
        await JobItem.filter(id=item_id, status="processing", attempts=attempt).update(
            lease_expires_at=_now() + timedelta(seconds=stuck_seconds))


async def _extract(runtime: Any, item: JobItem) -> Any:
    from imageextract.extract import engine
    from imageextract.extract.types import SourceResult

    options = runtime.settings.extract_options()
    if item.kind == "url":
        return await engine.extract_url(item.source_url or item.source_label, options)
    from imageextract.services.staged_files import arrival_problem
    from imageextract.storage import StorageNotFound

    try:
        data = await runtime.storage.get(item.upload_key)
    except Exception as exc:
        log.exception("upload %s missing for item %s", item.upload_key, item.id)
        return SourceResult(source=item.source_label, status="failed",
                            error_code="upload_missing" if isinstance(exc, StorageNotFound) else "extraction_failed",
                            error_message=f"uploaded file is not available: {exc}")
    problem = arrival_problem(data, item.upload_size)  # a presigned upload is checked only now
    if problem is not None:
        return SourceResult(source=item.source_label, status="failed", error_code=problem[0], error_message=problem[1])
    return await engine.extract_document_bytes(data, options, filename=item.source_label)


_EXT = {"jpeg": "jpg", "svg": "svg", "png": "png", "gif": "gif", "webp": "webp", "avif": "avif", "bmp": "bmp",
        "tiff": "tif", "ico": "ico", "emf": "emf", "wmf": "wmf"}


async def _store_images(runtime: Any, images: list[Any]) -> list[tuple[Any, str | None]]:
    from imageextract.storage import content_key

    storage = runtime.storage
    stored: list[tuple[Any, str | None]] = []
    for img in images:
        key: str | None = None
        if img.data:
            key = content_key(img.data, namespace="images", ext=_EXT.get((img.format or "").lower()))
            if not await storage.exists(key):
                await storage.put(key, img.data, content_type=img.media_type)
        stored.append((img, key))
    return stored


def _image_row(job: Job, item: JobItem, position: int, img: Any, key: str | None, storage: Any) -> Image:
    return Image(
        job_id=job.id, item_id=item.id, account_id_ref=job.account_id, position=position,  # type: ignore[attr-defined]
        filename=(img.filename or f"image-{position + 1}")[:255], source_url=img.source_url,
        source_kind=img.source_kind, storage_key=key, content_hash=img.content_hash, width=img.width,
        height=img.height, aspect_ratio=img.aspect_ratio, format=img.format, file_size=img.file_size,
        color_space=img.color_space, has_alpha=img.has_alpha, alt_text=img.alt_text, title=img.title,
        aria_label=img.aria_label, is_lazy_loaded=bool(img.is_lazy_loaded), document_page=img.document_page,
        document_slide=img.document_slide, document_asset_hash=img.document_asset_hash,
        document_occurrence_count=img.document_occurrence_count, provenance=img.construct, page_url=img.page_url,
        variants=img.variants or None, sheet=img.sheet, anchor_cell=img.anchor_cell, media_type=img.media_type,
        error=img.error,
    )


async def _complete(runtime: Any, job: Job, item: JobItem, attempt: int, result: Any,
                    stored: list[tuple[Any, str | None]], duration_ms: int) -> str:
    ok = result.status == "done"
    kept = sum(1 for _, key in stored if key) if ok else 0  # downloadable images
    lost = len(stored) - kept if ok else 0  # found, but their bytes could not be fetched
    now = _now()
    delays = runtime.settings.item_retry_delays
    if not ok and attempt <= len(delays) and is_transient(item, result.error_code, result.error_message):
        return await _retry_later(runtime, job, item, attempt, result, duration_ms, delays[attempt - 1])
    async with in_transaction() as conn:
        updated = await JobItem.filter(id=item.id, status="processing", attempts=attempt).using_db(conn).update(
            status="done" if ok else "failed", image_count=kept, failed_image_count=lost, duration_ms=duration_ms,
            error_code=None if ok else (result.error_code or "extraction_failed"),
            error_message=None if ok else (result.error_message or "extraction failed"),
            finished_at=now, updated_at=now, lease_expires_at=None, refunded=not ok and job.account_id is not None,  # type: ignore[attr-defined]
        )
        if not updated:
            return "skipped"  # another attempt took over after our lease expired; its result stands
        await Image.filter(item_id=item.id).using_db(conn).delete()
        if ok and stored:
            rows = [_image_row(job, item, i, img, key, runtime.storage) for i, (img, key) in enumerate(stored)]
            await Image.bulk_create(rows, using_db=conn)
        await Job.filter(id=job.id).using_db(conn).update(
            completed_items=F("completed_items") + 1, image_count=F("image_count") + kept,
            failed_image_count=F("failed_image_count") + lost,
        )
        if not ok and job.account_id is not None:  # type: ignore[attr-defined]
            await ledger.credit(account_id=job.account_id, amount=1, entry_type="job_refund", job_id=job.id,  # type: ignore[attr-defined]
                                item_id=item.id, unique_ref=f"refund:item:{item.id}",
                                note=f"refund: {result.error_code}", conn=conn)
    fresh = await JobItem.get(id=item.id)
    await progress.publish(runtime, job.id, progress.item_event(job.id, fresh))
    await maybe_finalize(runtime, job.id)
    return "done" if ok else "failed"


async def _retry_later(runtime: Any, job: Job, item: JobItem, attempt: int, result: Any, duration_ms: int,
                       delay: float) -> str:
    """Give the item back to the queue and schedule attempt `attempt + 1` (the credit stays taken)."""
    released = await JobItem.filter(id=item.id, status="processing", attempts=attempt).update(
        status="queued", lease_expires_at=None, updated_at=_now(), duration_ms=duration_ms, error_code=result.error_code,
        error_message=f"attempt {attempt} failed, retrying: {result.error_message or result.error_code}"[:2000],
    )
    if not released:
        return "skipped"
    fresh = await JobItem.get(id=item.id)
    await progress.publish(runtime, job.id, progress.item_event(job.id, fresh))
    jittered = delay * random.uniform(1.0, 1.2)
    runtime.enqueue("process_item", str(item.id), delay=int(jittered * 1000) or None)
    log.info("item %s: %s on attempt %d, retrying in %.1fs", item.id, result.error_code, attempt, jittered)
    return "retrying"


async def maybe_finalize(runtime: Any, job_id: Any) -> bool:
    """Give the job its terminal status once every item is terminal. Exactly one caller wins."""
    open_batch = await Job.filter(id=job_id, type="batch", completed_items__lt=F("total_items")).exists()
    if open_batch:  # a batch counts its terminal items exactly: skip counting up to 10,000 rows per item
        await progress.publish_job(runtime, job_id)
        return False
    rows = await JobItem.filter(job_id=job_id).annotate(n=Count("id")).group_by("status").values("status", "n")
    counts = {row["status"]: row["n"] for row in rows}  # one query for every status
    if any(n for s, n in counts.items() if s not in progress.TERMINAL):
        await progress.publish_job(runtime, job_id)
        return False
    done, failed, cancelled = (counts.get(s, 0) for s in ("done", "failed", "cancelled"))
    if done == 0 and failed == 0:
        status = "cancelled"
    elif done == 0:
        status = "failed"
    else:
        status = "done"
    first_error = (await JobItem.filter(job_id=job_id, status="failed").order_by("position").first()
                   if status == "failed" else None)
    updated = await Job.filter(id=job_id, status__in=["pending", "queued", "processing"]).update(
        status=status, partial=done > 0 and (failed + cancelled) > 0, credits_used=done,
        finished_at=_now(),
        error_code=first_error.error_code if status == "failed" and first_error else None,
        error_message=first_error.error_message if status == "failed" and first_error else None,
    )
    if not updated:
        return False
    await progress.publish_job(runtime, job_id)
    await _after_terminal(runtime, job_id)
    return True


async def _after_terminal(runtime: Any, job_id: Any) -> None:
    """Hooks that run once per job when it reaches a terminal status (webhooks)."""
    hooks = getattr(runtime, "terminal_hooks", [])
    for hook in hooks:
        try:
            await hook(runtime, job_id)
        except Exception:
            log.exception("terminal hook failed for job %s", job_id)


async def reconcile(runtime: Any) -> dict[str, int]:
    """Recover from crashes and lost messages; safe to run anywhere, any number of times."""
    settings = runtime.settings
    now = _now()
    stuck_before = now - timedelta(seconds=settings.item_stuck_seconds)
    requeued = 0
    expired = await JobItem.filter(status="processing", lease_expires_at__lt=now).values_list("id", flat=True)
    stale = await JobItem.filter(status__in=["queued", "pending"], updated_at__lt=stuck_before,
                                 job__status__in=["queued", "processing"]) \
        .exclude(status="pending", job__type="batch").values_list("id", flat=True)  # batches: pumped
    if stale:
        await JobItem.filter(id__in=list(stale)).update(updated_at=now)  # not again next round
    for item_id in [*expired, *stale]:
        runtime.enqueue("process_item", str(item_id))
        requeued += 1
    finalized = 0
    for job_id in await Job.filter(status__in=["queued", "processing"], updated_at__lt=now - timedelta(seconds=5)) \
            .values_list("id", flat=True):
        if await JobItem.filter(job_id=job_id, status__not_in=list(progress.TERMINAL)).count() == 0:
            finalized += int(await maybe_finalize(runtime, job_id))
    recounted = await _recount_slots(now)
    from imageextract.services.webhook_delivery import resend_due

    resent = await resend_due(runtime)
    from imageextract.services.batch_runs import sweep

    swept = await sweep(runtime)
    return {"requeued": requeued, "finalized": finalized, "slots_recounted": recounted, "webhooks_resent": resent,
            **swept}


async def _recount_slots(now: datetime) -> int:
    fixed = 0
    for account in await Account.filter(active_items__gt=0):
        live = await JobItem.filter(status="processing", lease_expires_at__gte=now,
                                    job__account_id=account.id).count()
        if live < account.active_items:
            fixed += await Account.filter(id=account.id, active_items=account.active_items).update(active_items=live)
    return fixed
