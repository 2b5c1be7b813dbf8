"""Broker factory and actor registration. Actors are declared per broker (no global broker, nothing at import)."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit
from redis.exceptions import NoScriptError

from imageextract import logs
from imageextract.config import Settings
from imageextract.tasks.loop_worker import Handler, LoopBroker, LoopWorker
from imageextract.tasks.registry import ACTOR_MODULES, ACTORS, ActorSpec

if TYPE_CHECKING:
    from imageextract.tasks.bridge import AsyncBridge

log = logging.getLogger("imageextract.tasks")

# A hang inside extraction is bounded by the engine (fetch timeouts, sandbox deadline); this is the backstop.
BRIDGE_TIMEOUT = 60 * 60.0

# Errors worth retrying are infrastructure faults (database, storage, broker hiccups). Extraction failures
# are data: the pipeline records them on the item and the actor returns normally.
MAX_RETRIES = 5
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 60_000


TIME_LIMIT_MS = 30 * 60 * 1000


def _middleware(*, threads: bool = True) -> list[Any]:
    """Dramatiq's middleware for our actors. `threads=False`: without the two that act on worker threads
    (TimeLimit, ShutdownNotifications), for the loop worker (tasks/loop_worker.py) that keeps the time
    limit itself."""
    own_threads = [TimeLimit(time_limit=TIME_LIMIT_MS), ShutdownNotifications()] if threads else []
    return [
        AgeLimit(),
        *own_threads,
        Callbacks(),
        Pipelines(),
        Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
    ]


# An idle consumer blocks this long on its queue's wake-up list before it looks at the queue again (below
# redis-py's default 5 s socket timeout, which would cut the wait short with an error).
WAKE_WAIT_SECONDS = 1.0
# ... and sleeps at most this long between an empty look and the next (Dramatiq's backoff, capped).
CONSUMER_IDLE_SLEEP_MS = 5
WAKE_TOKENS_KEPT = 64


class WakingRedisBroker(RedisBroker):
    """A RedisBroker whose idle consumers are woken by new messages instead of polling for them.

    Dramatiq's Redis consumer, finding its queue empty, sleeps a growing backoff (up to the worker timeout)
    and polls again, so a message sent to an idle worker waited half that timeout on average (about 50 ms at
    our 100 ms), and a short timeout costs a Lua call per poll per queue. Here every enqueue also pushes a
    token on `<namespace>:<queue>.wake` (the delay queue's own list for delayed messages), and a fetch that
    finds nothing blocks on that list (BLPOP) for up to WAKE_WAIT_SECONDS before looking once more. A token
    is only a hint: a consumer that finds the message without it leaves it for a spurious, harmless wake-up;
    the list is trimmed so unclaimed tokens cannot pile up."""

    def wake_key(self, queue_name: str) -> str:
        return f"{self.namespace}:{queue_name}.wake"

    def do_enqueue(self, queue_name: str, message_id: str, data: bytes) -> None:
        """Dramatiq's enqueue script and the wake-up token in one round trip (RedisBroker.enqueue calls this
        with the delay queue's name for a delayed message). The script runs by its hash, as Dramatiq's own
        dispatch runs it; a Redis that lost its scripts (restart, SCRIPT FLUSH) gets it loaded again."""
        # The arguments RedisBroker._dispatch gives the script (Dramatiq 2.x); tests/services/test_broker.py and
        # tests/scaled fail if they drift from what the script expects.
        dispatch = self.scripts["dispatch"]
        keys = [self.namespace]
        args = ["enqueue", current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                self.dead_message_ttl, self._should_do_maintenance("enqueue"), self._max_unpack_size(),
                message_id, data]
        wake = self.wake_key(queue_name)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(dispatch.sha, len(keys), *keys, *args)
            pipe.lpush(wake, 1)
            pipe.ltrim(wake, 0, WAKE_TOKENS_KEPT - 1)
            sent, *_ = pipe.execute(raise_on_error=False)
        if isinstance(sent, NoScriptError):
            dispatch(keys=keys, args=args)  # loads the script, then runs it: the message is enqueued once
        elif isinstance(sent, Exception):
            raise sent

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        return super().consume(queue_name, prefetch, timeout=min(timeout, CONSUMER_IDLE_SLEEP_MS))

    def do_fetch(self, queue_name: str, prefetch: int) -> list[bytes]:
        fetch = self._dispatch("fetch")
        messages: list[bytes] = fetch(queue_name, prefetch)
        if messages:
            return messages
        self.client.blpop([self.wake_key(queue_name)], timeout=WAKE_WAIT_SECONDS)
        return list(fetch(queue_name, prefetch))


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.redis_url:

        # A short heartbeat timeout lets another worker take over the messages of a killed one sooner.
        return WakingRedisBroker(url=settings.redis_url, middleware=_middleware(),
                                 namespace=settings.redis_namespace, heartbeat_timeout=30_000)
    return LoopBroker(middleware=_middleware(threads=False))


class TaskQueue:
    """The actors of one broker, and `send(name, *args, delay=ms)` to enqueue by name."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.actors: dict[str, dramatiq.Actor[Any, Any]] = {}
        self.handlers: dict[str, Handler] = {}  # each actor's coroutine, bound to the runtime (the loop worker)

    def declare(self, name: str, fn: Callable[..., Any], *, queue: str, **options: Any) -> None:
        self.actors[name] = dramatiq.actor(  # type: ignore[call-overload]
            fn, actor_name=name, queue_name=queue, broker=self.broker, **options)

    def send(self, name: str, *args: Any, delay: int | None = None) -> None:
        actor = self.actors[name]
        if delay:
            actor.send_with_options(args=args, delay=delay)
        else:
            actor.send(*args)


def register_actors(broker: dramatiq.Broker, bridge: AsyncBridge, runtime: Any) -> TaskQueue:
    """Declare every actor of `registry.ACTOR_MODULES` on `broker`; each runs its coroutine on the bridge's loop."""
    for module in ACTOR_MODULES:
        importlib.import_module(module)
    queue = TaskQueue(broker)
    for spec in ACTORS.values():
        queue.declare(spec.name, _bound(spec, bridge, runtime), queue=spec.queue, **spec.options)
        queue.handlers[spec.name] = functools.partial(spec.fn, runtime)
    return queue


def loop_worker(tasks: TaskQueue, settings: Settings) -> LoopWorker:
    """The embedded shape's worker for the in-process broker: `worker_threads` messages at a time, on the loop."""
    if not isinstance(tasks.broker, LoopBroker):
        raise TypeError("the loop worker consumes the in-process broker only")
    return LoopWorker(tasks.broker, tasks.handlers, concurrency=settings.worker_threads, time_limit_ms=TIME_LIMIT_MS)


def _bound(spec: ActorSpec, bridge: AsyncBridge, runtime: Any) -> Callable[..., None]:
    def run(*args: Any) -> None:
        logs.request_id.set(logs.new_id("task"))
        bridge.run(spec.fn(runtime, *args), timeout=BRIDGE_TIMEOUT)

    run.__name__ = spec.name
    return run
