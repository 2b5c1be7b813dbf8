"""The job and webhook actors: ids in, one service call, idempotent (the services make them so)."""

from __future__ import annotations

import logging
from typing import Any

from imageextract.services import pipeline, webhook_delivery
from imageextract.tasks.registry import QUEUE_ITEMS, QUEUE_JOBS, QUEUE_WEBHOOKS, actor

log = logging.getLogger("imageextract.tasks")


@actor("process_item", queue=QUEUE_ITEMS)
async def process_item(runtime: Any, item_id: str) -> None:
    outcome = await pipeline.process_item(runtime, item_id)
    log.info("item %s: %s", item_id, outcome)


@actor("finalize_job", queue=QUEUE_JOBS)
async def finalize_job(runtime: Any, job_id: str) -> None:
    await pipeline.maybe_finalize(runtime, job_id)


# Webhook retries follow their own schedule in the database; the actor itself never raises for a
# receiver's failure, so Dramatiq's retries only cover our own faults.
@actor("deliver_webhook", queue=QUEUE_WEBHOOKS)
async def deliver_webhook(runtime: Any, delivery_id: str) -> None:
    await webhook_delivery.deliver(runtime, delivery_id)
