"""One transaction plus what must happen only after it commits: messages to actors and events to publish.

    async with unit_of_work(runtime) as uow:
        job = await Job.create(..., using_db=uow.conn)
        uow.enqueue("process_item", item_id)      # buffered; sent after COMMIT, dropped on rollback
        uow.after_commit(lambda: publish(...))    # same rule

A worker can never see a message for a row it cannot read yet, and a rolled-back request sends nothing.
Sending is retried with backoff; if the broker stays unreachable, a background task keeps retrying (the
reconciler remains the last resort), so a job accepted while the broker blinks starts when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tortoise.transactions import in_transaction

log = logging.getLogger("imageextract.uow")

# Seconds before each further try while the request waits, then in the background.
INLINE_BACKOFF = (0.05, 0.2)
BACKGROUND_BACKOFF = (0.5, 1, 2, 5, 10, 20, 30, 30, 60, 60, 120, 120, 300)


@dataclass(frozen=True)
class Message:
    actor: str
    args: tuple[Any, ...]
    delay: int | None = None  # milliseconds


@dataclass
class UnitOfWork:
    runtime: Any
    conn: Any = None
    messages: list[Message] = field(default_factory=list)
    callbacks: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def enqueue(self, actor: str, *args: Any, delay: int | None = None) -> None:
        self.messages.append(Message(actor, args, delay))

    def after_commit(self, callback: Callable[[], Awaitable[Any]]) -> None:
        self.callbacks.append(callback)

    async def flush(self) -> None:
        messages, self.messages = self.messages, []
        callbacks, self.callbacks = self.callbacks, []
        await send_messages(self.runtime, messages)
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("after-commit callback failed")


@contextlib.asynccontextmanager
async def unit_of_work(runtime: Any) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(runtime=runtime)
    async with in_transaction() as conn:
        uow.conn = conn
        yield uow
    await uow.flush()


def _send(runtime: Any, message: Message) -> None:
    runtime.enqueue(message.actor, *message.args, delay=message.delay)


async def send_messages(runtime: Any, messages: list[Message]) -> None:
    """Send each message; what the broker refuses is retried inline briefly, then in the background."""
    pending = list(messages)
    for pause in (0.0, *INLINE_BACKOFF):
        if not pending:
            return
        if pause:
            await asyncio.sleep(pause)
        pending = await _try_send_off_loop(runtime, pending)
    if pending:
        log.warning("broker unreachable: %d message(s) handed to background retry", len(pending))
        spawn = getattr(runtime, "spawn", None)
        if spawn is not None:
            spawn(_retry_in_background(runtime, pending))


async def _try_send_off_loop(runtime: Any, messages: list[Message]) -> list[Message]:
    """`_try_send`, off the event loop when the broker is across the network. Dramatiq's Redis broker
    enqueues with a blocking round trip: on the loop, each accepted job stopped every other request for it,
    and a Redis slowed by a busy machine (200 jobs posted at once) held the loop about 1 ms a message. A
    thread of the loop's default executor waits instead (the calls are thread-safe: Dramatiq's workers
    enqueue from their threads). The in-process broker's enqueue is a queue put, made here."""
    if getattr(runtime, "enqueue_blocks", False):
        return await asyncio.to_thread(_try_send, runtime, messages)
    return _try_send(runtime, messages)


def _try_send(runtime: Any, messages: list[Message]) -> list[Message]:
    failed: list[Message] = []
    for message in messages:
        try:
            _send(runtime, message)
        except Exception as exc:
            log.warning("enqueue %s failed: %s", message.actor, exc)
            failed.append(message)
    return failed


async def _retry_in_background(runtime: Any, pending: list[Message]) -> None:
    for pause in BACKGROUND_BACKOFF:
        await asyncio.sleep(pause)
        pending = await _try_send_off_loop(runtime, pending)
        if not pending:
            log.info("broker back: queued messages sent")
            return
    log.error("gave up sending %d message(s); the reconciler will recover them", len(pending))
