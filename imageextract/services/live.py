"""Following a job live: subscribe first, then send the current state, then every event until the end.

Subscribing before reading the state means nothing published between the two is missed (a duplicate
state is harmless: every event is a full snapshot of what it describes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from imageextract.services import progress


async def follow(runtime: Any, job_id: Any, *, heartbeat: float | None = None) -> AsyncIterator[dict[str, Any] | None]:
    """Yield job and item events; None every `heartbeat` seconds of silence; stop after the terminal event."""
    async with runtime.events.subscribe(progress.channel(job_id)) as subscription:
        current = await progress.snapshot(job_id)
        for event in current:
            yield event
        if current[0]["status"] in progress.TERMINAL:
            return
        last_beat = time.monotonic()
        while True:
            timeout = None if heartbeat is None else max(0.0, heartbeat - (time.monotonic() - last_beat))
            try:
                message = await subscription.get(timeout=timeout)
            except TimeoutError:
                message = None
            if message is None:
                last_beat = time.monotonic()
                if heartbeat is not None:
                    yield None
                continue
            yield message
            if message.get("event") == "job" and message.get("status") in progress.TERMINAL:
                return


def sse_shape(message: dict[str, Any]) -> dict[str, Any]:
    """The documented SSE data objects: `{"status": ..., "progress": ...}` for the job, `{"item": {...}}` for items."""
    if message.get("event") == "item":
        return {"item": message["item"]}
    return {k: v for k, v in message.items() if k != "event"}
