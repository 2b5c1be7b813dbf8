"""Resolvers for jobs: submit, upload, read, list, cancel, retry, and the jobProgress subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.errors import DomainError, PayloadTooLarge
from imageextract.schema.context import GQLContext
from imageextract.schema.jobs import Job, JobItem, JobProgressEvent, SubmitJobPayload
from imageextract.schema.pagination import Connection
from imageextract.services import jobs, live, submission
from imageextract.services.plans import GUEST_PLAN, get_plan

GInfo = Info[GQLContext, None]


@strawberry.input
class SubmitJobInput:
    type: str
    url: str | None = None
    urls: list[str] | None = None
    metadata: JSON | None = None
    project_id: strawberry.ID | None = None
    idempotency_key: str | None = None


async def job(info: GInfo, id: strawberry.ID) -> Job:
    return Job.from_model(await jobs.get_job(info.context.ctx, str(id)))


async def job_list(info: GInfo, first: int = 20, after: str | None = None, status: str | None = None,
                   type: str | None = None, project_id: strawberry.ID | None = None) -> Connection[Job]:
    page = await jobs.list_jobs_cursor(info.context.ctx, first=first, after=after, status=status, type=type,
                                       project_id=str(project_id) if project_id else None)
    return Connection.of(page, Job.from_model)


async def submit_job(info: GInfo, input: SubmitJobInput) -> SubmitJobPayload:
    raw: Any = input.url if input.type == "url" else input.urls
    submitted = await submission.submit_job(
        info.context.ctx, kind=input.type, raw_input=raw, metadata=input.metadata,
        project_id=str(input.project_id) if input.project_id else None, idempotency_key=input.idempotency_key,
    )
    return SubmitJobPayload(job_id=strawberry.ID(str(submitted.job.id)), replayed=not submitted.created)


async def upload_documents(info: GInfo, files: list[Upload], project_id: strawberry.ID | None = None,
                           idempotency_key: str | None = None) -> SubmitJobPayload:
    ctx = info.context.ctx
    principal = ctx.require_principal()
    plan = get_plan(principal.account.plan) if principal else GUEST_PLAN
    cap = plan.document_max_mb * 1024 * 1024
    uploads: list[submission.Upload] = []
    total = 0
    for f in files:
        data = await f.read(cap - total + 1)  # type: ignore[attr-defined]
        total += len(data)
        if total > cap:
            raise PayloadTooLarge(f"Uploads total more than {plan.document_max_mb} MB",
                                  details={"max_mb": plan.document_max_mb})
        uploads.append(submission.Upload(filename=getattr(f, "filename", "") or "", data=data))
    submitted = await submission.submit_job(ctx, kind="document", uploads=uploads,
                                            project_id=str(project_id) if project_id else None,
                                            idempotency_key=idempotency_key)
    return SubmitJobPayload(job_id=strawberry.ID(str(submitted.job.id)), replayed=not submitted.created)


async def cancel_job(info: GInfo, id: strawberry.ID) -> Job:
    return Job.from_model(await jobs.cancel_job(info.context.ctx, str(id)))


async def retry_job(info: GInfo, id: strawberry.ID) -> SubmitJobPayload:
    submitted = await jobs.retry_job(info.context.ctx, str(id))
    return SubmitJobPayload(job_id=strawberry.ID(str(submitted.job.id)), replayed=False)


def _event(message: dict[str, Any]) -> JobProgressEvent:
    if message.get("event") == "item":
        it = message["item"]
        item = JobItem(id=strawberry.ID(it["id"]), position=it["position"], kind=it["kind"],
                       source_label=it["source_label"], status=it["status"], image_count=it["image_count"],
                       duration_ms=it["duration_ms"], error_code=it["error_code"],
                       error_message=it["error_message"], attempts=it.get("attempts", 0))
        return JobProgressEvent(kind="item", job_id=strawberry.ID(message["job_id"]), item=item)
    return JobProgressEvent(
        kind="job", job_id=strawberry.ID(message["job_id"]), status=message.get("status"),
        progress=message.get("progress"), completed_items=message.get("completed_items"),
        total_items=message.get("total_items"), image_count=message.get("image_count"),
        partial=message.get("partial"), result_url=message.get("result_url"), error=message.get("error"),
    )


async def job_progress(info: GInfo, job_id: strawberry.ID) -> AsyncGenerator[JobProgressEvent, None]:
    """Current state first, then every change, ending after the terminal event. A job the caller may not
    see closes the socket with 4403 (after accept, so the client gets the code rather than a bare 403)."""
    gctx = info.context
    try:
        record = await jobs.get_job(gctx.ctx, str(job_id))
    except DomainError:
        await gctx.request.close(code=4403, reason="Forbidden")  # type: ignore[call-arg]
        return
    async for message in live.follow(gctx.ctx.services, record.id):
        if message is not None:
            yield _event(message)


@strawberry.type
class Query:
    job: Job = strawberry.field(resolver=job)
    jobs: Connection[Job] = strawberry.field(resolver=job_list)


@strawberry.type
class Mutation:
    submit_job: SubmitJobPayload = strawberry.mutation(resolver=submit_job)
    upload_documents: SubmitJobPayload = strawberry.mutation(resolver=upload_documents)
    cancel_job: Job = strawberry.mutation(resolver=cancel_job)
    retry_job: SubmitJobPayload = strawberry.mutation(resolver=retry_job)


@strawberry.type
class Subscription:
    job_progress: JobProgressEvent = strawberry.subscription(resolver=job_progress)
