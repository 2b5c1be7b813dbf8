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
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F
from tortoise.functions import Count

from imageextract.extract import engine
from imageextract.models import Account, Image, Job, JobItem, Project
from imageextract.services import document_images, ledger, progress, stored_objects
from imageextract.services.batch_runs import pump, sweep
from imageextract.services.job_views import parse_uuid
from imageextract.services.plans import GUEST_PLAN, PLANS
from imageextract.services.sql import (
    Insert,
    Refused,
    Statement,
    Step,
    attach,
    columns,
    load,
    refresh,
    returning,
    transaction,
)
from imageextract.services.unit_of_work import Message, send_messages, unit_of_work
from imageextract.services.webhook_delivery import resend_due

log = logging.getLogger("imageextract.pipeline")

SLOT_RETRY_MS = 300
# A source that failed for a reason that may pass (timeout, connection error, 408/425/429/5xx) is tried again
# after IMAGEEXTRACT_ITEM_RETRY_DELAYS; a 404, an SSRF refusal, an unknown host or an unreadable document is
# final at once. The engine decides which is which from the exception type (SourceResult.transient).


def is_transient(item: JobItem, result: Any) -> bool:
    if item.kind != "url":
        return False  # parsing a document is deterministic: the same bytes fail the same way
    return result.status == "failed" and bool(getattr(result, "transient", False))


def _now() -> datetime:
    return datetime.now(UTC)


# The statements every item runs, written once (services/sql.py: Tortoise rebuilt each one's SQL per call).
_TAKE_SLOT = Statement('UPDATE "accounts" SET "active_items"="active_items"+1 WHERE "id"=:id AND "active_items"<:limit')
_GIVE_SLOT = Statement('UPDATE "accounts" SET "active_items"="active_items"-1 WHERE "id"=:id AND "active_items">0')
# The item, its job, the job's account (its plan: the slot) and project (webhooks), in one read.
_ITEM_AND_JOB = Statement(lambda: f"""
    SELECT {columns(JobItem, "i")}, {columns(Job, "j", "j__")}, {columns(Account, "a", "a__")},
           {columns(Project, "p", "p__")}
    FROM "job_items" i JOIN "jobs" j ON j."id"=i."job_id"
    LEFT JOIN "accounts" a ON a."id"=j."account_id" LEFT JOIN "projects" p ON p."id"=j."project_id"
    WHERE i."id"=:id""", point=True)
_START_JOB = Statement('UPDATE "jobs" SET "status"=\'processing\', "started_at"=:now WHERE "id"=:id AND "status"=\'queued\'')
_JOB_RUNNING = Statement('SELECT 1 AS "running" FROM "jobs" WHERE "id"=:id AND "status"=\'processing\'')
# Claimed only from the state read before (attempts included), so the attempt number is known.
_CLAIM = Statement("""
    UPDATE "job_items" SET "status"='processing', "attempts"="attempts"+1, "started_at"=:now, "updated_at"=:now,
           "lease_expires_at"=:lease
    WHERE "id"=:id AND "attempts"=:attempts
      AND ("status" IN ('queued', 'pending') OR ("status"='processing' AND "lease_expires_at"<:now))""")
# Only the attempt that claimed the item completes it.
_COMPLETE = Statement("""
    UPDATE "job_items" SET "status"=:status, "image_count"=:image_count, "failed_image_count"=:failed_image_count,
           "duration_ms"=:duration_ms, "error_code"=:error_code, "error_message"=:error_message,
           "finished_at"=:finished_at, "lease_expires_at"=NULL, "updated_at"=:updated_at, "warnings"=:warnings,
           "refunded"=:refunded
    WHERE "id"=:id AND "status"='processing' AND "attempts"=:attempt""")
_COUNT_ITEM = Statement(lambda: f"""
    UPDATE "jobs" SET "completed_items"="completed_items"+1, "image_count"="image_count"+:kept,
           "failed_image_count"="failed_image_count"+:lost
    WHERE "id"=:id RETURNING {returning(Job)}""")
# A job of one source is finished by this very item: its terminal state is set with the counters.
_COUNT_LAST_ITEM = Statement(lambda: f"""
    UPDATE "jobs" SET "completed_items"="completed_items"+1, "image_count"="image_count"+:kept,
           "failed_image_count"="failed_image_count"+:lost, "status"=:status,
           "partial"=:partial, "credits_used"=:credits_used, "finished_at"=:finished_at, "error_code"=:error_code,
           "error_message"=:error_message
    WHERE "id"=:id AND "status" IN ('pending', 'queued', 'processing') RETURNING {returning(Job)}""")


async def _give_slot(account: Account | None) -> None:
    if account is not None:
        await _GIVE_SLOT.execute(id=account.id)


def _loaded(row: dict[str, Any]) -> JobItem:
    """The item of an `_ITEM_AND_JOB` row, its job attached, and the job's account and project."""
    item, job = load(JobItem, row), load(Job, row, "j__")
    assert item is not None and job is not None
    attach(job, "account", load(Account, row, "a__"))
    attach(job, "project", load(Project, row, "p__"))
    attach(item, "job", job)
    return item


def _refusal(rows: list[dict[str, Any]]) -> str | None:
    """On the item's row as read before its claim: `skipped` when the item or its job moved on, `deferred`
    when the account has no free slot (so such a message changes nothing); None when it can be claimed."""
    if not rows or rows[0]["status"] in progress.TERMINAL or rows[0]["j__status"] in progress.TERMINAL:
        return "skipped"
    row = rows[0]
    if row["a__id"] is not None and row["a__active_items"] >= _plan_limit(row["a__plan"]):
        return "deferred"
    if row["j__status"] not in ("queued", "processing"):
        return "skipped"
    return None


async def _read(item_id: str) -> tuple[str | None, dict[str, Any] | None]:
    """The item with its job, account and project (one statement, no transaction), or why it is refused."""
    rows = await _ITEM_AND_JOB.rows(id=item_id)
    refusal = _refusal(rows)
    return refusal, (rows[0] if refusal is None else None)


def _plan_limit(plan: str) -> int:
    return (PLANS.get(plan) or GUEST_PLAN).url_worker_concurrency


async def process_item(runtime: Any, item_id: str) -> str:
    """Extract one source. Returns what happened (for logs and tests): done, failed, skipped, deferred.

    The item is read first, alone (no transaction, no commit). When that read finds it claimable, a URL
    source's fetch starts at once, while the claim's transaction commits beside it: the claim's own
    conditions still decide (what moved on since the read is refused), and a refused claim cancels the
    fetch before anything of it is kept. A refusal by the read itself fetches nothing, so a message
    deferred for want of a slot costs the source no request."""
    if parse_uuid(item_id) is None:
        return "skipped"
    refusal, row = await _read(item_id)
    if row is None:
        return await _refused(runtime, item_id, refusal or "skipped")
    early = _Early.start(runtime, row)
    try:
        claim, item = await _claim(runtime, item_id, row)
    except BaseException:
        if early is not None:
            early.drop()
        raise
    if item is None:
        if early is not None:
            early.drop()  # the claim was refused: nothing of the fetch is kept
        return await _refused(runtime, item_id, claim)
    job: Job = item.job
    account: Account | None = job.account if job.account_id else None  # type: ignore[attr-defined]
    slot = _Slot(account)
    outcome = "skipped"
    try:
        outcome = await _process_claimed(runtime, item, job, slot, started_job=claim == "started", early=early)
        return outcome
    finally:
        if early is not None:
            early.drop()  # a no-op unless this attempt failed before its extraction ended
        if not slot.returned:
            await _give_slot(account)
        if job.type == "batch" and outcome in ("done", "failed"):  # a batch is fed a window at a time:
            try:
                await pump(runtime, job.id, job=job, finished=True)
            except Exception:
                log.exception("pump failed for batch %s; the sweep pumps it again", job.id)


async def _refused(runtime: Any, item_id: str, outcome: str) -> str:
    if outcome == "deferred":  # no free slot: the same message again a little later (nothing to commit)
        await send_messages(runtime, [Message("process_item", (item_id,), SLOT_RETRY_MS)])
    return outcome


class _Early:
    """A URL source's extraction, started as soon as the item's read found it claimable (before the claim
    commits). Its result is used only once the claim is kept; otherwise it is cancelled. A document's
    extraction stores images as it finds them, so it starts only after the claim."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.started = time.monotonic()

    @classmethod
    def start(cls, runtime: Any, row: dict[str, Any]) -> _Early | None:
        if row["kind"] != "url":
            return None
        source = row["source_url"] or row["source_label"]
        options = runtime.settings.extract_options()
        return cls(asyncio.get_running_loop().create_task(engine.extract_url(source, options)))

    async def result(self) -> Any:
        return await self.task

    def drop(self) -> None:
        """Cancel the extraction if it still runs; else take its outcome, so an error is not reported as
        never retrieved."""
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            self.task.exception()


class _Slot:
    """The account's slot an attempt holds: given back in the completing transaction, else when it ends."""

    def __init__(self, account: Account | None) -> None:
        self.account = account
        self.returned = account is None


async def _claim(runtime: Any, item_id: str, row: dict[str, Any] | None = None) -> tuple[str, JobItem | None]:
    """In one transaction: the job's start, the item's claim and the account's slot (per-account concurrency).
    Answers `deferred` (no free slot), `skipped` (the item or job moved on: nothing is kept), `started`
    (claimed, and this attempt started the job) or `claimed`, with the claimed item (else None).
    `row`: the item as `_read` gave it, found claimable; without it the item is read here first. Another
    transaction may commit between that read and these updates: their own conditions refuse what moved on.
    Rows are locked job, then item, then account, the order cancellation takes them in, so the two cannot
    deadlock on Postgres (a completion locks no job that is still queued)."""
    if row is None:
        refusal, row = await _read(item_id)
        if row is None:
            return refusal or "skipped", None
    known = row
    now = _now()
    lease = now + timedelta(seconds=runtime.settings.item_stuck_seconds)
    steps = [  # the job's start, when it was read queued: started here, or by another item's claim meanwhile
        Step(_START_JOB, {"id": known["j__id"], "now": now}, when=lambda done: known["j__status"] == "queued"),
        Step(_JOB_RUNNING, {"id": known["j__id"]}, fetch=True, required="skipped",
             when=lambda done: known["j__status"] == "queued" and not done[-1]),
        Step(_CLAIM, {"id": item_id, "attempts": known["attempts"], "now": now, "lease": lease}, required="skipped"),
        # taken meanwhile: the claim and the start go back with the rollback
        Step(_TAKE_SLOT, {"id": known["a__id"], "limit": _plan_limit(known["a__plan"])},
             required="deferred", when=lambda done: known["a__id"] is not None),
    ]
    try:
        results = await transaction(steps)
    except Refused as refused:
        return refused.outcome, None
    item = _loaded(known)
    job: Job = item.job
    started = job.status == "queued" and bool(results[0])
    item.status, item.attempts, item.started_at, item.lease_expires_at = "processing", item.attempts + 1, now, lease
    if started:
        job.status, job.started_at = "processing", now
    return ("started" if started else "claimed"), item


async def _process_claimed(runtime: Any, item: JobItem, job: Job, slot: _Slot, *, started_job: bool,
                           early: _Early | None = None) -> str:
    settings = runtime.settings
    attempt = item.attempts
    started = early.started if early is not None else time.monotonic()
    heartbeat = asyncio.create_task(_renew_lease(str(item.id), attempt, settings.item_stuck_seconds))
    try:
        await progress.publish(runtime, job.id, progress.item_event(job.id, item))
        if started_job:
            await progress.publish(runtime, job.id, progress.job_state(job))
        result = await (early.result() if early is not None else _extract_document(runtime, item))
        stored = await _store_images(runtime, result)
    finally:
        heartbeat.cancel()
    duration_ms = int((time.monotonic() - started) * 1000)
    outcome = await _complete(runtime, job, item, attempt, result, stored, duration_ms, slot)
    if outcome == "skipped" and stored:  # our result was dropped (job deleted meanwhile): free unreferenced bytes
        await stored_objects.release(runtime.storage, [key for _, key in stored])
    return outcome


async def _renew_lease(item_id: str, attempt: int, stuck_seconds: float) -> None:
    """While this process works on the item, keep its lease alive; a dead process stops renewing, so the
    reconciler can tell a crashed attempt from a long one."""
    every = max(0.5, stuck_seconds / 3)
    while True:
        await asyncio.sleep(every)
        await JobItem.filter(id=item_id, status="processing", attempts=attempt).update(
            lease_expires_at=_now() + timedelta(seconds=stuck_seconds))


async def _extract_document(runtime: Any, item: JobItem) -> Any:
    """A document's images, their bytes stored as they are found (a URL source's extraction is `_Early`)."""
    return await document_images.extract(runtime, item, runtime.settings.extract_options())


async def _store_images(runtime: Any, result: Any) -> list[tuple[Any, str | None]]:
    """Store each image's bytes once (content-addressed), several at a time; results in the images' order.
    A document's images were stored as they were found (`document_images`): only their keys are left."""
    if result.status != "done":
        return []
    if isinstance(result, document_images.StreamedResult):
        return result.stored()

    storage = runtime.storage
    keyed = [(img, document_images.image_key(img.data, img.format) if img.data else None) for img in result.images]
    # One look for what is already stored (content-addressed: a page's repeated or known images cost nothing),
    # then each missing key written once, several at a time.
    absent = await storage.missing({key for _, key in keyed if key})
    data = {key: img for img, key in keyed if key is not None and key in absent}
    gate = asyncio.Semaphore(document_images.STORE_CONCURRENCY)

    async def store(key: str, img: Any) -> None:
        async with gate:
            await storage.put(key, img.data, content_type=img.media_type)

    await asyncio.gather(*(store(key, img) for key, img in data.items()))
    return keyed


_INSERT_IMAGE = Insert(Image)


def _image_row(job: Job, item: JobItem, position: int, img: Any, key: str | None, now: datetime) -> dict[str, Any]:
    return _INSERT_IMAGE.row(
        now, job_id=job.id, item_id=item.id, account_id_ref=job.account_id, position=position,  # type: ignore[attr-defined]
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
                    stored: list[tuple[Any, str | None]], duration_ms: int, slot: _Slot) -> str:
    ok = result.status == "done"
    kept = sum(1 for _, key in stored if key) if ok else 0  # downloadable images
    lost = len(stored) - kept if ok else 0  # found, but their bytes could not be fetched
    now = _now()
    delays = runtime.settings.item_retry_delays
    if not ok and attempt <= len(delays) and is_transient(item, result):
        return await _retry_later(runtime, job, item, attempt, result, duration_ms, delays[attempt - 1])
    done_item = {
        "status": "done" if ok else "failed", "image_count": kept, "failed_image_count": lost,
        "duration_ms": duration_ms, "error_code": None if ok else (result.error_code or "extraction_failed"),
        "error_message": None if ok else (result.error_message or "extraction failed"), "finished_at": now,
        "lease_expires_at": None, "updated_at": now,
        "warnings": (list(getattr(result, "warnings", None) or []) or None) if ok else None,
    }
    # A job of one source is finished by this very item: its terminal state is known here, so it is set in
    # the same UPDATE as the counters (no status count, no re-read). Either UPDATE returns the job's row.
    final = _single_item_final(job, ok, done_item) if job.total_items == 1 else None
    # One transaction, its statements written once (one trip to SQLite's thread: sql.transaction).
    refund = not ok and job.account_id is not None  # type: ignore[attr-defined]
    # Refused when another attempt took over after our lease expired: its result stands.
    steps = [Step(_COMPLETE, {"id": item.id, "attempt": attempt, "refunded": refund,
                              **{k: v for k, v in done_item.items() if k != "lease_expires_at"}}, required="skipped")]
    if ok and stored:  # images are written only here, by the attempt that completes the item: none exist yet
        steps.append(Step(_INSERT_IMAGE.statement, many=[
            _image_row(job, item, i, img, key, now) for i, (img, key) in enumerate(stored)]))
        steps += stored_objects.touch_steps(key for _, key in stored)  # serialise against deletion
    counters = {"id": job.id, "kept": kept, "lost": lost}
    last_at = len(steps)  # the job's row comes back from one of these two
    if final:
        steps.append(Step(_COUNT_LAST_ITEM, {**counters, **final}, fetch=True))
    count_at = len(steps)
    steps.append(Step(_COUNT_ITEM, counters, fetch=True, when=lambda done: not final or not done[-1]))
    if refund:
        steps += ledger.credit_steps(account_id=job.account_id, amount=1, entry_type="job_refund",  # type: ignore[attr-defined]
                                     job_id=job.id, item_id=item.id, unique_ref=f"refund:item:{item.id}",
                                     note=f"refund: {result.error_code}")
    if not slot.returned and slot.account is not None:  # the attempt's slot goes back with its result
        steps.append(Step(_GIVE_SLOT, {"id": slot.account.id}))
    try:
        results = await transaction(steps)
    except Refused:
        return "skipped"
    finished = bool(final) and bool(results[last_at])
    counted = results[last_at] if finished else results[count_at]
    slot.returned = True
    if ok and stored:  # a job deleted meanwhile may have released bytes we now reference: put them back
        await document_images.ensure_stored(runtime, item, stored)
    for name, value in done_item.items():
        setattr(item, name, value)
    if counted:
        refresh(job, counted[0])  # the job as this commit left it (its project stays attached)
    await progress.publish(runtime, job.id, progress.item_event(job.id, item))
    if finished:
        await progress.publish(runtime, job.id, progress.job_state(job))
        # This process's subscribers were woken by that event: let them write it out (one loop turn) before
        # the terminal hooks and the message's own bookkeeping, which nobody is waiting for.
        await asyncio.sleep(0)
        await _after_terminal(runtime, job)
    else:
        await maybe_finalize(runtime, job.id, counted=job if counted else None)
    return "done" if ok else "failed"


def _single_item_final(job: Job, ok: bool, item: dict[str, Any]) -> dict[str, Any]:
    """What `maybe_finalize` decides for a job whose only item ends as `item`."""
    return {"status": "done" if ok else "failed", "partial": False, "credits_used": 1 if ok else 0,
            "finished_at": item["finished_at"], "error_code": None if ok else item["error_code"],
            "error_message": None if ok else item["error_message"]}


async def _retry_later(runtime: Any, job: Job, item: JobItem, attempt: int, result: Any, duration_ms: int,
                       delay: float) -> str:
    """Give the item back to the queue and schedule attempt `attempt + 1` (the credit stays taken)."""
    jittered = delay * random.uniform(1.0, 1.2)
    async with unit_of_work(runtime) as uow:  # the next attempt is sent once the item is queued again
        released = await JobItem.filter(id=item.id, status="processing", attempts=attempt).using_db(uow.conn).update(
            status="queued", lease_expires_at=None, updated_at=_now(), duration_ms=duration_ms, error_code=result.error_code,
            error_message=f"attempt {attempt} failed, retrying: {result.error_message or result.error_code}"[:2000],
        )
        if released:
            uow.enqueue("process_item", str(item.id), delay=int(jittered * 1000) or None)
    if not released:
        return "skipped"
    fresh = await JobItem.get(id=item.id)
    await progress.publish(runtime, job.id, progress.item_event(job.id, fresh))
    log.info("item %s: %s on attempt %d, retrying in %.1fs", item.id, result.error_code, attempt, jittered)
    return "retrying"


async def maybe_finalize(runtime: Any, job_id: Any, *, counted: Job | None = None) -> bool:
    """Give the job its terminal status once every item is terminal. Exactly one caller wins.
    `counted`: the job as the caller's own counter UPDATE returned it (its progress event needs no read)."""
    if counted is not None:
        open_batch = counted.type == "batch" and counted.completed_items < counted.total_items
    else:
        open_batch = await Job.filter(id=job_id, type="batch", completed_items__lt=F("total_items")).exists()
    if open_batch:  # a batch counts its terminal items exactly: skip counting up to 10,000 rows per item
        if counted is not None:
            await progress.publish(runtime, job_id, progress.job_state(counted))
        else:
            await progress.publish_job(runtime, job_id)
        return False
    rows = await JobItem.filter(job_id=job_id).annotate(n=Count("id")).group_by("status").values("status", "n")
    counts = {row["status"]: row["n"] for row in rows}  # one query for every status
    if any(n for s, n in counts.items() if s not in progress.TERMINAL):
        if counted is not None:
            await progress.publish(runtime, job_id, progress.job_state(counted))
        else:
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
    job = await Job.get(id=job_id).select_related("project")
    await progress.publish(runtime, job_id, progress.job_state(job))
    await _after_terminal(runtime, job)
    return True


async def _after_terminal(runtime: Any, job: Job | Any) -> None:
    """Hooks that run once per job when it reaches a terminal status (webhooks). `job` is the Job (as read
    after it became terminal) or its id."""
    hooks = getattr(runtime, "terminal_hooks", [])
    for hook in hooks:
        try:
            await hook(runtime, job)
        except Exception:
            log.exception("terminal hook failed for job %s", getattr(job, "id", job))


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
    if expired or stale:
        async with unit_of_work(runtime) as uow:
            if stale:
                await JobItem.filter(id__in=list(stale)).using_db(uow.conn).update(updated_at=now)  # not next round
            for item_id in [*expired, *stale]:
                uow.enqueue("process_item", str(item_id))
                requeued += 1
    finalized = 0
    for job_id in await Job.filter(status__in=["queued", "processing"], updated_at__lt=now - timedelta(seconds=5)) \
            .values_list("id", flat=True):
        if await JobItem.filter(job_id=job_id, status__not_in=list(progress.TERMINAL)).count() == 0:
            finalized += int(await maybe_finalize(runtime, job_id))
    recounted = await _recount_slots()

    resent = await resend_due(runtime)

    swept = await sweep(runtime)
    return {"requeued": requeued, "finalized": finalized, "slots_recounted": recounted, "webhooks_resent": resent,
            **swept}


SLOT_SETTLE_SECONDS = 1.0


async def _recount_slots() -> int:
    """Give back slots held by attempts that died (their lease ran out). A slot is taken a moment before its
    item is claimed, so one count can see a slot without its item: a discrepancy counts only when a second
    look, SLOT_SETTLE_SECONDS later, finds the same number of slots and still fewer live items."""
    suspects: list[tuple[str, int]] = []
    for account in await Account.filter(active_items__gt=0):
        if await _live_items(account.id) < account.active_items:
            suspects.append((account.id, account.active_items))
    if not suspects:
        return 0
    await asyncio.sleep(SLOT_SETTLE_SECONDS)
    fixed = 0
    for account_id, held in suspects:
        live = await _live_items(account_id)
        if live < held:
            fixed += await Account.filter(id=account_id, active_items=held).update(active_items=live)
    return fixed


async def _live_items(account_id: str) -> int:
    return await JobItem.filter(status="processing", lease_expires_at__gte=_now(), job__account_id=account_id).count()
