"""Batches over GraphQL (gql client): the Relay connection of items, createBatch/cancelBatch, the throttled
batchProgress subscription over graphql-transport-ws, and parity with REST for every shared operation."""

from __future__ import annotations

import time
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
from gql import Client
from gql.graphql_request import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from tests.batches.helpers import slow_urls, stage_and_upload, wait_for_batch
from tests.extract.docfixtures import png
from tests.factories import make_account
from tests.support import ServerProcess

BATCH = """query($id: ID!, $first: Int!, $after: String, $status: String) {
  batch(id: $id) { id status totalItems counts { pending running succeeded failed cancelled }
    items(first: $first, after: $after, status: $status) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { cursor node { id position source status updatedAt error { code message } resultUrl } } } } }"""
CREATE = """mutation($input: CreateBatchInput!) {
  createBatch(input: $input) { replayed batch { id status totalItems } } }"""
CANCEL = "mutation($id: ID!) { cancelBatch(id: $id) { id status counts { cancelled } } }"
PROGRESS = """subscription($id: ID!) { batchProgress(batchId: $id) {
  batchId status totalItems counts { pending running succeeded failed cancelled } } }"""


async def gql_call(server: ServerProcess, query: str, variables: dict[str, Any],
                   headers: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(data, None) or (None, the first error's {message, extensions})."""
    transport = HTTPXAsyncTransport(url=f"{server.base_url}/graphql", headers=headers or {}, timeout=30)
    async with Client(transport=transport) as session:
        try:
            return await session.execute(GraphQLRequest(query, variable_values=variables)), None
        except TransportQueryError as exc:
            assert exc.errors
            return None, dict(exc.errors[0])


async def test_items_connection_walk_and_mutations(server: ServerProcess, client: httpx.AsyncClient,
                                                   site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account()
    h = acc["headers"]
    files = [await stage_and_upload(client, h, png((i, 9, 9)), f"{i}.png") for i in range(5)]
    data, err = await gql_call(server, CREATE, {"input": {"source": {"type": "files", "fileIds": files},
                                                          "idempotencyKey": f"g-{time.time()}"}}, h)
    assert err is None and data is not None
    batch = data["createBatch"]["batch"]
    assert batch["totalItems"] == 5 and batch["status"] == "pending" and data["createBatch"]["replayed"] is False
    await wait_for_batch(client, batch["id"], h)
    time.sleep(1.1)  # past the settle window
    seen: list[str] = []
    after = None
    while True:
        data, err = await gql_call(server, BATCH, {"id": batch["id"], "first": 2, "after": after}, h)
        assert err is None and data is not None
        conn = data["batch"]["items"]
        assert conn["totalCount"] == 5
        seen += [e["node"]["id"] for e in conn["edges"]]
        assert all(e["node"]["status"] == "succeeded" and e["node"]["resultUrl"] for e in conn["edges"])
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        assert after == conn["edges"][-1]["cursor"]
    assert len(seen) == len(set(seen)) == 5
    assert data["batch"]["status"] == "completed"
    assert data["batch"]["counts"]["succeeded"] == 5
    # The same rows REST shows, in the same order.
    rest = (await client.get(f"/api/v1/batches/{batch['id']}", headers=h, params={"limit": 5})).json()
    assert [i["id"] for i in rest["items"]] == seen

    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 30, 0.3)}})
    data, err = await gql_call(server, CANCEL, {"id": r.json()["id"]}, h)
    assert err is None and data is not None and data["cancelBatch"]["counts"]["cancelled"] >= 20


async def test_batch_progress_is_throttled_and_ends_with_the_final_counts(
        server: ServerProcess, client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account(plan="pro")
    h = acc["headers"]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 80, 0.02)}})
    batch_id = r.json()["id"]
    ws = server.base_url.replace("http://", "ws://") + "/graphql"
    transport = WebsocketsTransport(url=ws, init_payload={"Authorization": h["Authorization"]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    async with Client(transport=transport) as session:
        async for result in session.subscribe(GraphQLRequest(PROGRESS, variable_values={"id": batch_id})):
            events.append(result["batchProgress"])
    elapsed = time.monotonic() - started
    final = events[-1]
    assert final["status"] == "completed" and final["counts"]["succeeded"] == 80
    assert sum(final["counts"].values()) == 80
    # Counts, not one event per item: at most one per 0.25 s interval (plus the first and the last).
    assert len(events) < 80
    assert len(events) <= elapsed / 0.25 + 3, (len(events), elapsed)
    done = [e["counts"]["succeeded"] for e in events]
    assert done == sorted(done)
    # A foreign batch ends the operation with an error, not a stream.
    other = await make_account()
    transport = WebsocketsTransport(url=ws, init_payload={"Authorization": other["headers"]["Authorization"]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=transport) as session:
        try:
            async for _ in session.subscribe(GraphQLRequest(PROGRESS, variable_values={"id": batch_id})):
                raise AssertionError("a foreign batch streamed")
        except TransportQueryError as exc:
            assert exc.errors and exc.errors[0]["extensions"]["code"] == "not_found"


async def _rest(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str],
                body: Any = None) -> tuple[int, dict[str, Any] | None]:
    r = await client.request(method, path, headers=headers, json=body)
    return r.status_code, (r.json().get("error") if r.status_code >= 400 else None)


async def test_parity_rest_and_graphql(server: ServerProcess, client: httpx.AsyncClient,
                                       site: ThreadingHTTPServer, db: Any) -> None:
    acc, other = await make_account(), await make_account()
    h = acc["headers"]
    foreign_file = await stage_and_upload(client, other["headers"], png((3, 3, 3)), "f.png")
    r = await client.post("/api/v1/batches", headers=other["headers"],
                          json={"source": {"type": "urls", "urls": slow_urls(site, 1, 0)}})
    foreign_batch = r.json()["id"]
    await wait_for_batch(client, foreign_batch, other["headers"])
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 1, 0)}})
    ended = r.json()["id"]
    await wait_for_batch(client, ended, h)

    def create_cases() -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]]:
        return [
            ("invalid type", {"type": "zip", "file_ids": ["x"]}, {"type": "zip", "fileIds": ["x"]}, h),
            ("empty", {"type": "files", "file_ids": []}, {"type": "files", "fileIds": []}, h),
            ("bad url", {"type": "urls", "urls": ["ftp://x"]}, {"type": "urls", "urls": ["ftp://x"]}, h),
            ("foreign file", {"type": "files", "file_ids": [foreign_file]}, {"type": "files", "fileIds": [foreign_file]}, h),
            ("anonymous", {"type": "urls", "urls": ["http://x.test/"]}, {"type": "urls", "urls": ["http://x.test/"]}, {}),
        ]

    for name, rest_source, gql_source, headers in create_cases():
        status, rest_err = await _rest(client, "POST", "/api/v1/batches", headers, {"source": rest_source})
        data, gql_err = await gql_call(server, CREATE, {"input": {"source": gql_source}}, headers)
        assert rest_err is not None and gql_err is not None, name
        assert gql_err["extensions"]["code"] == rest_err["code"], name
        assert gql_err["message"] == rest_err["message"], name
    # Valid on both doors: the same answer shape.
    status, _ = await _rest(client, "POST", "/api/v1/batches", h, {"source": {"type": "urls", "urls": slow_urls(site, 1, 0)}})
    data, err = await gql_call(server, CREATE, {"input": {"source": {"type": "urls", "urls": slow_urls(site, 2, 0)}}}, h)
    assert status == 201 and err is None and data is not None and data["createBatch"]["batch"]["totalItems"] == 2

    reads = [("foreign", foreign_batch, h), ("unknown", "00000000-0000-0000-0000-000000000000", h),
             ("bad id", "nope", h), ("anonymous", ended, {})]
    for name, batch_id, headers in reads:
        status, rest_err = await _rest(client, "GET", f"/api/v1/batches/{batch_id}", headers)
        data, gql_err = await gql_call(server, BATCH, {"id": batch_id, "first": 1}, headers)
        assert rest_err is not None and gql_err is not None, name
        assert (gql_err["extensions"]["code"], gql_err["message"]) == (rest_err["code"], rest_err["message"]), name
        status, rest_err = await _rest(client, "POST", f"/api/v1/batches/{batch_id}/cancel", headers)
        data, gql_err = await gql_call(server, CANCEL, {"id": batch_id}, headers)
        assert rest_err is not None and gql_err is not None, name
        assert (gql_err["extensions"]["code"], gql_err["message"]) == (rest_err["code"], rest_err["message"]), name
    # Cancelling an ended batch: 409 conflict on both.
    status, rest_err = await _rest(client, "POST", f"/api/v1/batches/{ended}/cancel", h)
    data, gql_err = await gql_call(server, CANCEL, {"id": ended}, h)
    assert status == 409 and rest_err is not None and gql_err is not None
    assert (gql_err["extensions"]["code"], gql_err["message"]) == (rest_err["code"], rest_err["message"])
    # Paging errors: the same code, each door naming its own parameter.
    status, rest_err = await _rest(client, "GET", f"/api/v1/batches/{ended}?limit=0", h)
    data, gql_err = await gql_call(server, BATCH, {"id": ended, "first": 0}, h)
    assert status == 400 and rest_err is not None and gql_err is not None
    assert gql_err["extensions"]["code"] == rest_err["code"] == "validation_error"
    assert gql_err["extensions"]["details"] == {"field": "first"} and rest_err["details"] == {"field": "limit"}
