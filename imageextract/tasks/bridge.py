"""Run coroutines from Dramatiq's worker threads on one event loop that owns the async resources.

In a worker process that loop is a dedicated loop thread started by `LoopThread`. The embedded shape runs
its messages on the API's own loop without threads (`tasks/loop_worker.py`); the bridge there serves only a
Dramatiq worker started on the in-process broker by hand (the actors declared on it still run through it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from imageextract import logs

T = TypeVar("T")


class AsyncBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        if _running_loop() is self.loop:
            coro.close()
            raise RuntimeError("AsyncBridge.run called from its own loop; await the coroutine instead")
        future = asyncio.run_coroutine_threadsafe(_with_request_id(coro, logs.request_id.get()), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


async def _with_request_id(coro: Coroutine[Any, Any, T], rid: str | None) -> T:
    """Carry the calling thread's request id into the task (a task copies the loop thread's context)."""
    if rid is not None:
        logs.request_id.set(rid)
    return await coro


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it exists, as uvicorn runs the API on: asyncio's own selector loop costs several
    times its CPU per callback, and a worker's loop runs a few hundred callbacks per item."""
    try:
        import uvloop
    except ImportError:  # no uvloop on this platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """A daemon thread running an event loop forever (for worker processes)."""

    def __init__(self, name: str = "imageextract-loop") -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> AsyncBridge:
        self._thread.start()
        return AsyncBridge(self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
