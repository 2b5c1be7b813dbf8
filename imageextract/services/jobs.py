"""Reading and steering jobs: access rules, summaries, results, cancel, retry, history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import (
    Conflict,
    Forbidden,
    NotFound,
    NotReady,
    Unauthenticated,
    Unprocessable,
)
from imageextract.models import Job, JobItem
from imageextract.services import ledger, progress
from imageextract.services.job_views import (
    OPEN,
    TERMINAL,
    ImageSet,
    ItemView,
    JobStatus,
    JobView,
    image_pages,
    image_views,
    item_rows_page,
    item_views,
    job_view,
    list_page,
)
from imageextract.services.pagination import Page
from imageextract.services.pipeline import _after_terminal
from imageextract.services.security import constant_time_equal, sha256_hex
from imageextract.services.sql import Statement, load, returning
from imageextract.services.submission import Upload, submit_job


def _parse_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("Job not found", details={"job_id": job_id}) from None


# Every read of a job starts here: its SQL written once (services/sql.py).
_JOB = Statement(lambda: f'SELECT {returning(Job)} FROM "jobs" WHERE "id"=:id', point=True)


async def get_job(ctx: Context, job_id: str) -> Job:
    """The job if the caller may see it: 404 when unknown, 403 when it belongs to someone else."""
    ctx.check_credentials()
    rows = await _JOB.rows(id=_parse_id(job_id))
    if not rows:
        raise NotFound("Job not found", details={"job_id": job_id})
    job = load(Job, rows[0])
    assert job is not None
    check_access(ctx, job)
    return job


def check_access(ctx: Context, job: Job) -> None:
    principal = ctx.principal
    if ctx.auth_error is not None:
        raise ctx.auth_error
    if principal is not None:
        if job.account_id == principal.account_id:  # type: ignore[attr-defined]
            bound = principal.project_id
            if bound is None or job.project_id == bound:  # type: ignore[attr-defined]
                return
        raise Forbidden("This job belongs to a different user", details={"job_id": str(job.id)})
    if job.account_id is None and job.guest_token_hash and ctx.guest_token:  # type: ignore[attr-defined]
        if constant_time_equal(job.guest_token_hash, sha256_hex(ctx.guest_token)):
            return
    if job.account_id is None:  # type: ignore[attr-defined]
        raise Forbidden("This job belongs to a different user", details={"job_id": str(job.id)})

    raise Unauthenticated("Authentication required")


async def read_job(ctx: Context, job_id: str) -> JobView:
    return job_view(await get_job(ctx, job_id))


async def job_detail(ctx: Context, job_id: str) -> tuple[JobView, list[ItemView]]:
    """The job the caller may see, with its items in position order."""
    job = await get_job(ctx, job_id)
    return job_view(job), (await item_views([job.id]))[str(job.id)]


def check_readable(view: JobView) -> None:
    """The result rule: 202 while running, 422 when the job failed or was cancelled."""
    if view.status in OPEN:
        raise NotReady("Job still processing", details={"status": view.status, "progress": view.progress})
    if view.status == JobStatus.FAILED:
        raise Unprocessable(view.error_message or "Job failed",
                            details={"status": "failed", "error_code": view.error_code}, code="job_failed")
    if view.status == JobStatus.CANCELLED:
        raise Unprocessable("Job was cancelled", details={"status": "cancelled"}, code="job_cancelled")


async def result_of(ctx: Context, job_id: str) -> tuple[JobView, ImageSet]:
    """A finished job and its images (stored ones, and those that could not be downloaded, apart)."""
    view = job_view(await get_job(ctx, job_id))
    check_readable(view)
    return view, await image_views(view.id, base_url=ctx.base_url or "", storage=ctx.services.storage)


async def first_image_pages(ctx: Context, keys: list[tuple[str, bool, int, bool]]) -> list[Page[Any]]:
    """The first page of images for each (job id, failed, first, count) of jobs whose result is readable
    (the caller checked it), one query per distinct (failed, first, count): GraphQL batches `Job.images`
    through this."""
    groups: dict[tuple[bool, int, bool], list[str]] = {}
    for job_id, failed, first, count in keys:
        groups.setdefault((failed, first, count), []).append(job_id)
    storage = ctx.services.storage if ctx.services is not None else None
    found: dict[tuple[str, bool, int, bool], Page[Any]] = {}
    for (failed, first, count), job_ids in groups.items():
        pages = await image_pages(job_ids, failed=failed, first=first, base_url=ctx.base_url or "", storage=storage,
                                  count=count)
        found.update({(job_id, failed, first, count): pages[job_id] for job_id in job_ids})
    return [found[key] for key in keys]


async def cancel_job(ctx: Context, job_id: str) -> JobView:
    job = await get_job(ctx, job_id)
    now = datetime.now(UTC)
    async with in_transaction() as conn:
        moved = await Job.filter(id=job.id, status__in=["pending", "queued"]).using_db(conn).update(
            status="cancelled", finished_at=now)
        if not moved:
            raise Conflict("Only pending or queued jobs can be cancelled", details={"status": job.status})
        open_items = await JobItem.filter(job_id=job.id, status__in=["pending", "queued"]).using_db(conn)
        for item in open_items:
            took = await JobItem.filter(id=item.id, status__in=["pending", "queued"]).using_db(conn).update(
                status="cancelled", finished_at=now, refunded=job.account_id is not None)  # type: ignore[attr-defined]
            if took and job.account_id is not None:  # type: ignore[attr-defined]
                await ledger.credit(account_id=job.account_id, amount=1, entry_type="job_refund", job_id=job.id,  # type: ignore[attr-defined]
                                    item_id=item.id, unique_ref=f"refund:item:{item.id}", note="refund: cancelled",
                                    conn=conn)
        done = await JobItem.filter(job_id=job.id, status="done").using_db(conn).count()
        terminal = await JobItem.filter(job_id=job.id, status__in=list(TERMINAL)).using_db(conn).count()
        await Job.filter(id=job.id).using_db(conn).update(credits_used=done, completed_items=terminal)
    job = await Job.get(id=job.id)
    await progress.publish(ctx.services, job.id, progress.job_state(job))

    await _after_terminal(ctx.services, job.id)
    return job_view(job)


async def retry_job(ctx: Context, job_id: str) -> Any:
    """A fresh job from the original input (consumes credits again)."""

    job = await get_job(ctx, job_id)
    if job.status not in ("failed", "cancelled"):
        raise Conflict("Only failed or cancelled jobs can be retried", details={"status": job.status})
    if job.type == "document":
        uploads = [Upload(filename=f["filename"], data=await ctx.services.storage.get(f["storage_key"]))
                   for f in job.input["value"]]
        submitted = await submit_job(ctx, kind="document", uploads=uploads, metadata=job.metadata,
                                     project_id=job.project_id)  # type: ignore[attr-defined]
    else:
        submitted = await submit_job(ctx, kind=job.type, raw_input=job.input["value"], metadata=job.metadata,
                                     project_id=job.project_id)  # type: ignore[attr-defined]
    await Job.filter(id=submitted.job.id).update(retry_of_id=job.id)
    return submitted


async def items_page(ctx: Context, job_id: str, *, first: int, after: str | None,
                     loaded: list[ItemView] | None = None) -> Page[ItemView]:
    """The job's items in position order, by cursor (GraphQL `Job.items`). The first page may come from
    `loaded` (every item of the job, read in one batch for many jobs); later pages by keyset."""
    if after is None and loaded is not None:
        return list_page(loaded, first=first, start=0, key=lambda i, item: (item.position, item.id))
    job = await get_job(ctx, job_id)
    return await item_rows_page(job.id, first=first, after=after)


async def images_page(ctx: Context, job: JobView, *, failed: bool, first: int, after: str | None,
                      count: bool = True) -> Page[Any]:
    """A page of the result's images (or failed images) by cursor, under the result rule (GraphQL
    `Job.images` on a job its resolver read: `read_job` checked access). `count`: the job's total too."""
    check_readable(job)
    pages = await image_pages([job.id], failed=failed, first=first, after=after, base_url=ctx.base_url or "",
                              storage=ctx.services.storage if ctx.services is not None else None, count=count)
    return pages[str(job.id)]
