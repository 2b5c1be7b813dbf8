"""The Redis broker wakes idle consumers when a message arrives (tasks.broker.WakingRedisBroker).

Dramatiq's own consumer polls an empty queue on a backoff, so a job sent to an idle worker waited for the
next poll. Here an idle fetch blocks on the queue's wake-up list; these tests hold it there far longer than
they wait for it, so they fail if the message is only found by polling.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis

from imageextract.config import Settings
from imageextract.tasks import broker as broker_module
from tests.support import require_redis

# Seconds an idle fetch blocks (under redis-py's 5 s socket timeout); the tests wait at most WOKEN for what a
# wake-up delivers at once, so they fail if the message is only found when the blocking wait ends.
HELD = 4.5
WOKEN = 3.0


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[broker_module.WakingRedisBroker]:
    url = require_redis()
    monkeypatch.setattr(broker_module, "WAKE_WAIT_SECONDS", HELD)
    namespace = f"ie-test-broker-{secrets.token_hex(4)}"
    built = broker_module.build_broker(Settings(redis_url=url, redis_namespace=namespace))
    assert isinstance(built, broker_module.WakingRedisBroker)
    built.declare_queue("wake-test")
    try:
        yield built
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        built.close()


def _fetch_in_thread(b: broker_module.WakingRedisBroker, queue: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        out["messages"] = b.do_fetch(queue, 1)
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.3)  # let it find the queue empty and block
    assert thread.is_alive(), f"the fetch did not block on an empty queue: {out}"
    return thread, out


def _message(queue: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})


def test_an_idle_fetch_returns_as_soon_as_a_message_is_sent(broker: broker_module.WakingRedisBroker) -> None:
    thread, out = _fetch_in_thread(broker, "wake-test")
    sent = broker.enqueue(_message("wake-test"))
    thread.join(timeout=WOKEN)
    assert not thread.is_alive(), "the idle fetch was not woken by the new message"
    assert [dramatiq.Message.decode(m).message_id for m in out["messages"]] == [sent.message_id]
    assert out["seconds"] < HELD


def test_a_delayed_message_wakes_the_delay_queue_consumer(broker: broker_module.WakingRedisBroker) -> None:
    delay_queue = dramatiq.common.dq_name("wake-test")
    thread, out = _fetch_in_thread(broker, delay_queue)
    sent = broker.enqueue(_message("wake-test"), delay=60_000)
    thread.join(timeout=WOKEN)
    assert not thread.is_alive(), "the delay queue's idle fetch was not woken"
    assert [dramatiq.Message.decode(m).message_id for m in out["messages"]] == [sent.message_id]


def test_unclaimed_wake_tokens_are_bounded(broker: broker_module.WakingRedisBroker) -> None:
    for _ in range(broker_module.WAKE_TOKENS_KEPT + 40):
        broker.enqueue(_message("wake-test"))
    assert broker.client.llen(broker.wake_key("wake-test")) == broker_module.WAKE_TOKENS_KEPT
    # Every message is still there to fetch, whatever happened to the tokens.
    assert len(broker.do_fetch("wake-test", 500)) == broker_module.WAKE_TOKENS_KEPT + 40


def test_enqueue_survives_a_redis_that_lost_its_scripts(broker: broker_module.WakingRedisBroker) -> None:
    """The enqueue script runs by its hash in the same round trip as the wake-up token; after SCRIPT FLUSH
    (or a Redis restart) the message is still enqueued, once, and still wakes an idle consumer."""
    broker.client.script_flush()
    thread, out = _fetch_in_thread(broker, "wake-test")
    sent = broker.enqueue(_message("wake-test"))
    thread.join(timeout=WOKEN)
    assert not thread.is_alive() and out["seconds"] < WOKEN, out
    assert [dramatiq.Message.decode(m).message_id for m in out["messages"]] == [sent.message_id]
    broker.enqueue(_message("wake-test"))  # the script is back: the next one takes the one-trip path
    assert len(broker.do_fetch("wake-test", 10)) == 1


def test_a_worker_runs_a_message_sent_while_it_idles(broker: broker_module.WakingRedisBroker) -> None:
    """A real Dramatiq worker on the broker: idle long enough to be blocked on the wake-up list, it still
    runs a message sent then, long before the blocking wait would have ended."""
    done = threading.Event()
    dramatiq.actor(lambda: done.set(), actor_name="wake_probe", queue_name="wake-test", broker=broker)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        time.sleep(0.5)
        broker.actors["wake_probe"].send()
        assert done.wait(timeout=WOKEN), "the idle worker did not run the message"
    finally:
        _stop(worker, broker, ["wake-test", dramatiq.common.dq_name("wake-test")])


def _stop(worker: dramatiq.Worker, b: broker_module.WakingRedisBroker, queues: list[str]) -> None:
    """Stop the worker; its consumers sit in a long blocking wait, so wake them until they have seen the stop."""
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 10_000}, daemon=True)
    stopper.start()
    while stopper.is_alive():
        for queue in queues:
            b.client.lpush(b.wake_key(queue), 1)
        stopper.join(timeout=0.1)


async def test_a_slow_redis_holds_the_sender_not_the_event_loop(broker: broker_module.WakingRedisBroker) -> None:
    """Messages after a commit (services.unit_of_work.send_messages) wait for Redis in a thread: with Redis
    holding writes for a second, the event loop keeps serving everything else meanwhile, and the message is
    still enqueued once when Redis answers."""
    import asyncio

    from imageextract.runtime import Runtime
    from imageextract.services.unit_of_work import Message, send_messages

    runtime = Runtime(settings=Settings(redis_url=require_redis(), redis_namespace=broker.namespace))
    runtime.broker = broker
    runtime.tasks = broker_module.TaskQueue(broker)
    runtime.tasks.declare("loop_probe", lambda: None, queue="wake-test")
    assert runtime.enqueue_blocks
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    pauser = redis.Redis.from_url(require_redis())
    try:
        pauser.execute_command("CLIENT", "PAUSE", 1000, "WRITE")  # scripts and LPUSH wait; reads do not
        started, before = time.monotonic(), ticks
        await send_messages(runtime, [Message("loop_probe", ())])
        held, ticked = time.monotonic() - started, ticks - before
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
        pauser.close()
        ticker.cancel()
    assert held >= 0.5, f"Redis did not hold the enqueue ({held:.2f} s): the test proves nothing"
    assert ticked >= 20, f"the event loop ran {ticked} times in {held:.2f} s while the enqueue waited"
    assert [dramatiq.Message.decode(m).actor_name for m in broker.do_fetch("wake-test", 10)] == ["loop_probe"]
