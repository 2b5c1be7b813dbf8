"""Live progress: SSE and the GraphQL jobProgress subscription over graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import websockets

from tests.jobs.helpers import wait_for_job
from tests.pages import base_url


async def _sse_events(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


async def test_sse_stream_until_done(client: httpx.AsyncClient, account: dict[str, Any],
                                     pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/slow/0.5/2"})
    job_id = r.json()["job_id"]
    events = await asyncio.wait_for(_sse_events(client, job_id, h), 30)
    statuses = [e["status"] for e in events if "status" in e]
    assert statuses[0] in ("queued", "processing")
    assert statuses[-1] == "done"
    assert events[-1]["result_url"] == f"/api/v1/jobs/{job_id}/result"
    assert events[-1]["progress"] == 100
    assert any(e.get("item", {}).get("status") == "done" for e in events)
    # A finished job: its items, then the terminal event, then the stream closes.
    again = await asyncio.wait_for(_sse_events(client, job_id, h), 10)
    assert "item" in again[0] and again[-1]["status"] == "done" and again[-1]["result_url"]


async def test_sse_errors(client: httpx.AsyncClient, account: dict[str, Any], pages: ThreadingHTTPServer,
                          db: Any) -> None:
    from tests.factories import make_account

    r = await client.post("/api/v1/jobs", headers=account["headers"],
                          json={"type": "url", "input": f"{base_url(pages)}/page/1"})
    job_id = r.json()["job_id"]
    other = await make_account()
    r = await client.get(f"/api/v1/jobs/{job_id}/stream", headers=other["headers"])
    assert r.status_code == 403
    r = await client.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000/stream", headers=account["headers"])
    assert r.status_code == 404
    await wait_for_job(client, job_id, account["headers"])


SUBSCRIPTION = """subscription($id: ID!) { jobProgress(jobId: $id) {
  kind status progress resultUrl item { position status imageCount } } }"""


async def _subscribe(ws_url: str, job_id: str, init: dict[str, Any]) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "next":
                received.append(msg["payload"]["data"]["jobProgress"])
            elif msg["type"] == "complete":
                return received
            else:
                raise AssertionError(msg)


async def test_subscription_receives_every_state_change(client: httpx.AsyncClient, account: dict[str, Any],
                                                        pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    urls = [f"{base_url(pages)}/slow/0.3/{n}" for n in (1, 2, 3)]
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": urls})
    job_id = r.json()["job_id"]
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"
    events = await asyncio.wait_for(_subscribe(ws_url, job_id, {"Authorization": h["Authorization"]}), 30)
    jobs = [e for e in events if e["kind"] == "job"]
    assert jobs[-1]["status"] == "done" and jobs[-1]["progress"] == 100
    assert jobs[-1]["resultUrl"] == f"/api/v1/jobs/{job_id}/result"
    final_items = {}
    for e in events:
        if e["kind"] == "item":
            final_items[e["item"]["position"]] = e["item"]
    assert {p: (i["status"], i["imageCount"]) for p, i in final_items.items()} == {
        0: ("done", 1), 1: ("done", 2), 2: ("done", 3)}
    progress = [e["progress"] for e in jobs]
    assert progress == sorted(progress), "progress never goes back"


async def test_subscription_auth(client: httpx.AsyncClient, account: dict[str, Any], pages: ThreadingHTTPServer,
                                 db: Any) -> None:
    from tests.factories import make_account

    r = await client.post("/api/v1/jobs", headers=account["headers"],
                          json={"type": "url", "input": f"{base_url(pages)}/page/1"})
    job_id = r.json()["job_id"]
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"
    # No credentials: accepted, then closed with 4403.
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("expected close")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403
    # Bad key: 4403 too.
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer ie_live_bad"}}))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("expected close")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403
    # Another account's job, or an unknown one: an `error` message for that operation only; the connection
    # and a subscription to the caller's own job on it go on (graphql-transport-ws).
    other = await make_account()
    own = (await client.post("/api/v1/jobs", headers=other["headers"],
                             json={"type": "url", "input": f"{base_url(pages)}/page/2"})).json()["job_id"]
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  additional_headers={"Authorization": other["headers"]["Authorization"]}) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "foreign", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))
        await ws.send(json.dumps({"id": "unknown", "type": "subscribe", "payload": {
            "query": SUBSCRIPTION, "variables": {"id": "00000000-0000-0000-0000-000000000000"}}}))
        await ws.send(json.dumps({"id": "mine", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": own}}}))
        errors: dict[str, list[dict[str, object]]] = {}
        mine_done = False
        while not (mine_done and len(errors) == 2):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if msg["type"] == "error":
                errors[msg["id"]] = msg["payload"]
            elif msg["id"] == "mine" and msg["type"] == "complete":
                mine_done = True
            else:
                assert msg["id"] == "mine", msg
        assert errors["foreign"][0]["extensions"]["code"] == "forbidden"  # type: ignore[index]
        assert errors["unknown"][0]["extensions"]["code"] == "not_found"  # type: ignore[index]
    await wait_for_job(client, job_id, account["headers"])


async def test_a_late_subscriber_gets_the_stored_state_as_the_models_give_it(client: httpx.AsyncClient,
                                                                               account: dict[str, Any]) -> None:
    """What a stream or a subscription sends first (services/progress.snapshot, one statement of plain rows)
    is what the job and item events built from the ORM's models say, field for field, on both engines: a
    partial job with a done item (with warnings), a failed one and a queued one, in position order; then
    the same job done; and SSE on a finished job sends exactly those events."""
    import uuid
    from datetime import UTC, datetime

    from tortoise.exceptions import DoesNotExist

    from imageextract.models import Job, JobItem
    from imageextract.services import progress

    now = datetime.now(UTC)
    job = await Job.create(account_id=account["account_id"], project_id=account["project_id"], type="bulk",
                           status="processing", input={"value": ["a", "b", "c"]}, total_items=3, completed_items=2,
                           image_count=4, failed_image_count=1, credits_used=0, partial=True)
    await JobItem.create(job_id=job.id, position=2, kind="url", source_label="c", status="queued")
    await JobItem.create(job_id=job.id, position=0, kind="url", source_label="a", status="done", attempts=1,
                         image_count=4, failed_image_count=1, duration_ms=120, warnings=["robots: partial"],
                         finished_at=now)
    await JobItem.create(job_id=job.id, position=1, kind="url", source_label="b", status="failed", attempts=3,
                         error_code="fetch_failed", error_message="HTTP 503", finished_at=now)

    async def from_models() -> list[dict[str, Any]]:
        fresh = await Job.get(id=job.id)
        items = await JobItem.filter(job_id=job.id).order_by("position")
        return [progress.job_state(fresh), *(progress.item_event(job.id, i) for i in items)]

    got = await progress.snapshot(job.id)
    assert got == await from_models()
    assert [e["item"]["source_label"] for e in got[1:]] == ["a", "b", "c"]
    assert got[0]["partial"] is True and got[1]["item"]["warnings"] == ["robots: partial"]
    await Job.filter(id=job.id).update(status="done", completed_items=3, credits_used=2, finished_at=now)
    await JobItem.filter(job_id=job.id, position=2).update(status="done", attempts=1)
    got = await progress.snapshot(job.id)
    assert got == await from_models() and got[0]["result_url"] == f"/api/v1/jobs/{job.id}/result"
    sse = await asyncio.wait_for(_sse_events(client, str(job.id), account["headers"]), 30)
    assert sse == [{"item": e["item"]} for e in got[1:]] + [{k: v for k, v in got[0].items() if k != "event"}]
    await Job.filter(id=job.id).update(status="failed", error_code="all_failed", error_message=None)
    assert (await progress.snapshot(job.id))[0] == (await from_models())[0]
    try:
        await progress.snapshot(uuid.uuid4())
    except DoesNotExist:
        pass
    else:
        raise AssertionError("a job that does not exist has no state")


async def test_events_ready_together_come_as_one_batch(account: dict[str, Any]) -> None:
    """`live.follow_batches` (what the SSE route writes, one write per batch): the state and items a stream
    opens with come together; an item's last event and the terminal event, published one after the other,
    come together and end the stream; a terminal event that arrives while an item this stream sent is
    still open is preceded, in the same batch, by that item's stored final state."""
    from types import SimpleNamespace

    from imageextract.events import MemoryPubSub
    from imageextract.models import Job, JobItem
    from imageextract.services import live, progress

    runtime = SimpleNamespace(events=MemoryPubSub())

    async def job_with_items() -> tuple[Job, JobItem, JobItem]:
        job = await Job.create(account_id=account["account_id"], project_id=account["project_id"], type="bulk",
                               status="processing", input={"value": ["a", "b"]}, total_items=2, completed_items=1)
        first = await JobItem.create(job_id=job.id, position=0, kind="url", source_label="a", status="processing",
                                     attempts=1)
        second = await JobItem.create(job_id=job.id, position=1, kind="url", source_label="b", status="done",
                                      attempts=1, image_count=2)
        return job, first, second

    async def finish(job: Job, item: JobItem) -> None:
        await JobItem.filter(id=item.id).update(status="done", image_count=1)
        await Job.filter(id=job.id).update(status="done", completed_items=2, credits_used=2)

    job, first, second = await job_with_items()
    stream = live.follow_batches(runtime, job.id)
    opening = await anext(stream)
    assert [e.get("event") for e in opening] == ["job", "item", "item"]
    assert [e["item"]["source_label"] for e in opening[1:]] == ["a", "b"]
    await finish(job, first)
    await progress.publish(runtime, job.id, progress.item_event(job.id, await JobItem.get(id=first.id)))
    await progress.publish(runtime, job.id, progress.job_state(await Job.get(id=job.id)))
    closing = await anext(stream)
    assert [(e.get("event"), e.get("status") or e["item"]["status"]) for e in closing] == [("item", "done"),
                                                                                         ("job", "done")]
    assert await anext(stream, None) is None  # the stream ends after the terminal event

    job, first, second = await job_with_items()
    stream = live.follow_batches(runtime, job.id)
    await anext(stream)
    await finish(job, first)  # the item's own event never reaches this stream ...
    await progress.publish(runtime, job.id, progress.job_state(await Job.get(id=job.id)))
    closing = await anext(stream)  # ... so its stored state comes first, in the terminal event's batch
    assert [(e.get("event"), e.get("status") or e["item"]["status"]) for e in closing] == [("item", "done"),
                                                                                         ("job", "done")]
    assert closing[0]["item"]["id"] == str(first.id)
