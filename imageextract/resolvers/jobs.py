"""Resolvers for jobs: submit, upload, read, list, cancel, retry, and the jobProgress subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types import Info

from imageextract.errors import PayloadTooLarge
from imageextract.graphql_fanout import shared_root
from imageextract.schema.context import GQLContext
from imageextract.schema.jobs import Job, JobProgressEvent, SubmitJobPayload
from imageextract.schema.pagination import Connection
from imageextract.services import job_callbacks, job_queries, jobs, live, submission
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
    webhook_url: str | None = None
    callback_url: str | None = None  # alias of webhook_url


async def job(info: GInfo, id: strawberry.ID) -> Job:
    return Job.from_view(await jobs.read_job(info.context.ctx, str(id)))


async def job_list(info: GInfo, first: int = 20, after: str | None = None, status: str | None = None,
                   type: str | None = None, project_id: strawberry.ID | None = None,
                   created_after: str | None = None, created_before: str | None = None,
                   sort: str | None = None, order: str | None = None) -> Connection[Job]:
    """The caller's jobs, filtered and sorted as GET /api/v1/jobs (status and type take comma-separated
    lists; sort: created_at | updated_at; order: asc | desc)."""
    filters = job_queries.job_filters(info.context.ctx, status=status, type=type, project_id=project_id, created_after=created_after,
                                      created_before=created_before, sort=sort, order=order)
    page = await job_queries.list_jobs_cursor(info.context.ctx, filters, first=first, after=after)
    return Connection.of(page, Job.from_view)


async def submit_job(info: GInfo, input: SubmitJobInput) -> SubmitJobPayload:
    raw: Any = input.url if input.type == "url" else input.urls
    hook, hook_field = job_callbacks.callback_url(input.webhook_url, input.callback_url)
    submitted = await submission.submit_job(
        info.context.ctx, kind=input.type, raw_input=raw, metadata=input.metadata,
        project_id=str(input.project_id) if input.project_id else None, idempotency_key=input.idempotency_key,
        webhook_url=hook, webhook_url_field=hook_field,
    )
    return SubmitJobPayload.of(submitted)


async def upload_documents(info: GInfo, files: list[Upload], project_id: strawberry.ID | None = None,
                           idempotency_key: str | None = None, metadata: JSON | None = None,
                           webhook_url: str | None = None, callback_url: str | None = None) -> SubmitJobPayload:
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
    hook, hook_field = job_callbacks.callback_url(webhook_url, callback_url)
    submitted = await submission.submit_job(ctx, kind="document", uploads=uploads, metadata=metadata,
                                            project_id=str(project_id) if project_id else None,
                                            idempotency_key=idempotency_key, webhook_url=hook,
                                            webhook_url_field=hook_field)
    return SubmitJobPayload.of(submitted)


async def cancel_job(info: GInfo, id: strawberry.ID) -> Job:
    return Job.from_view(await jobs.cancel_job(info.context.ctx, str(id)))


async def retry_job(info: GInfo, id: strawberry.ID) -> SubmitJobPayload:
    submitted = await jobs.retry_job(info.context.ctx, str(id))
    return SubmitJobPayload(job_id=strawberry.ID(str(submitted.job.id)), replayed=False)


async def job_progress(info: GInfo, job_id: strawberry.ID) -> AsyncGenerator[JobProgressEvent, None]:
    """Current state first, then every change, ending after the terminal event. A job the caller may not
    see ends this operation with an `error` message (codes as REST's); the connection and its other
    subscriptions stay open."""
    gctx = info.context
    record = await jobs.get_job(gctx.ctx, str(job_id))
    async for message in live.follow(gctx.ctx.services, record.id):
        if message is not None:
            # One root per pub/sub message, shared by its subscribers: executed once per audience.
            yield shared_root(message, JobProgressEvent.from_event)


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
    job_progress: AsyncGenerator[JobProgressEvent, None] = strawberry.subscription(resolver=job_progress)
