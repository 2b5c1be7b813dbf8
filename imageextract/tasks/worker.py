"""`imageextract worker`: Dramatiq worker processes for the Redis broker.

Each process runs one event loop thread that owns the database pool, storage and pub/sub (opened by the same
`open_runtime` as the API), and Dramatiq worker threads whose actors run their coroutines on that loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any

import dramatiq

from imageextract import logs
from imageextract.config import Settings
from imageextract.runtime import open_runtime, settle_heap
from imageextract.tasks.bridge import LoopThread

log = logging.getLogger("imageextract.worker")
WORKER_TIMEOUT_MS = 100


def _worker_main(settings: Settings, threads: int) -> int:

    logs.configure(settings.log_level)
    loop_thread = LoopThread()
    bridge = loop_thread.start()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def hold() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        async with open_runtime(settings, role="worker", bridge=bridge) as runtime:
            holder["runtime"] = runtime
            ready.set()
            await stop.wait()

    future = asyncio.run_coroutine_threadsafe(hold(), loop_thread.loop)
    while not ready.wait(0.2):
        if future.done():
            future.result()  # raises the start-up error
            return 1
    runtime = holder["runtime"]
    # Idle consumers wait on their queue's wake-up list (tasks.broker.WakingRedisBroker), not on this timeout;
    # it bounds how long an idle worker thread takes to notice a stop.
    worker = dramatiq.Worker(runtime.broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS)
    worker.start()
    settle_heap()
    log.info("worker ready: %d threads", threads)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    log.info("worker stopping")
    worker.stop(timeout=30_000)
    loop_thread.loop.call_soon_threadsafe(holder["stop"].set)
    future.result(timeout=30)
    loop_thread.stop()
    return 0


def _child(settings_json: str, threads: int) -> None:
    settings = Settings.model_validate_json(settings_json)
    sys.exit(_worker_main(settings, threads))


def run_worker(settings: Settings, *, processes: int | None = None, threads: int | None = None) -> int:
    if not settings.redis_url:
        print("imageextract worker needs IMAGEEXTRACT_REDIS_URL (the embedded default runs its worker "
              "inside `imageextract serve`)", file=sys.stderr)
        return 2
    n = processes or settings.worker_processes
    t = threads or settings.worker_threads
    if n <= 1:
        return _worker_main(settings, t)
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_child, args=(settings.model_dump_json(), t), daemon=False) for _ in range(n)]
    for child in children:
        child.start()

    def forward(signum: int, frame: Any) -> None:
        for child in children:
            if child.is_alive() and child.pid:

                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
    return max((c.exitcode or 0) for c in children)
