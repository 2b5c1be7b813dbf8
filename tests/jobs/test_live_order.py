"""The order of a live stream (SSE and the GraphQL jobProgress subscription, both `services/live.follow`):
the job's state (while it is not terminal), then its items, then changes, the terminal event last; no event
twice. Checked on a finished job (replayed from the database) and on a live one."""

from __future__ import annotations

import asyncio
import json
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import websockets

from tests.jobs.helpers import wait_for_job
from tests.pages import base_url

SUBSCRIPTION = """subscription($id: ID!) { jobProgress(jobId: $id) {
  kind jobId status progress completedItems imageCount resultUrl item { id position status attempts imageCount } } }"""


async def sse(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The stream as (kind, payload): "job" for `{"status": ...}` objects, "item" for `{"item": ...}`."""
    events: list[dict[str, Any]] = []
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                events.append({"kind": "item", **data} if "item" in data else {"kind": "job", **data})
    return events


async def graphql(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"
    received: list[dict[str, Any]] = []
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": headers}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "complete":
                return received
            assert msg["type"] == "next", msg
            received.append(msg["payload"]["data"]["jobProgress"])


def check_order(events: list[dict[str, Any]], *, positions: set[int], finished: bool) -> None:
    kinds = [e["kind"] for e in events]
    jobs = [e for e in events if e["kind"] == "job"]
    items = [e["item"] for e in events if e["kind"] == "item"]
    terminal = [i for i, e in enumerate(jobs) if e["status"] in ("done", "failed", "cancelled")]
    assert terminal == [len(jobs) - 1], f"one terminal event, the last job event: {events}"
    assert kinds[-1] == "job" and events[-1]["status"] == "done", events
    # Every item's final state arrives before the terminal event, each item at least once.
    final = {i["position"]: i for i in items}
    assert set(final) == positions
    assert all(i["status"] == "done" for i in final.values()), final
    if finished:
        # A finished job replays its items, one event each, then the terminal event.
        assert kinds == ["item"] * len(positions) + ["job"], kinds
        assert [i["position"] for i in items] == sorted(positions)
    else:
        assert kinds[0] == "job" and events[0]["status"] in ("queued", "processing"), events[0]
        first_items = kinds[1:1 + len(positions)]
        assert first_items == ["item"] * len(positions), f"the current items follow the state: {kinds}"
    # No event twice: every job event differs from the previous job event, every item event from that
    # item's previous event.
    for a, b in zip(jobs, jobs[1:], strict=False):
        assert a != b, f"job event sent twice: {a}"
    last: dict[int, dict[str, Any]] = {}
    for item in items:
        assert last.get(item["position"]) != item, f"item event sent twice: {item}"
        last[item["position"]] = item
    progress = [e["progress"] for e in jobs]
    assert progress == sorted(progress)


async def test_finished_job_replays_state_items_then_terminal(client: httpx.AsyncClient, account: dict[str, Any],
                                                              pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    urls = [f"{base_url(pages)}/page/{n}" for n in (1, 2, 3)]
    job_id = (await client.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": urls})).json()["job_id"]
    await wait_for_job(client, job_id, h)
    for events in (await asyncio.wait_for(sse(client, job_id, h), 10),
                   await asyncio.wait_for(graphql(client, job_id, h), 10)):
        check_order(events, positions={0, 1, 2}, finished=True)
    assert (await asyncio.wait_for(sse(client, job_id, h), 10))[-1]["result_url"] == f"/api/v1/jobs/{job_id}/result"


async def test_live_job_streams_state_items_changes_then_terminal(client: httpx.AsyncClient,
                                                                  account: dict[str, Any],
                                                                  pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    urls = [f"{base_url(pages)}/slow/0.4/{n}" for n in (1, 2, 3, 4)]
    job_id = (await client.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": urls})).json()["job_id"]
    # Both doors at once, subscribed while the job runs.
    sse_events, gql_events = await asyncio.wait_for(
        asyncio.gather(sse(client, job_id, h), graphql(client, job_id, h)), 30)
    check_order(sse_events, positions={0, 1, 2, 3}, finished=False)
    check_order(gql_events, positions={0, 1, 2, 3}, finished=False)
    assert sse_events[-1]["progress"] == 100 and gql_events[-1]["resultUrl"] == f"/api/v1/jobs/{job_id}/result"
    body = await wait_for_job(client, job_id, h)
    assert body["image_count"] == 10 == sse_events[-1]["image_count"] == gql_events[-1]["imageCount"]


async def test_shared_fanout_keeps_each_account_to_its_own_job(client: httpx.AsyncClient, pages: ThreadingHTTPServer,
                                                               db: Any) -> None:
    """Subscriptions with the same document share one execution per event and audience (graphql_fanout):
    two accounts, three subscribers each, one server process; each subscriber sees only its own job, and
    subscribers of one job see the same live events."""
    from tests.factories import make_account

    accounts = [await make_account(plan="pro"), await make_account(plan="pro")]
    jobs: list[str] = []
    for n, acct in enumerate(accounts):
        urls = [f"{base_url(pages)}/slow/0.4/{n + 1}", f"{base_url(pages)}/slow/0.6/{n + 2}"]
        r = await client.post("/api/v1/jobs", headers=acct["headers"], json={"type": "bulk", "input": urls})
        jobs.append(r.json()["job_id"])
    runs = [graphql(client, job, acct["headers"]) for job, acct in zip(jobs, accounts, strict=True) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*runs), 30)
    for index, events in enumerate(results):
        mine = jobs[index // 3]
        assert {e["jobId"] for e in events} == {mine}, f"subscriber {index} saw another job"
        check_order(events, positions={0, 1}, finished=False)
    for group in (results[:3], results[3:]):
        finals = [[e for e in events if e["kind"] == "job"][-1] for events in group]
        assert all(f == finals[0] for f in finals)
    # The other account may not even open a subscription to this job.
    other = await graphql_error(client, jobs[0], accounts[1]["headers"])
    assert other["extensions"]["code"] == "forbidden"


async def graphql_error(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": headers}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert msg["type"] == "error", msg
        return dict(msg["payload"][0])


async def test_every_subscriber_hears_the_terminal_event_before_any_subscription_ends(
        client: httpx.AsyncClient, account: dict[str, Any], pages: ThreadingHTTPServer) -> None:
    """Twenty jobProgress subscriptions to one live job on one websocket (one ordered stream of frames): all
    twenty get the terminal event before the first `complete`. Ending a subscription (its `complete`, the
    operation's teardown) costs more than sending it an event; done subscriber by subscriber, the last of a
    thousand heard of the job's end behind 999 teardowns."""
    h = account["headers"]
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/slow/1.5/2"})
    job_id = r.json()["job_id"]
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"
    ids = [str(n) for n in range(20)]
    frames: list[tuple[str, str, Any]] = []
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": h}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for op in ids:
            await ws.send(json.dumps({"id": op, "type": "subscribe",
                                      "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))

        async def until_all_complete() -> None:
            completed: set[str] = set()
            while completed != set(ids):
                msg = json.loads(await ws.recv())
                assert msg["type"] in ("next", "complete"), msg
                event = msg["payload"]["data"]["jobProgress"] if msg["type"] == "next" else None
                frames.append((msg["type"], msg["id"], event))
                if msg["type"] == "complete":
                    completed.add(msg["id"])

        await asyncio.wait_for(until_all_complete(), 30)
    for op in ids:
        mine = [event for kind, i, event in frames if i == op and kind == "next"]
        assert mine[0]["kind"] == "job" and mine[0]["status"] in ("queued", "processing"), "subscribed after the end"
        assert mine[-1]["kind"] == "job" and mine[-1]["status"] == "done", mine[-1]
    first_complete = next(n for n, (kind, _, _) in enumerate(frames) if kind == "complete")
    terminal = [n for n, (kind, _, event) in enumerate(frames)
                if kind == "next" and event["kind"] == "job" and event["status"] == "done"]
    assert len(terminal) == 20 and max(terminal) < first_complete, \
        f"a subscription ended before subscriber {frames[max(terminal)][1]} had the terminal event"
