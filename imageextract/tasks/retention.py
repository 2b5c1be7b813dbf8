"""The retention actor: one bounded sweep of expired jobs (workers also sweep on a timer, see runtime.py)."""

from __future__ import annotations

from typing import Any

from imageextract.services import retention
from imageextract.tasks.registry import QUEUE_MAINTENANCE, actor


@actor("sweep_retention", queue=QUEUE_MAINTENANCE)
async def sweep_retention(runtime: Any) -> None:
    await retention.sweep(runtime)
