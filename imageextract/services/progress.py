"""Job progress: the one shape of a job's live state, published by workers, read by SSE and subscriptions."""

from __future__ import annotations

import logging
from typing import Any

from imageextract.models import Job, JobItem
from imageextract.services.job_views import TERMINAL, progress_percent, result_path

__all__ = ["TERMINAL", "progress_percent"]  # re-exported for the pipeline

log = logging.getLogger("imageextract.progress")

def channel(job_id: Any) -> str:
    return f"job:{job_id}"


def item_state(item: JobItem) -> dict[str, Any]:
    return {
        "id": str(item.id), "position": item.position, "kind": item.kind, "source_label": item.source_label,
        "status": item.status, "image_count": item.image_count,
        "failed_image_count": item.failed_image_count, "duration_ms": item.duration_ms,
        "error_code": item.error_code, "error_message": item.error_message, "attempts": item.attempts,
        "warnings": list(item.warnings or []),
    }


def job_state(job: Job) -> dict[str, Any]:
    """The job event: status, progress and, when terminal, where the result is."""
    state: dict[str, Any] = {
        "event": "job", "job_id": str(job.id), "status": job.status, "progress": progress_percent(job),
        "completed_items": job.completed_items, "total_items": job.total_items, "image_count": job.image_count,
        "failed_image_count": job.failed_image_count, "credits_used": job.credits_used, "partial": job.partial,
    }
    if job.status == "done":
        state["result_url"] = result_path(job.id)
    if job.status == "failed":
        state["error"] = job.error_message or job.error_code or "failed"
        state["error_code"] = job.error_code
    return state


def item_event(job_id: Any, item: JobItem) -> dict[str, Any]:
    return {"event": "item", "job_id": str(job_id), "item": item_state(item)}


async def publish(runtime: Any, job_id: Any, message: dict[str, Any]) -> None:
    """Best effort: progress is a view of the database, never the record; a lost event is re-read on subscribe."""
    events = getattr(runtime, "events", None)
    if events is None:
        return
    try:
        await events.publish(channel(job_id), message)
    except Exception:  # pub/sub down must not fail the job
        log.warning("could not publish progress for job %s", job_id, exc_info=True)


async def publish_job(runtime: Any, job_id: Any) -> None:
    job = await Job.get_or_none(id=job_id)
    if job is not None:
        await publish(runtime, job_id, job_state(job))


async def snapshot(job_id: Any) -> list[dict[str, Any]]:
    """The current state as events: the job, then every item (sent first to a late subscriber)."""
    job = await Job.get(id=job_id)
    items = await JobItem.filter(job_id=job_id).order_by("position")
    return [job_state(job), *(item_event(job_id, i) for i in items)]
