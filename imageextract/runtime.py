"""The process runtime: settings plus the connections a process holds (database, storage, pub/sub, broker).

`open_runtime` is used by the API's lifespan and by worker processes alike, so both wire things the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from imageextract import db
from imageextract.config import Settings

log = logging.getLogger("imageextract.runtime")


@dataclass
class Runtime:
    settings: Settings
    storage: Any = None
    events: Any = None
    broker: Any = None
    tasks: Any = None  # TaskQueue
    worker: Any = None  # embedded dramatiq.Worker
    terminal_hooks: list[Callable[[Any, Any], Awaitable[None]]] = field(default_factory=list)
    _background: list[asyncio.Task[Any]] = field(default_factory=list)

    def enqueue(self, actor_name: str, *args: Any, delay: int | None = None) -> None:
        if self.tasks is None:
            raise RuntimeError("No task queue in this runtime")
        self.tasks.send(actor_name, *args, delay=delay)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` in the background for the life of this runtime (cancelled when it closes)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.append(task)
        task.add_done_callback(lambda t: self._background.remove(t) if t in self._background else None)
        return task

    def context(self) -> Any:
        from imageextract.context import Context

        return Context(settings=self.settings, services=self, enqueue=self.enqueue)


async def _reconcile_forever(runtime: Runtime) -> None:
    from imageextract.services import exports, pipeline

    while True:
        await asyncio.sleep(runtime.settings.reconcile_interval_seconds)
        try:
            result = await pipeline.reconcile(runtime)
            result |= {f"exports_{k}": v for k, v in (await exports.reconcile(runtime)).items()}
            if any(result.values()):
                log.info("reconciler: %s", result)
        except Exception:
            log.exception("reconciler round failed")


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, *, role: str, bridge: Any = None,
                       runtime: Runtime | None = None) -> AsyncIterator[Runtime]:
    """Open everything for `role` ("api" or "worker"). In the API with the in-process broker, worker threads
    run inside this process and their coroutines run on this loop."""
    from imageextract.events import build_pubsub
    from imageextract.storage import build_storage
    from imageextract.tasks.bridge import AsyncBridge
    from imageextract.tasks.broker import build_broker, register_actors

    runtime = runtime or Runtime(settings=settings)
    await db.init_db(settings)
    try:
        runtime.storage = build_storage(settings)
        await runtime.storage.open()
        runtime.events = build_pubsub(settings)
        await runtime.events.open()
        from imageextract.services.webhook_events import on_job_terminal

        runtime.terminal_hooks.append(on_job_terminal)
        runtime.broker = build_broker(settings)
        loop_bridge = bridge or AsyncBridge(asyncio.get_running_loop())
        runtime.tasks = register_actors(runtime.broker, loop_bridge, runtime)
        embedded = role == "api" and settings.redis_url is None and settings.embedded_worker
        if embedded:
            import dramatiq

            runtime.worker = dramatiq.Worker(runtime.broker, worker_threads=settings.worker_threads)
            runtime.worker.start()
        if embedded or role == "worker":
            runtime._background.append(asyncio.create_task(_reconcile_forever(runtime)))
        yield runtime
    finally:
        for task in runtime._background:
            task.cancel()
        if runtime.worker is not None:
            await asyncio.to_thread(runtime.worker.stop, 10_000)
        if runtime.broker is not None:
            runtime.broker.close()
        if runtime.events is not None:
            await runtime.events.close()
        if runtime.storage is not None:
            await runtime.storage.close()
        await db.close_db()
