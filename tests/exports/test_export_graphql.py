"""Exports through GraphQL (the `gql` client over HTTP and graphql-transport-ws), and parity with REST: the same
inputs give the same outcome, error code and message on both doors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportClosed,
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from imageextract.services import ledger
from tests.exports.helpers import SVG, decode, logo_png, photo_jpeg, upload_job, wait_for_export
from tests.factories import make_account

CREATE = """
mutation($job: ID!, $ids: [ID!], $names: JSON, $settings: ExportSettingsInput) {
  createExport(jobId: $job, imageIds: $ids, filenames: $names, settings: $settings) { exportId }
}"""
READ = """
query($id: ID!) {
  export(id: $id) {
    id jobId status settings totalImages completedImages failedImages creditsUsed downloadUrl
    images { imageId filename status error errorCode variants { name filename format width height size frames url } }
  }
}"""
SUBSCRIBE = """
subscription($id: ID!) {
  exportProgress(exportId: $id) {
    kind exportId status current total imageId step error
    export { status images { imageId filename variants { name url } } }
  }
}"""


async def gql_call(base: str, document: str, variables: dict[str, Any], headers: dict[str, str]
                   ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(data, None) or (None, first error) for one operation through the gql client."""
    transport = HTTPXAsyncTransport(url=f"{base}/graphql", headers=headers, timeout=30)
    async with Client(transport=transport) as session:
        try:
            return await session.execute(GraphQLRequest(document, variable_values=variables)), None
        except TransportQueryError as exc:
            assert exc.errors
            return None, exc.errors[0]


def _close_code(exc: BaseException) -> int | None:
    """The websocket close code behind a gql transport error (websockets' ConnectionClosed in its causes)."""
    seen: BaseException | None = exc
    while seen is not None:
        received = getattr(seen, "rcvd", None)
        if received is not None:
            return int(received.code)
        seen = seen.__cause__ or seen.__context__
    return None


def _ws_url(client: httpx.AsyncClient) -> str:
    return str(client.base_url).replace("http://", "ws://").rstrip("/") + "/graphql"


async def test_create_read_and_follow_over_graphql(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    base = str(client.base_url).rstrip("/")
    job_id, images = await upload_job(client, h, [("cover.png", logo_png((640, 400)), "image/png")])
    image_id = images[0]["id"]
    data, error = await gql_call(base, CREATE, {
        "job": job_id, "ids": [image_id], "names": {image_id: "Cover Art"},
        "settings": {"format": "jpeg", "preset": "medium", "responsive": True, "responsiveSizes": [320]}}, h)
    assert error is None and data is not None
    export_id = data["createExport"]["exportId"]

    transport = WebsocketsTransport(url=_ws_url(client), init_payload={"Authorization": h["Authorization"]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    events: list[dict[str, Any]] = []
    async with Client(transport=transport) as session:
        async with asyncio.timeout(60):
            async for result in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": export_id})):
                events.append(result["exportProgress"])
    assert events[0]["kind"] == "progress" and events[-1]["kind"] == "complete", events
    assert {e["kind"] for e in events[:-1]} == {"progress"}
    final = events[-1]
    assert final["status"] == "done" and final["current"] == final["total"] == 1

    data, error = await gql_call(base, READ, {"id": export_id}, h)
    assert error is None and data is not None
    export = data["export"]
    rest = await wait_for_export(client, export_id, h)
    assert export["status"] == rest["status"] == "done" and export["creditsUsed"] == rest["credits_used"] == 1
    assert export["settings"] == rest["settings"] == {"format": "jpeg", "preset": "medium", "responsive": True,
                                                      "responsive_sizes": [320], "strip_metadata": True}
    [image] = export["images"]
    assert image["filename"] == "Cover-Art.jpg" and image["imageId"] == image_id
    assert [(v["name"], v["filename"], v["width"], v["height"]) for v in image["variants"]] == [
        ("full", "Cover-Art.jpg", 640, 400), ("320w", "Cover-Art-320w.jpg", 320, 200)]
    assert [v["url"] for v in image["variants"]] == [v["url"] for v in rest["images"][0]["variants"]]
    assert final["export"]["images"][0]["variants"] == [{"name": v["name"], "url": v["url"]} for v in image["variants"]]
    for v in image["variants"]:
        got = await client.get(v["url"], headers=h)
        im = decode(got.content)
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (v["width"], v["height"])


async def test_subscription_refuses_other_accounts_and_anonymous(client: httpx.AsyncClient, account: dict[str, Any],
                                                                 db: Any) -> None:
    h = account["headers"]
    job_id, _ = await upload_job(client, h, [("v.svg", SVG, "image/svg+xml")])
    export_id = (await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})).json()["export_id"]
    other = await make_account(plan="pro")
    transport = WebsocketsTransport(url=_ws_url(client), init_payload={"Authorization": other["headers"]["Authorization"]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    # Another account: this operation gets an `error` message (the export is not found for it), the
    # connection stays up for the caller's other subscriptions.
    async with Client(transport=transport) as session:
        with pytest.raises(TransportQueryError) as caught:
            async for _ in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": export_id})):
                raise AssertionError("an intruder received an event")
        assert caught.value.errors and caught.value.errors[0]["extensions"]["code"] == "not_found"
        assert (await session.execute(GraphQLRequest("{ limits { plan } }")))["limits"]["plan"] == "pro"
    transport = WebsocketsTransport(url=_ws_url(client), subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    with pytest.raises((TransportConnectionFailed, TransportServerError, TransportClosed)) as refused:
        async with Client(transport=transport) as session:
            async for _ in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": export_id})):
                raise AssertionError("an anonymous caller received an event")
    assert _close_code(refused.value) == 4403, repr(refused.value)
    # The owner gets the whole story, ending in `error` (the only image cannot be decoded).
    transport = WebsocketsTransport(url=_ws_url(client), init_payload={"Authorization": h["Authorization"]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=transport) as session:
        kinds = []
        async with asyncio.timeout(60):
            async for result in session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": export_id})):
                kinds.append(result["exportProgress"]["kind"])
                last = result["exportProgress"]
    assert kinds[-1] == "error" and last["status"] == "failed" and "could not be decoded" in last["error"]


async def test_rest_and_graphql_answer_alike(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    base = str(client.base_url).rstrip("/")
    job_id, images = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg")])
    other = await make_account(plan="pro")
    other_job, _ = await upload_job(client, other["headers"], [("b.jpg", photo_jpeg(), "image/jpeg")])
    anonymous: dict[str, str] = {}
    cases: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
        ("valid", job_id, {"settings": {"format": "png", "preset": "low"}}, h),
        ("bad format", job_id, {"settings": {"format": "bmp"}}, h),
        ("bad sizes", job_id, {"settings": {"responsive": True, "responsive_sizes": [5]}}, h),
        ("unknown image", job_id, {"image_ids": ["img_nope"]}, h),
        ("foreign job", other_job, {}, h),
        ("unknown job", "00000000-0000-0000-0000-000000000000", {}, h),
        ("anonymous", job_id, {}, anonymous),
    ]
    exports: dict[str, str] = {}
    for label, job, body, headers in cases:
        balance = await ledger.balance_of(account["account_id"])
        r = await client.post(f"/api/v1/jobs/{job}/exports", headers=headers, json=body)
        rest_debit = balance - await ledger.balance_of(account["account_id"])
        settings = body.get("settings")
        variables = {"job": job, "ids": body.get("image_ids"), "names": None, "settings": None if settings is None else {
            {"responsive_sizes": "responsiveSizes"}.get(k, k): v for k, v in settings.items()}}
        balance = await ledger.balance_of(account["account_id"])
        data, error = await gql_call(base, CREATE, variables, headers)
        gql_debit = balance - await ledger.balance_of(account["account_id"])
        assert rest_debit == gql_debit, label
        if r.status_code == 202:
            assert error is None and data is not None, (label, error)
            exports[label] = r.json()["export_id"]
            exports[label + " (graphql)"] = data["createExport"]["exportId"]
            continue
        rest_error = r.json()["error"]
        assert r.status_code in (400, 401, 404), (label, r.text)
        assert error is not None, (label, data)
        assert (error["extensions"]["code"], error["message"]) == (rest_error["code"], rest_error["message"]), label

    # Reads: the owner, another account, an anonymous caller and an unknown id.
    for label, export_id, headers in [("owner", exports["valid"], h), ("foreign", exports["valid"], other["headers"]),
                                      ("anonymous", exports["valid"], anonymous),
                                      ("unknown", "exp_000000000000000000000000", h)]:
        r = await client.get(f"/api/v1/exports/{export_id}", headers=headers)
        data, error = await gql_call(base, READ, {"id": export_id}, headers)
        if r.status_code == 200:
            assert error is None and data is not None and data["export"]["id"] == r.json()["export_id"], label
        else:
            assert error is not None, label
            rest_error = r.json()["error"]
            assert (error["extensions"]["code"], error["message"]) == (rest_error["code"], rest_error["message"]), label
            assert r.status_code == (401 if label == "anonymous" else 404)
    for label in ("valid", "valid (graphql)"):
        assert (await wait_for_export(client, exports[label], h))["status"] == "done"
