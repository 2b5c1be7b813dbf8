"""Per-submission metadata on multipart uploads and per-job callbacks (webhook_url / callback_url): signed with
a secret shown once, verified with the `standardwebhooks` package and the documented scheme, retried on the
webhook schedule, listed with the job's deliveries; every bad input refused with nothing written."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imageextract.models import Account, Job, WebhookDelivery
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url
from tests.receiver import Receiver, run_receiver
from tests.results.conftest import graphql, unique_pdf


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


async def _arrived(receiver: Receiver, path: str, n: int = 1, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(receiver.for_path(path)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} request(s) to {path} not received in time")
        await asyncio.sleep(0.1)
    return receiver.for_path(path)


async def test_multipart_metadata_and_signed_callback(client: httpx.AsyncClient, server: Any,
                                                      account: dict[str, Any], receiver: Receiver) -> None:
    h = account["headers"]
    meta = {"customer": "acme", "batch": 7, "tags": ["a", "b"]}
    r = await client.post("/api/v1/jobs", headers=h, files=[("files", ("a.pdf", unique_pdf(1), "application/pdf"))],
                          data={"metadata": json.dumps(meta), "webhook_url": f"{receiver.url}/job-hook"})
    assert r.status_code == 202, r.text
    job_id, secret = r.json()["job_id"], r.json()["webhook_secret"]
    assert secret.startswith("whsec_")
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done" and job["metadata"] == meta
    [request] = await _arrived(receiver, "/job-hook")
    payload = Webhook(secret).verify(request.body, request.headers)  # raises unless signed with the job's secret
    assert payload["type"] == "job.completed" and payload["data"]["job_id"] == job_id
    assert payload["data"]["metadata"] == meta
    # The documented scheme too: hex HMAC-SHA256 of "{timestamp}.{body}" keyed with the whole secret.
    ts = request.headers["X-ImageExtract-Timestamp"]
    expected = hmac.new(secret.encode(), f"{ts}.{request.body.decode()}".encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.headers["X-ImageExtract-Signature"])
    project = await client.get(f"/api/v1/projects/{account['project_id']}", headers=h)
    assert project.status_code == 200
    with pytest.raises(WebhookVerificationError):  # not the project's secret, nor anyone else's
        Webhook("whsec_" + "QUJD" * 8).verify(request.body, request.headers)

    listed = (await client.get(f"/api/v1/jobs/{job_id}/webhook-deliveries", headers=h)).json()
    assert [(d["event_type"], d["status"], d["url"], d["job_id"]) for d in listed["deliveries"]] == [
        ("job.completed", "delivered", f"{receiver.url}/job-hook", job_id)]
    data, errors = await graphql(server.base_url, h, """query($id: ID!) { job(id: $id) {
        webhookDeliveries(first: 5) { totalCount nodes { eventType status url } } } }""", {"id": job_id})
    assert errors is None and data is not None
    assert data["job"]["webhookDeliveries"] == {"totalCount": 1, "nodes": [
        {"eventType": "job.completed", "status": "delivered", "url": f"{receiver.url}/job-hook"}]}
    # A delivery is sent once per job and event: the secret is never shown again.
    assert "webhook_secret" not in (await client.get(f"/api/v1/jobs/{job_id}", headers=h)).json()


async def test_callback_alias_retries_on_the_schedule(client: httpx.AsyncClient, account: dict[str, Any],
                                                      receiver: Receiver, pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    receiver.script["/flaky"] = [500, 503, 200]
    r = await client.post("/api/v1/jobs", headers=h, json={
        "type": "url", "input": f"{base_url(pages)}/page/1", "callback_url": f"{receiver.url}/flaky",
        "metadata": {"k": "v"}})
    assert r.status_code == 202, r.text
    job_id, secret = r.json()["job_id"], r.json()["webhook_secret"]
    await wait_for_job(client, job_id, h)
    requests = await _arrived(receiver, "/flaky", 3)
    ids = {req.headers["webhook-id"] for req in requests}
    assert len(ids) == 1, "one delivery, three attempts"
    for req in requests:
        assert Webhook(secret).verify(req.body, req.headers)["data"]["metadata"] == {"k": "v"}
    delivery = await WebhookDelivery.get(id=ids.pop())

    async def settled() -> bool:
        return (await WebhookDelivery.get(id=delivery.id)).status == "delivered"
    deadline = time.monotonic() + 10
    while not await settled():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert (await WebhookDelivery.get(id=delivery.id)).attempt == 3


async def test_replay_does_not_show_the_secret_again(client: httpx.AsyncClient, account: dict[str, Any],
                                                     receiver: Receiver, pages: ThreadingHTTPServer) -> None:
    h = {**account["headers"], "Idempotency-Key": "cb-replay"}
    body = {"type": "url", "input": f"{base_url(pages)}/page/2", "webhook_url": f"{receiver.url}/x"}
    first = await client.post("/api/v1/jobs", headers=h, json=body)
    again = await client.post("/api/v1/jobs", headers=h, json=body)
    assert first.status_code == again.status_code == 202
    assert "webhook_secret" in first.json() and again.json() == {"job_id": first.json()["job_id"]}
    other = await client.post("/api/v1/jobs", headers=h, json={**body, "webhook_url": f"{receiver.url}/y"})
    assert other.status_code == 409, "a different callback is a different request"


BAD_FORMS = [
    ({"metadata": "{not json"}, "metadata is not valid JSON"),
    ({"metadata": "[1, 2]"}, "metadata must be a JSON object"),
    ({"metadata": json.dumps({"x": "y" * 17000})}, "metadata must be at most 16384 bytes as JSON"),
    ({"webhook_url": "ftp://example.com/hook"}, "webhook_url must be an http(s) URL"),
    ({"callback_url": "not a url"}, "callback_url must be an http(s) URL"),
    ({"webhook_url": "https://a.example/1", "callback_url": "https://a.example/2"},
     "webhook_url and callback_url are aliases: send one of them"),
    ({"colour": "blue"}, "Unknown form fields: colour"),
]


async def test_bad_multipart_fields_write_nothing(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    before_jobs = await Job.filter(account_id=account["account_id"]).count()
    before_credits = (await Account.get(id=account["account_id"])).credits
    for data, message in BAD_FORMS:
        r = await client.post("/api/v1/jobs", headers=h, data=data,
                              files=[("files", ("a.pdf", unique_pdf(1), "application/pdf"))])
        assert r.status_code == 400, (data, r.text)
        assert r.json()["error"]["code"] == "validation_error" and r.json()["error"]["message"] == message, data
    r = await client.post("/api/v1/jobs", headers=h, data={"webhook_url": "http://10.0.0.7/hook"},
                          files=[("files", ("a.pdf", unique_pdf(1), "application/pdf"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "ssrf_blocked"
    r = await client.post("/api/v1/jobs", headers=h, files=[
        ("files", ("a.pdf", unique_pdf(1), "application/pdf")), ("metadata", ("m.json", b"{}", "application/json"))])
    assert r.status_code == 400 and r.json()["error"]["message"] == "'metadata' must be one text field"
    assert await Job.filter(account_id=account["account_id"]).count() == before_jobs
    assert (await Account.get(id=account["account_id"])).credits == before_credits


SUBMIT = """mutation($input: SubmitJobInput!) { submitJob(input: $input) { jobId replayed webhookSecret } }"""


async def test_callback_parity_rest_and_graphql(client: httpx.AsyncClient, server: Any, account: dict[str, Any],
                                                pages: ThreadingHTTPServer, receiver: Receiver) -> None:
    h = account["headers"]
    page = f"{base_url(pages)}/page/3"
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"webhook_url": "ftp://example.com/hook"}, h),
        ({"callback_url": "http://10.0.0.7/hook"}, h),
        ({"webhook_url": "https://a.example/1", "callback_url": "https://a.example/2"}, h),
        ({"webhook_url": f"{receiver.url}/guest"}, {}),
    ]
    for fields, headers in cases:
        r = await client.post("/api/v1/jobs", headers=headers, json={"type": "url", "input": page, **fields})
        gql_input = {"type": "url", "url": page, **{"webhookUrl" if k == "webhook_url" else "callbackUrl": v
                                                    for k, v in fields.items()}}
        data, errors = await graphql(server.base_url, headers, SUBMIT, {"input": gql_input})
        assert r.status_code >= 400 and errors, fields
        assert errors[0]["extensions"]["code"] == r.json()["error"]["code"], fields
        assert errors[0]["message"] == r.json()["error"]["message"], fields
    data, errors = await graphql(server.base_url, h, SUBMIT, {"input": {
        "type": "url", "url": page, "webhookUrl": f"{receiver.url}/gql"}})
    assert errors is None and data is not None
    secret = data["submitJob"]["webhookSecret"]
    [request] = await _arrived(receiver, "/gql")
    assert Webhook(secret).verify(request.body, request.headers)["data"]["job_id"] == data["submitJob"]["jobId"]
