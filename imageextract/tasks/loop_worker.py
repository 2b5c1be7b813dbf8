"""The embedded shape's worker: Dramatiq's in-process queues, consumed on the API's own event loop.

In the embedded shape (one process, the in-process broker) every actor's coroutine runs on the API's loop,
which owns the database, storage and pub/sub. Dramatiq's `Worker` got each message there by three thread
wake-ups: its consumer thread, a worker thread, and the bridge back to the loop (`tasks/bridge.py`), on
every item's way from its submission to its extraction: 0.8 ms with the process idle, 2-4 ms when the loop
was busy answering the submission and opening the client's event stream (the threads wait for the GIL).
Here `LoopBroker.enqueue` wakes the `LoopWorker`, which runs the message as a task of the loop at once; at
most `concurrency` messages run at a time, across every queue, as Dramatiq's worker threads bounded them.

Dramatiq's semantics are kept by calling its middleware around each message as its `Worker` does
(`before_process_message`, `after_process_message` with the result or the exception, `after_skip_message`):
Retries (backoff, max retries, dead letters), AgeLimit, Callbacks and Pipelines. TimeLimit and
ShutdownNotifications work by raising an exception asynchronously in the worker thread, which here would be
the event loop's: the broker is built without them, and the time limit is each message's own deadline
(`asyncio.timeout`), reported to the middleware as Dramatiq's `TimeLimitExceeded`. A delayed message waits
on the loop's timer until its eta, then goes to its queue, as Dramatiq's consumer moves it. The broker is a
`StubBroker`: `broker.join(queue)` waits until the worker has finished what was sent.

The worker processes of the scaled shape (Redis) keep Dramatiq's own `Worker` (`tasks/worker.py`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from queue import Empty, Queue
from typing import Any

from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, q_name
from dramatiq.errors import Retry
from dramatiq.message import Message
from dramatiq.middleware import SkipMessage, TimeLimitExceeded

from imageextract import logs

log = logging.getLogger("imageextract.tasks")

Handler = Callable[..., Awaitable[Any]]


class LoopBroker(StubBroker):
    """A StubBroker that tells its listener (the loop worker) of every message it enqueues."""

    def __init__(self, middleware: list[Any] | None = None) -> None:
        super().__init__(middleware)
        self.on_enqueue: Callable[[], None] | None = None

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        sent = super().enqueue(message, delay=delay)
        if self.on_enqueue is not None:
            self.on_enqueue()
        return sent


class _Proxy(MessageProxy):
    """Keeps its exception after processing, as the StubBroker's own proxy does (`broker.join` re-raises it)."""

    def clear_exception(self) -> None:
        pass


class LoopWorker:
    """Runs the messages of `broker`'s queues on the running event loop: `handlers[actor_name](*args)`."""

    def __init__(self, broker: LoopBroker, handlers: Mapping[str, Handler], *, concurrency: int,
                 time_limit_ms: int) -> None:
        self.broker = broker
        self.handlers = handlers
        self.concurrency = max(1, concurrency)
        self.time_limit = time_limit_ms / 1000
        self.running: set[asyncio.Task[None]] = set()
        self._delayed: dict[int, asyncio.TimerHandle] = {}
        self._timers = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._woken = False
        self._stopping = False
        self._turn = 0  # round robin over the queues

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.broker.on_enqueue = self.wake
        self.wake()

    def wake(self) -> None:
        """A message was enqueued (from any thread): look at the queues on the loop's next round."""
        loop = self._loop
        if loop is None or self._woken or self._stopping:
            return
        self._woken = True
        if threading.get_ident() == self._thread:
            loop.call_soon(self._pump)
        else:
            loop.call_soon_threadsafe(self._pump)

    async def stop(self, timeout_ms: int) -> None:
        """Take no more messages; let the running ones finish for up to `timeout_ms`, then cancel them. What is
        still queued or delayed stays in memory and ends with the process: the reconciler sends every
        unfinished item again from the database."""
        self._stopping = True
        self.broker.on_enqueue = None
        for timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()
        if self.running:
            _, late = await asyncio.wait(set(self.running), timeout=timeout_ms / 1000)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)

    # The queues --------------------------------------------------------------------------------------

    def _pump(self) -> None:
        self._woken = False
        if self._stopping:
            return
        for name in self.broker.delay_queues:
            self._hold_delayed(self.broker.queues[name])
        names = [name for name in self.broker.queues if name not in self.broker.delay_queues]
        idle = 0
        while len(self.running) < self.concurrency and names and idle < len(names):
            name = names[self._turn % len(names)]
            self._turn += 1
            queue = self.broker.queues[name]
            try:
                data = queue.get_nowait()
            except Empty:
                idle += 1
                continue
            idle = 0
            message = _Proxy(Message.decode(data))
            task = asyncio.get_running_loop().create_task(self._process(name, queue, message))
            self.running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:  # _process catches what the actor raises
            log.error("message task failed", exc_info=task.exception())
        self.wake()

    def _hold_delayed(self, queue: Queue[bytes]) -> None:
        """Each delayed message waits on a timer until its eta, then goes to its own queue."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = queue.get_nowait()
            except Empty:
                return
            message = _Proxy(Message.decode(data))
            eta = message.options.get("eta")
            wait = max(0, (eta if isinstance(eta, int | float) else 0) - current_millis()) / 1000
            self._timers += 1
            self._delayed[self._timers] = loop.call_later(wait, self._release, queue, message, self._timers)

    def _release(self, queue: Queue[bytes], message: MessageProxy, timer: int) -> None:
        del self._delayed[timer]
        due = message.copy(queue_name=q_name(message.queue_name))
        due.options.pop("eta", None)
        try:
            self.broker.enqueue(due)
        finally:
            queue.task_done()

    # One message -------------------------------------------------------------------------------------

    async def _process(self, name: str, queue: Queue[bytes], message: MessageProxy) -> None:
        """What Dramatiq's `WorkerThread.process_message` and the consumer's ack or nack do, on the loop."""
        logs.request_id.set(logs.new_id("task"))
        broker = self.broker
        try:
            broker.emit_before("process_message", message)
            if not message.failed:
                await self._run(message)
            broker.emit_after("process_message", message, result=None)
        except SkipMessage as exc:
            if message.failed:
                message.stuff_exception(exc)
            log.warning("Message %s was skipped.", message)
            broker.emit_after("skip_message", message)
        except BaseException as exc:  # as Dramatiq's worker: TimeLimitExceeded is a BaseException
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
                raise  # the worker stops: the message ends with the process (see `stop`)
            message.stuff_exception(exc)
            if not isinstance(exc, Retry):
                log.error("Failed to process message %s with unhandled exception.", message, exc_info=True)
            broker.emit_after("process_message", message, exception=exc)  # Retries: sent again, or failed
        finally:
            if message.failed:
                broker.dead_letters_by_queue[name].append(message)
            queue.task_done()

    async def _run(self, message: MessageProxy) -> None:
        handler = self.handlers[message.actor_name]
        deadline = asyncio.timeout(self.time_limit)
        try:
            async with deadline:
                await handler(*message.args, **message.kwargs)
        except TimeoutError as exc:
            if deadline.expired():
                raise TimeLimitExceeded(f"{message.actor_name} ran longer than {self.time_limit:.0f} s") from exc
            raise
