"""Broker factory and actor registration. Actors are declared per broker (no global broker, nothing at import)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from imageextract.config import Settings

if TYPE_CHECKING:
    from imageextract.tasks.bridge import AsyncBridge

log = logging.getLogger("imageextract.tasks")

QUEUE_ITEMS = "items"
QUEUE_JOBS = "jobs"
QUEUE_WEBHOOKS = "webhooks"

# Errors worth retrying are infrastructure faults (database, storage, broker hiccups). Extraction failures
# are data: the pipeline records them on the item and the actor returns normally.
MAX_RETRIES = 5
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 60_000


def _middleware() -> list[Any]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=30 * 60 * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        # A short heartbeat timeout lets another worker take over the messages of a killed one sooner.
        return RedisBroker(url=settings.redis_url, middleware=_middleware(), namespace=settings.redis_namespace,
                           heartbeat_timeout=30_000)
    return StubBroker(middleware=_middleware())


class TaskQueue:
    """The actors of one broker, and `send(name, *args, delay=ms)` to enqueue by name."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.actors: dict[str, dramatiq.Actor[Any, Any]] = {}

    def declare(self, name: str, fn: Callable[..., Any], *, queue: str, **options: Any) -> None:
        self.actors[name] = dramatiq.actor(fn, actor_name=name, queue_name=queue, broker=self.broker, **options)

    def send(self, name: str, *args: Any, delay: int | None = None) -> None:
        actor = self.actors[name]
        if delay:
            actor.send_with_options(args=args, delay=delay)
        else:
            actor.send(*args)


def register_actors(broker: dramatiq.Broker, bridge: AsyncBridge, runtime: Any) -> TaskQueue:
    """Declare every actor on `broker`; each wraps one service call run on the bridge's loop."""
    from imageextract.tasks import actors

    queue = TaskQueue(broker)
    actors.declare_all(queue, bridge, runtime)
    return queue
