"""The process runtime: settings plus the connections a process holds (database, storage, pub/sub, broker).

`open_runtime` is used by the API's lifespan and by worker processes alike, so both wire things the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from imageextract import db
from imageextract.config import Settings
from imageextract.context import Context
from imageextract.events import PubSub, build_pubsub
from imageextract.services import billing, exports, pipeline, retention
from imageextract.services.webhook_events import on_job_terminal
from imageextract.storage import Storage, build_storage
from imageextract.tasks.bridge import AsyncBridge
from imageextract.tasks.broker import build_broker, loop_worker, register_actors

if TYPE_CHECKING:
    from imageextract.tasks.broker import TaskQueue
    from imageextract.tasks.loop_worker import LoopWorker

log = logging.getLogger("imageextract.runtime")


@dataclass
class Runtime:
    """What a process holds. `storage`, `events`, `broker` and `tasks` exist once `open_runtime` opened them."""

    settings: Settings
    storage: Storage = field(init=False)
    events: PubSub = field(init=False)
    broker: dramatiq.Broker = field(init=False)
    tasks: TaskQueue = field(init=False)
    worker: LoopWorker | None = None  # the embedded worker (in-process broker), on this process's loop
    terminal_hooks: list[Callable[[Any, Any], Awaitable[None]]] = field(default_factory=list)
    _background: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def enqueue_blocks(self) -> bool:
        """Whether an enqueue waits on the network (Redis), rather than on an in-process queue."""
        return not isinstance(getattr(self, "broker", None), StubBroker | None)

    def enqueue(self, actor_name: str, *args: Any, delay: int | None = None) -> None:
        tasks = getattr(self, "tasks", None)
        if tasks is None:
            raise RuntimeError("No task queue in this runtime")
        tasks.send(actor_name, *args, delay=delay)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` in the background for the life of this runtime (cancelled when it closes)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.append(task)
        task.add_done_callback(lambda t: self._background.remove(t) if t in self._background else None)
        return task

    def context(self) -> Context:
        return Context(settings=self.settings, services=self, enqueue=self.enqueue)


def settle_heap() -> None:
    """For a server process, once it holds what it keeps for life (modules, the GraphQL schema, the ORM's
    models): collect, then take those objects out of the collector's sight (`gc.freeze`). Otherwise every
    full collection walks them all again: about 140,000 objects, 50 ms with the event loop stopped, a few
    times a second under load. Not for tests, whose garbage would be kept for good."""
    gc.collect()
    gc.freeze()


async def _reconcile_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.settings.reconcile_interval_seconds)
        try:
            result = await pipeline.reconcile(runtime)
            result |= {f"exports_{k}": v for k, v in (await exports.reconcile(runtime)).items()}
            if any(result.values()):
                log.info("reconciler: %s", result)
        except Exception:
            log.exception("reconciler round failed")
        try:
            ended = await billing.settle_ended()  # subscriptions whose period ran out: back to free
            if ended:
                log.info("billing: %d account(s) back on free", ended)
        except Exception:
            log.exception("billing settle round failed")


async def _sweep_retention_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.settings.retention_interval_seconds)
        try:
            await retention.sweep(runtime)
        except Exception:
            log.exception("retention sweep failed")


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, *, role: str, bridge: Any = None,
                       runtime: Runtime | None = None) -> AsyncIterator[Runtime]:
    """Open everything for `role` ("api" or "worker"). In the API with the in-process broker, the actors run
    on this loop (`tasks/loop_worker.py`)."""

    runtime = runtime or Runtime(settings=settings)
    await db.init_db(settings)
    try:
        runtime.storage = build_storage(settings)
        await runtime.storage.open()
        runtime.events = build_pubsub(settings)
        await runtime.events.open()

        runtime.terminal_hooks.append(on_job_terminal)
        runtime.broker = build_broker(settings)
        loop_bridge = bridge or AsyncBridge(asyncio.get_running_loop())
        runtime.tasks = register_actors(runtime.broker, loop_bridge, runtime)
        embedded = role == "api" and settings.redis_url is None and settings.embedded_worker
        if embedded:
            runtime.worker = loop_worker(runtime.tasks, settings)
            runtime.worker.start()
        if embedded or role == "worker":
            runtime._background.append(asyncio.create_task(_reconcile_forever(runtime)))
            runtime._background.append(asyncio.create_task(_sweep_retention_forever(runtime)))
        yield runtime
    finally:
        for task in runtime._background:
            task.cancel()
        if runtime.worker is not None:
            await runtime.worker.stop(10_000)
        broker: dramatiq.Broker | None = getattr(runtime, "broker", None)
        if broker is not None:
            broker.close()
        events: PubSub | None = getattr(runtime, "events", None)
        if events is not None:
            await events.close()
        storage: Storage | None = getattr(runtime, "storage", None)
        if storage is not None:
            await storage.close()
        await db.close_db()
