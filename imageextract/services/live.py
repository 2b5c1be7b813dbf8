"""Following a job live: subscribe first, then send the current state, then every change until the end.

Order of a stream, for a live job and for a finished one alike: the job's state (when it is not terminal
yet), then its items, then every change, and the terminal job event last of all. Nothing is sent twice:
subscribing before reading the state means an event published between the two arrives as well, so each
job or item event is sent only when it is newer than what this stream already sent for it. Every event
is a full snapshot of what it describes, and the states of a job and of an item only move forward, so
"newer" is a rank (see `_item_rank`, `_job_rank`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from imageextract.services import progress

_OPEN_ITEM = {"processing": 0, "queued": 1, "pending": 1}
_JOB = {"pending": 0, "queued": 0, "processing": 1}


def _item_rank(item: dict[str, Any]) -> tuple[int, int]:
    """An item goes queued (attempts n) -> processing (n + 1) -> done/failed, or back to queued for a retry
    (still n + 1): within one attempt count, processing < queued < terminal."""
    return int(item.get("attempts") or 0), _OPEN_ITEM.get(item.get("status") or "", 2)


def _job_rank(job: dict[str, Any]) -> tuple[int, int]:
    return _JOB.get(job.get("status") or "", 2), int(job.get("completed_items") or 0)


class _Sent:
    """What this stream has sent: the last job event and the last event of each item."""

    def __init__(self) -> None:
        self.job: dict[str, Any] | None = None
        self.items: dict[str, dict[str, Any]] = {}

    def is_new(self, message: dict[str, Any]) -> bool:
        if message.get("event") == "item":
            item = message["item"]
            last = self.items.get(item["id"])
            if last is not None and (_item_rank(item) < _item_rank(last) or item == last):
                return False
            self.items[item["id"]] = item
            return True
        if self.job is not None and (_job_rank(message) < _job_rank(self.job) or message == self.job):
            return False
        self.job = message
        return True

    def open_items(self) -> bool:
        return any(i.get("status") not in progress.TERMINAL for i in self.items.values())


def _is_terminal(message: dict[str, Any]) -> bool:
    return message.get("event") == "job" and message.get("status") in progress.TERMINAL


async def follow(runtime: Any, job_id: Any, *, heartbeat: float | None = None) -> AsyncIterator[dict[str, Any] | None]:
    """Yield job and item events; None every `heartbeat` seconds of silence; stop after the terminal event."""
    async for batch in follow_batches(runtime, job_id, heartbeat=heartbeat):
        if batch is None:
            yield None
            continue
        for message in batch:
            yield message


async def follow_batches(runtime: Any, job_id: Any, *,
                         heartbeat: float | None = None) -> AsyncIterator[list[dict[str, Any]] | None]:
    """`follow`, the events that are ready at the same moment given together (the state and items a stream
    opens with; an item's last event and its job's terminal event, published one after the other): a
    writer sends each batch as one write, and its reader wakes once for it."""
    sent = _Sent()
    async with runtime.events.subscribe(progress.channel(job_id)) as subscription:
        state, *items = await progress.snapshot(job_id)
        opening = [state] if not _is_terminal(state) and sent.is_new(state) else []
        opening += [event for event in items if sent.is_new(event)]
        if _is_terminal(state):
            sent.is_new(state)
            yield [*opening, state]
            return
        if opening:
            yield opening
        last_beat = time.monotonic()
        while True:
            timeout = None if heartbeat is None else max(0.0, heartbeat - (time.monotonic() - last_beat))
            try:
                message: dict[str, Any] | None = await subscription.get(timeout=timeout)
            except TimeoutError:
                message = None
            if message is None:
                last_beat = time.monotonic()
                if heartbeat is not None:
                    yield None
                continue
            batch: list[dict[str, Any]] = []
            while message is not None:
                if _is_terminal(message) and sent.open_items():
                    # Item events may come from other processes: make sure every item's final state precedes
                    # the terminal event (one read, and only when one is missing).
                    batch += [event for event in (await progress.snapshot(job_id))[1:] if sent.is_new(event)]
                if sent.is_new(message):
                    batch.append(message)
                if _is_terminal(message):
                    yield batch
                    # The terminal event woke every stream of the job in one loop turn. Ending this one (the
                    # SSE response's end; a subscription's `complete` and Strawberry's teardown) waits a turn,
                    # so each of them writes the terminal event first: the last of 1,000 GraphQL subscribers
                    # had heard of the end behind 999 teardowns (twice an event's spread).
                    await asyncio.sleep(0)
                    return
                message = subscription.get_nowait()
            if batch:
                yield batch


def sse_shape(message: dict[str, Any]) -> dict[str, Any]:
    """The documented SSE data objects: `{"status": ..., "progress": ...}` for the job, `{"item": {...}}` for items."""
    if message.get("event") == "item":
        return {"item": message["item"]}
    return {k: v for k, v in message.items() if k != "event"}
