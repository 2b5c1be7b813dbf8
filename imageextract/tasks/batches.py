"""Batch actors: feed a batch's next window of items to the workers; one sweep round (also run by every
reconciler round). Both are idempotent and safe with several workers (conditional UPDATEs throughout)."""

from __future__ import annotations

import logging
from typing import Any

from imageextract.services import batch_runs
from imageextract.tasks.registry import QUEUE_JOBS, QUEUE_MAINTENANCE, actor

log = logging.getLogger("imageextract.tasks")


@actor("pump_batch", queue=QUEUE_JOBS)
async def pump_batch(runtime: Any, job_id: str) -> None:
    await batch_runs.pump(runtime, job_id)


@actor("sweep_batches", queue=QUEUE_MAINTENANCE)
async def sweep_batches(runtime: Any) -> None:
    result = await batch_runs.sweep(runtime)
    if any(result.values()):
        log.info("batch sweep: %s", result)
