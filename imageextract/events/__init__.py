"""Pub/sub for job progress: workers publish, GraphQL subscriptions and the SSE route subscribe.

Two backends with one contract:
- `MemoryPubSub` (the embedded default): one process, queues on the event loop.
- `RedisPubSub`: any API process sees what any worker published. One Redis connection per process carries
  every subscription (channels are reference-counted), so a thousand websockets cost one connection.

Contract: `subscribe(channel)` is an async context manager; when it has been entered the subscription is
confirmed, so a message published afterwards is delivered (callers read the current state *after*
subscribing and lose nothing). `Subscription.get(timeout)` returns the next message (a JSON object) or raises
TimeoutError. Messages travel as JSON in both backends, so both deliver the same values. A subscriber that
falls more than `max_pending` messages behind loses the oldest ones (it never blocks a publisher).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

log = logging.getLogger("imageextract.events")

MAX_PENDING = 1000


class Subscription:
    """One subscriber's queue of messages on one channel."""

    def __init__(self, channel: str, max_pending: int = MAX_PENDING) -> None:
        self.channel = channel
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_pending)
        self.dropped = 0

    def deliver(self, message: dict[str, Any]) -> None:
        """Queue a parsed message. One parsed object is shared by every local subscriber: read it, never
        change it."""
        if self._queue.full():  # slow consumer: drop the oldest, keep the newest (every event is a full state)
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        if timeout is None:
            return await self._queue.get()
        # In this task (not `wait_for`, which on 3.11 runs the get as a task of its own): a delivery wakes the
        # subscriber in one loop turn, and a wait costs no task.
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def get_nowait(self) -> dict[str, Any] | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


class PubSub(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    def subscribe(self, channel: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...


class MemoryPubSub:
    """In-process fan-out. Publish must be called on the loop that owns the subscribers."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        subscribers = list(self._subscribers.get(channel, ()))
        if not subscribers:
            return
        shared = json.loads(json.dumps(message, default=str))  # the same values the Redis backend delivers
        for subscription in subscribers:
            subscription.deliver(shared)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel)
        self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subs = self._subscribers.get(channel)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))


def build_pubsub(settings: Any) -> PubSub:
    if settings.redis_url:
        from imageextract.events.redis import RedisPubSub

        return RedisPubSub(settings.redis_url, namespace=settings.redis_namespace)
    return MemoryPubSub()


__all__ = ["MAX_PENDING", "MemoryPubSub", "PubSub", "Subscription", "build_pubsub"]
