"""Both pub/sub backends against one contract; Redis also across two instances (as two processes would be)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imageextract.config import Settings
from imageextract.events import MAX_PENDING, MemoryPubSub, build_pubsub
from imageextract.events.redis import RedisPubSub
from tests.support import require_redis


@pytest.fixture
def namespace() -> str:
    return f"ie-test-{secrets.token_hex(4)}"


async def _open(kind: str, namespace: str) -> Any:
    if kind == "redis":
        bus: Any = RedisPubSub(require_redis(), namespace=namespace)
    else:
        bus = MemoryPubSub()
    await bus.open()
    return bus


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Any]:
    b = await _open(request.param, namespace)
    try:
        yield b
    finally:
        await b.close()


async def test_delivery_in_order_to_every_subscriber_of_the_channel(bus: Any) -> None:
    async with bus.subscribe("job:1") as a, bus.subscribe("job:1") as b, bus.subscribe("job:2") as other:
        for i in range(20):
            await bus.publish("job:1", {"n": i, "event": "item"})
        assert [(await a.get(timeout=5))["n"] for _ in range(20)] == list(range(20))
        assert [(await b.get(timeout=5))["n"] for _ in range(20)] == list(range(20))
        with pytest.raises(TimeoutError):
            await other.get(timeout=0.2)
    assert bus.subscriber_count("job:1") == 0


async def test_values_travel_as_json(bus: Any) -> None:
    import uuid

    job_id = uuid.uuid4()
    async with bus.subscribe("c") as sub:
        await bus.publish("c", {"job_id": job_id, "nested": {"x": [1, 2.5, None, True]}})
        assert await sub.get(timeout=5) == {"job_id": str(job_id), "nested": {"x": [1, 2.5, None, True]}}


async def test_nothing_is_delivered_after_leaving(bus: Any) -> None:
    async with bus.subscribe("c") as sub:
        pass
    await bus.publish("c", {"late": True})
    with pytest.raises(TimeoutError):
        await sub.get(timeout=0.2)


async def test_slow_subscriber_keeps_the_newest(bus: Any) -> None:
    async with bus.subscribe("c") as sub:
        for i in range(MAX_PENDING + 10):
            await bus.publish("c", {"n": i})
        await asyncio.sleep(0.3)  # let the Redis reader drain the socket
        first = await sub.get(timeout=5)
        assert first["n"] == 10 and sub.dropped == 10


async def test_redis_fan_out_across_instances_over_one_connection(namespace: str) -> None:
    api = await _open("redis", namespace)
    worker = await _open("redis", namespace)
    other_deployment = await _open("redis", namespace + "-other")
    try:
        async with contextlib_all([api.subscribe("job:x") for _ in range(200)]) as subs:
            numsub = await api._client.pubsub_numsub(api.prefix + "job:x")
            assert numsub[0][1] == 1, "200 local subscribers share one Redis subscription"
            await other_deployment.publish("job:x", {"from": "elsewhere"})
            await worker.publish("job:x", {"from": "worker"})
            got = await asyncio.gather(*(s.get(timeout=5) for s in subs))
            assert all(m == {"from": "worker"} for m in got), "namespaces keep deployments apart"
        numsub = await api._client.pubsub_numsub(api.prefix + "job:x")
        assert numsub[0][1] == 0
    finally:
        for b in (api, worker, other_deployment):
            await b.close()


def contextlib_all(managers: list[Any]) -> Any:
    import contextlib

    @contextlib.asynccontextmanager
    async def entered() -> AsyncIterator[list[Any]]:
        async with contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(m) for m in managers]

    return entered()


def test_build_pubsub_follows_settings(tmp_path: Any) -> None:
    assert isinstance(build_pubsub(Settings(data_dir=tmp_path)), MemoryPubSub)
    assert isinstance(build_pubsub(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")), RedisPubSub)


async def test_redis_publish_returns_at_once_and_close_sends_what_is_left(namespace: str) -> None:
    """A publisher's events go out in order, pipelined, after `publish` returned; closing right after the
    last publish still delivers them all (a worker stopping after its last item)."""
    api = await _open("redis", namespace)
    worker = await _open("redis", namespace)
    try:
        async with api.subscribe("job:y") as sub:
            for i in range(300):
                await worker.publish("job:y", {"n": i})
            assert worker._outbox, "publish queued the events rather than waiting for Redis"
            await worker.close()
            assert [(await sub.get(timeout=5))["n"] for _ in range(300)] == list(range(300))
    finally:
        await api.close()
        await worker.close()


async def test_redis_down_drops_progress_without_failing_or_blocking_the_publisher() -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    bus = RedisPubSub(f"redis://127.0.0.1:{dead}/0", namespace="ie-test-down")
    await bus.open()
    for i in range(50):
        await bus.publish("job:z", {"n": i})  # progress is best effort: no error reaches the job
    await bus.close()  # waits for the failed flush, which logged and dropped the events
    assert not bus._outbox and bus._flusher is None
