"""The embedded shape's worker (tasks/loop_worker.py): Dramatiq's in-process queues, run on the event loop.

A real `LoopBroker` with the production middleware (`tasks.broker._middleware(threads=False)`: Retries,
AgeLimit, Callbacks, Pipelines); each actor is declared on it as Dramatiq declares actors (its options are
what the middleware reads), and the worker runs the test's coroutine for it. What is checked is what the
job pipeline relies on: messages run on the loop's own thread however they were sent, at most
`concurrency` at a time, failures retried with backoff and dead-lettered once retries run out (and
`broker.join` re-raises them, as with Dramatiq's worker), delayed messages held until their eta, the time
limit enforced, and a stop that lets running messages finish and then cancels the rest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import TimeLimitExceeded

from imageextract.tasks.broker import _middleware
from imageextract.tasks.loop_worker import LoopBroker, LoopWorker

QUEUE = "items"


class Harness:
    def __init__(self) -> None:
        self.broker = LoopBroker(middleware=_middleware(threads=False))
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.actors: dict[str, dramatiq.Actor[Any, Any]] = {}
        self.worker: LoopWorker | None = None

    def actor(self, name: str, fn: Callable[..., Awaitable[Any]], **options: Any) -> dramatiq.Actor[Any, Any]:
        def never_called(*args: Any) -> None:  # the loop worker runs `fn`; Dramatiq's actor carries the options
            raise AssertionError("the loop worker called the Dramatiq actor's function")

        self.handlers[name] = fn
        self.actors[name] = dramatiq.actor(never_called, actor_name=name, queue_name=QUEUE,  # type: ignore[call-overload]
                                           broker=self.broker, **options)
        return self.actors[name]

    def start(self, *, concurrency: int = 4, time_limit_ms: int = 60_000) -> LoopWorker:
        self.worker = LoopWorker(self.broker, self.handlers, concurrency=concurrency, time_limit_ms=time_limit_ms)
        self.worker.start()
        return self.worker

    async def join(self, *, fail_fast: bool = True) -> None:
        await asyncio.to_thread(self.broker.join, QUEUE, timeout=10_000, fail_fast=fail_fast)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    if h.worker is not None:
        await h.worker.stop(1_000)
    h.broker.close()


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.005)


async def test_messages_run_on_the_loop_thread_however_they_were_sent(harness: Harness) -> None:
    threads: list[tuple[str, int]] = []

    async def record(tag: str) -> None:
        threads.append((tag, threading.get_ident()))

    actor = harness.actor("record", record)
    harness.start()
    actor.send("from the loop")
    await asyncio.to_thread(actor.send, "from another thread")
    await harness.join()
    loop_thread = threading.get_ident()
    assert sorted(threads) == [("from another thread", loop_thread), ("from the loop", loop_thread)]
    assert harness.broker.dead_letters == []


async def test_no_more_than_concurrency_messages_run_at_once(harness: Harness) -> None:
    gate = asyncio.Event()
    running: list[int] = []
    done: list[int] = []
    most = 0

    async def hold(n: int) -> None:
        nonlocal most
        running.append(n)
        most = max(most, len(running))
        await gate.wait()
        running.remove(n)
        done.append(n)

    actor = harness.actor("hold", hold)
    for n in range(10):
        actor.send(n)
    harness.start(concurrency=3)
    await _until(lambda: len(running) == 3, "three messages running")
    await asyncio.sleep(0.05)  # a fourth would have started by now if the bound leaked
    assert len(running) == 3 and harness.broker.queues[QUEUE].qsize() == 7
    gate.set()
    await harness.join()
    assert sorted(done) == list(range(10)) and most == 3
    assert running == [] and harness.worker is not None and not harness.worker.running


async def test_a_failing_message_is_retried_with_backoff_until_it_succeeds(harness: Harness) -> None:
    attempts: list[float] = []

    async def flaky() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError(f"attempt {len(attempts)} fails")

    harness.actor("flaky", flaky, min_backoff=50, max_backoff=60)
    harness.start()
    harness.actors["flaky"].send()
    await harness.join()
    assert len(attempts) == 3
    # Each retry waited for its backoff (Dramatiq's Retries: min_backoff doubling up to max_backoff, then
    # jittered down to no less than half), not at once.
    assert all(later - earlier >= 0.025 for earlier, later in zip(attempts, attempts[1:], strict=False))
    assert harness.broker.dead_letters == []


async def test_a_message_whose_retries_run_out_is_dead_lettered_and_join_raises_its_error(harness: Harness) -> None:
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("always")

    harness.actor("broken", broken, max_retries=1, min_backoff=10, max_backoff=10)
    harness.start()
    harness.actors["broken"].send()
    with pytest.raises(ValueError, match="always"):
        await harness.join()
    assert attempts == 2  # the first run and one retry
    [dead] = harness.broker.dead_letters
    assert dead.actor_name == "broken" and dead.options["retries"] == 2


async def test_a_delayed_message_waits_for_its_eta(harness: Harness) -> None:
    ran: list[float] = []

    async def later() -> None:
        ran.append(time.monotonic())

    actor = harness.actor("later", later)
    harness.start()
    sent = time.monotonic()
    actor.send_with_options(delay=300)
    actor.send_with_options(delay=None)  # an undelayed one sent after it runs first
    await _until(lambda: len(ran) == 1, "the undelayed message ran")
    assert ran[0] - sent < 0.3
    await harness.join()
    assert len(ran) == 2 and ran[1] - sent >= 0.3
    assert harness.broker.queues[f"{QUEUE}.DQ"].unfinished_tasks == 0


async def test_a_message_past_its_time_limit_is_cancelled_and_reported(harness: Harness) -> None:
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    harness.actor("stuck", stuck, max_retries=0)
    harness.start(time_limit_ms=100)
    harness.actors["stuck"].send()
    with pytest.raises(TimeLimitExceeded):
        await harness.join()
    assert cancelled.is_set()
    [dead] = harness.broker.dead_letters
    assert dead.actor_name == "stuck"


async def test_an_actor_timeout_of_its_own_is_an_ordinary_failure(harness: Harness) -> None:
    async def times_out() -> None:
        raise TimeoutError("the actor's own fetch timed out")

    harness.actor("times_out", times_out, max_retries=0)
    harness.start(time_limit_ms=60_000)
    harness.actors["times_out"].send()
    with pytest.raises(TimeoutError, match="own fetch"):
        await harness.join()


async def test_an_expired_message_is_skipped_by_the_age_limit(harness: Harness) -> None:
    ran = False

    async def old() -> None:
        nonlocal ran
        ran = True

    actor = harness.actor("old", old, max_age=1)
    actor.send()
    await asyncio.sleep(0.02)  # older than its max_age before any worker looks
    harness.start()
    await harness.join(fail_fast=False)
    assert not ran
    [dead] = harness.broker.dead_letters
    assert dead.actor_name == "old"


async def test_stop_lets_running_messages_finish_then_cancels_the_rest(harness: Harness) -> None:
    finished: list[str] = []
    cancelled: list[str] = []
    release = asyncio.Event()

    async def work(tag: str) -> None:
        try:
            if tag == "quick":
                await release.wait()
            else:
                await asyncio.sleep(60)
            finished.append(tag)
        except asyncio.CancelledError:
            cancelled.append(tag)
            raise

    actor = harness.actor("work", work)
    worker = harness.start(concurrency=2)
    actor.send("quick")
    actor.send("stuck")
    await _until(lambda: len(worker.running) == 2, "both running")
    asyncio.get_running_loop().call_later(0.05, release.set)
    await worker.stop(500)
    assert finished == ["quick"] and cancelled == ["stuck"] and not worker.running
    # A stopped worker takes nothing more: a message sent now stays queued.
    actor.send("after")
    await asyncio.sleep(0.05)
    assert harness.broker.queues[QUEUE].qsize() == 1 and finished == ["quick"]
    harness.worker = None  # stopped here already
