"""The actors: ids in, one service call on the runtime's loop, idempotent (the services make them so)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from imageextract import logs
from imageextract.tasks.broker import QUEUE_ITEMS, QUEUE_JOBS, QUEUE_WEBHOOKS, TaskQueue

if TYPE_CHECKING:
    from imageextract.tasks.bridge import AsyncBridge

log = logging.getLogger("imageextract.tasks")

# A hang inside extraction is bounded by the engine (fetch timeouts, sandbox deadline); this is the backstop.
BRIDGE_TIMEOUT = 60 * 60.0


def declare_all(queue: TaskQueue, bridge: AsyncBridge, runtime: Any) -> None:
    from imageextract.services import pipeline

    def process_item(item_id: str) -> None:
        logs.request_id.set(logs.new_id("task"))
        outcome = bridge.run(pipeline.process_item(runtime, item_id), timeout=BRIDGE_TIMEOUT)
        log.info("item %s: %s", item_id, outcome)

    def finalize_job(job_id: str) -> None:
        logs.request_id.set(logs.new_id("task"))
        bridge.run(pipeline.maybe_finalize(runtime, job_id), timeout=BRIDGE_TIMEOUT)

    def deliver_webhook(delivery_id: str) -> None:
        from imageextract.services import webhook_delivery

        logs.request_id.set(logs.new_id("task"))
        bridge.run(webhook_delivery.deliver(runtime, delivery_id), timeout=BRIDGE_TIMEOUT)

    queue.declare("process_item", process_item, queue=QUEUE_ITEMS)
    queue.declare("finalize_job", finalize_job, queue=QUEUE_JOBS)
    # Webhook retries follow their own schedule in the database; the actor itself never raises for a
    # receiver's failure, so Dramatiq's retries only cover our own faults.
    queue.declare("deliver_webhook", deliver_webhook, queue=QUEUE_WEBHOOKS)
