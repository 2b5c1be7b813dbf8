"""Which webhook deliveries an event creates, and their thin payloads (ids, counts, URLs; never bytes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from imageextract.models import Job, JobItem, Project, WebhookDelivery, WebhookEndpoint
from imageextract.services import job_callbacks
from imageextract.services.batch_runs import webhook_event
from imageextract.services.sql import Statement, load, returning
from imageextract.services.unit_of_work import unit_of_work

log = logging.getLogger("imageextract.webhooks")


def event_type_for(job: Job) -> str | None:
    if job.status == "done":
        return "job.partially_failed" if job.partial else "job.completed"
    return {"failed": "job.failed", "cancelled": "job.cancelled"}.get(job.status)


async def job_payload(runtime: Any, job: Job, event_type: str) -> dict[str, Any]:
    base = runtime.settings.base_url
    failed = await JobItem.filter(job_id=job.id, status="failed").count()
    cancelled = await JobItem.filter(job_id=job.id, status="cancelled").count()
    return {
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "job_id": str(job.id),
            "project_id": job.project_id,  # type: ignore[attr-defined]
            "type": job.type,
            "status": job.status,
            "partial": job.partial,
            "total_items": job.total_items,
            "failed_items": failed,
            "cancelled_items": cancelled,
            "image_count": job.image_count,
            "credits_used": job.credits_used,
            "error_code": job.error_code,
            "metadata": job.metadata,
            "result_url": f"{base}/api/v1/jobs/{job.id}/result",
            "download_url": f"{base}/api/v1/jobs/{job.id}/download",
        },
    }


async def create_delivery(runtime: Any, *, project: Project, endpoint: WebhookEndpoint | None, url: str,
                          event_type: str, event_key: str, payload: dict[str, Any], job_id: Any = None,
                          receiver: str | None = None) -> WebhookDelivery | None:
    """One delivery per receiver and event (dedupe_key), enqueued after commit. None if it already exists."""
    receiver = receiver or (endpoint.id if endpoint is not None else f"default:{project.id}")
    try:
        async with unit_of_work(runtime) as uow:  # the delivery message is sent after COMMIT, with retries
            delivery = await WebhookDelivery.create(
                account_id=project.account_id, project=project, endpoint=endpoint, url=url,  # type: ignore[attr-defined]
                event_type=event_type, dedupe_key=f"{receiver}:{event_key}", job_id=job_id, payload=payload,
                next_attempt_at=datetime.now(UTC), using_db=uow.conn,
            )
            payload_with_id = {"id": delivery.id, **payload}
            await WebhookDelivery.filter(id=delivery.id).using_db(uow.conn).update(payload=payload_with_id)
            delivery.payload = payload_with_id
            uow.enqueue("deliver_webhook", delivery.id)
    except IntegrityError:
        return None
    return delivery


# Read for every finished job of a project: its SQL written once (services/sql.py).
_ACTIVE_ENDPOINTS = Statement(lambda: f'''SELECT {returning(WebhookEndpoint)} FROM "webhook_endpoints"
                                        WHERE "project_id"=:project AND "status"='active' ORDER BY "created_at", "id"''', point=True)


async def _active_endpoints(project_id: Any) -> list[WebhookEndpoint]:
    return [e for e in (load(WebhookEndpoint, row) for row in await _ACTIVE_ENDPOINTS.rows(project=project_id))
            if e is not None]


async def on_job_terminal(runtime: Any, job_or_id: Job | Any) -> None:
    """`job_or_id`: the terminal Job as the pipeline holds it (its project fetched with it), or its id."""
    job = job_or_id if isinstance(job_or_id, Job) else await Job.get_or_none(id=job_or_id)
    if job is None or job.project_id is None:  # type: ignore[attr-defined]
        return
    batch_event = None
    if job.type == "batch":  # batch.completed|partially_failed|failed|cancelled (services/batch_runs.py)

        batch_event = await webhook_event(runtime, job)
    event_type = batch_event[0] if batch_event else None if job.type == "batch" else event_type_for(job)
    if event_type is None:
        return
    fetched = job.project
    project = fetched if isinstance(fetched, Project) else await Project.get(id=job.project_id)  # type: ignore[attr-defined]
    endpoints = [e for e in await _active_endpoints(project.id) if event_type in (e.subscribed_events or [])]
    if not endpoints and not project.default_webhook_url and not job.webhook_url:
        return  # nobody listens: skip building the payload (two counts) for every finished job
    payload = batch_event[1] if batch_event else await job_payload(runtime, job, event_type)
    if job.webhook_url:
        await job_callbacks.on_job_terminal(runtime, job, event_type, payload)
    for endpoint in endpoints:
        await create_delivery(runtime, project=project, endpoint=endpoint, url=endpoint.url,
                              event_type=event_type, event_key=f"{event_type}:{job.id}", payload=payload,
                              job_id=job.id)
    if project.default_webhook_url:
        await create_delivery(runtime, project=project, endpoint=None, url=project.default_webhook_url,
                              event_type=event_type, event_key=f"{event_type}:{job.id}", payload=payload,
                              job_id=job.id)
