"""Permanently deleting a job: cancel what still runs (refunding it), delete the job, its items, uploads and
image records, then the stored bytes no other job references. Ledger entries stay (money history is never
deleted); webhook deliveries stay as the record of what was sent.

Safe to run twice at once for the same job (one wins, the other finds nothing and answers 404) and
beside workers still processing the job's items (their late results match no row and are dropped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import NotFound
from imageextract.models import IdempotencyRecord, Image, Job, JobItem
from imageextract.services import ledger, progress, stored_objects
from imageextract.services.batch_results import delete_results
from imageextract.services.job_views import OPEN, JobStatus
from imageextract.services.jobs import get_job

log = logging.getLogger("imageextract.deletion")


@dataclass
class Purged:
    job_id: str
    cancelled_items: int = 0
    removed_keys: list[str] = field(default_factory=list)


async def delete_job(ctx: Context, job_id: str) -> Purged:
    """The caller's job, deleted for good. 404 when unknown or already deleted; other owners as `get_job`."""

    job = await get_job(ctx, job_id)
    purged = await purge_job(ctx.services, job.id)
    if purged is None:
        raise NotFound("Job not found", details={"job_id": job_id})
    return purged


async def purge_job(runtime: Any, job_id: Any) -> Purged | None:
    """Delete one job by id, whoever owns it (retention uses this too). None when it was already gone."""
    now = datetime.now(UTC)
    async with in_transaction() as conn:
        job = await Job.filter(id=job_id).using_db(conn).first()
        if job is None:
            return None
        account_id = job.account_id  # type: ignore[attr-defined]
        open_ids = list(await JobItem.filter(job_id=job.id, status__in=list(OPEN)).using_db(conn)
                        .values_list("id", flat=True))
        cancelled: list[Any] = []
        if open_ids:
            # One statement locks every open item first (a worker holding one makes us wait, then its final
            # status stands); only the items this statement moved are refunded.
            await JobItem.filter(id__in=open_ids, status__in=list(OPEN)).using_db(conn).update(
                status=JobStatus.CANCELLED, finished_at=now, refunded=account_id is not None)
            cancelled = list(await JobItem.filter(id__in=open_ids, status=JobStatus.CANCELLED).using_db(conn)
                             .values_list("id", flat=True))
            if account_id is not None:
                for item_id in cancelled:
                    await ledger.credit(account_id=account_id, amount=1, entry_type="job_refund", job_id=job.id,
                                        item_id=item_id, unique_ref=f"refund:item:{item_id}",
                                        note="refund: job deleted", conn=conn)
        image_keys = await Image.filter(job_id=job.id, storage_key__isnull=False).using_db(conn).distinct() \
            .values_list("storage_key", flat=True)
        upload_keys = await JobItem.filter(job_id=job.id, upload_key__isnull=False).using_db(conn).distinct() \
            .values_list("upload_key", flat=True)
        await IdempotencyRecord.filter(job_id=job.id).using_db(conn).delete()
        await Image.filter(job_id=job.id).using_db(conn).delete()
        await JobItem.filter(job_id=job.id).using_db(conn).delete()
        if not await Job.filter(id=job.id).using_db(conn).delete():
            return None
    if job.status in OPEN:
        # Followers (SSE, subscriptions) end on a terminal event.
        job.status = JobStatus.CANCELLED
        await progress.publish(runtime, job.id, progress.job_state(job))
    keys: list[str | None] = [str(k) for k in (*image_keys, *upload_keys)]
    removed = await stored_objects.release(runtime.storage, keys)
    if job.type == "batch":  # its item result documents (services/batch_results.py)
        try:
            await delete_results(runtime.storage, job.id)
        except Exception:
            log.exception("could not delete the result documents of batch %s", job.id)
    log.info("job %s deleted: %d item(s) cancelled, %d stored object(s) removed", job.id, len(cancelled),
             len(removed))
    return Purged(job_id=str(job.id), cancelled_items=len(cancelled), removed_keys=removed)
