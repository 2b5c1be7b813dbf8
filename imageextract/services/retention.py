"""Retention: finished jobs older than their project's `retention_days` are deleted, exactly as
`DELETE /api/v1/jobs/:id` deletes them (services/deletion.py), in bounded batches.

Safe with any number of workers sweeping at once: each job is deleted by one transaction that finds it
gone if another sweeper (or the owner) got there first. Jobs without a project (guest jobs) and projects
with `retention_days` null are kept forever.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from imageextract.models import Job, Project
from imageextract.services.deletion import purge_job
from imageextract.services.job_views import TERMINAL

log = logging.getLogger("imageextract.retention")


async def expired_job_ids(*, now: datetime, limit: int) -> list[Any]:
    """Up to `limit` finished jobs past their project's retention, oldest first within each period."""
    periods = await Project.filter(retention_days__isnull=False).distinct().values_list("retention_days", flat=True)
    found: list[Any] = []
    for days in sorted(periods):
        if len(found) >= limit:
            break
        cutoff = now - timedelta(days=int(days))  # type: ignore[call-overload]
        found += await Job.filter(project__retention_days=days, status__in=list(TERMINAL),
                                  finished_at__lt=cutoff).order_by("finished_at", "id") \
            .limit(limit - len(found)).values_list("id", flat=True)
    return found


async def sweep(runtime: Any, *, now: datetime | None = None, limit: int | None = None) -> int:
    """One bounded batch. Returns how many jobs this call deleted (others' deletions are not counted)."""
    batch = limit if limit is not None else runtime.settings.retention_batch_size
    deleted = 0
    for job_id in await expired_job_ids(now=now or datetime.now(UTC), limit=batch):
        try:
            if await purge_job(runtime, job_id) is not None:
                deleted += 1
        except Exception:
            log.exception("retention: could not delete job %s; the next sweep retries", job_id)
    if deleted:
        log.info("retention: deleted %d expired job(s)", deleted)
    return deleted
