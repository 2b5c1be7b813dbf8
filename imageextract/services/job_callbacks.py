"""Per-job callbacks: a `webhook_url` (alias `callback_url`) given with one submission.

The URL is checked like every webhook URL (http(s), SSRF guard). The job gets its own `whsec_` secret,
returned once in the submission response as `webhook_secret`; deliveries are signed with it exactly as
project webhooks are (the documented header and Standard Webhooks), carry the same thin payload, follow the
same retry schedule (services/webhook_delivery.py) and are listed with the job's deliveries.

Also here: the multipart door's `metadata` form field (a JSON string), parsed and size-capped before the
submission rules (`submission._clean_metadata`) check it as they check a JSON body's.
"""

from __future__ import annotations

import json
from typing import Any

from imageextract.context import Context
from imageextract.errors import Unauthenticated, ValidationError
from imageextract.models import Job, Project, WebhookDelivery
from imageextract.services import webhook_events
from imageextract.services.jobs import get_job
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.urls import check_public_url, validate_http_url

DEDUPE_PREFIX = "job:"  # dedupe_key of a per-job delivery: "job:<job id>:<event type>"
MAX_FORM_METADATA = 16 * 1024  # the JSON text of a multipart `metadata` field, in bytes


def callback_url(webhook_url: Any = None, callback_url: Any = None) -> tuple[Any, str]:
    """The one URL of the two names (they may both be sent only if equal), and the field it came from."""
    if webhook_url is not None and callback_url is not None and webhook_url != callback_url:
        raise ValidationError("webhook_url and callback_url are aliases: send one of them",
                              details={"field": "callback_url"})
    if webhook_url is not None:
        return webhook_url, "webhook_url"
    return callback_url, "callback_url"


async def clean_callback(ctx: Context, url: Any, *, field: str = "webhook_url") -> str | None:
    if url is None:
        return None
    if ctx.principal is None:
        raise Unauthenticated("Job callbacks need an account: send an API key or sign in")
    url = validate_http_url(url, field=field)
    await check_public_url(ctx, url, field=field)
    return url


def parse_form_metadata(raw: Any) -> Any:
    """A multipart `metadata` field: JSON text of an object, at most MAX_FORM_METADATA bytes."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationError("metadata must be a JSON object as text", details={"field": "metadata"})
    if len(raw.encode()) > MAX_FORM_METADATA:
        raise ValidationError(f"metadata must be at most {MAX_FORM_METADATA} bytes as JSON",
                              details={"field": "metadata"})
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationError("metadata is not valid JSON", details={"field": "metadata"}) from None
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object", details={"field": "metadata"})
    return value


async def on_job_terminal(runtime: Any, job: Job, event_type: str, payload: dict[str, Any]) -> WebhookDelivery | None:
    """The job's own callback for its terminal event (one delivery per job and event)."""

    if not job.webhook_url or job.project_id is None:  # type: ignore[attr-defined]
        return None
    project = await Project.get(id=job.project_id)  # type: ignore[attr-defined]
    return await webhook_events.create_delivery(
        runtime, project=project, endpoint=None, url=job.webhook_url, event_type=event_type,
        event_key=f"{event_type}:{job.id}", payload=payload, job_id=job.id, receiver=f"{DEDUPE_PREFIX}{job.id}")


def is_job_callback(delivery: WebhookDelivery) -> bool:
    return delivery.dedupe_key.startswith(DEDUPE_PREFIX)


async def secret_for(delivery: WebhookDelivery) -> str | None:
    """The signing secret of a per-job delivery (None once the job is deleted)."""
    if delivery.job_id is None:
        return None
    job = await Job.get_or_none(id=delivery.job_id)
    return job.webhook_secret if job is not None else None


async def job_deliveries(ctx: Context, job_id: str, *, first: int, after: str | None) -> Page[WebhookDelivery]:
    """Every delivery about the job (its own callback and its project's webhooks), newest first."""

    job = await get_job(ctx, job_id)
    return await keyset_page(WebhookDelivery.filter(job_id=job.id), first=first, after=after, sort="created_at",
                             descending=True)
