"""Webhooks: endpoints CRUD, signed deliveries verified with the documented snippet, retries, 410, redirects."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imageextract.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, serve_pages
from tests.receiver import Receiver, run_receiver


# The documented Python verification snippet, verbatim in behaviour (shared/spec/000).
def verify_imageextract_webhook(secret, timestamp, raw_body, signature):  # type: ignore[no-untyped-def]
    payload = f"{timestamp}.{raw_body}".encode("utf-8")  # noqa: UP012 (the documented snippet, verbatim)
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def verify_standard_webhooks(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(f"v1,{expected}", s) for s in headers["webhook-signature"].split())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def site() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


async def _wait(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_endpoint_crud_and_signed_test_delivery(client: httpx.AsyncClient, account: dict[str, Any],
                                                      receiver: Receiver) -> None:
    h, pid = account["headers"], account["project_id"]
    r = await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h,
                          json={"url": f"{receiver.url}/hook", "subscribed_events": ["job.completed", "job.failed"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["url"] == f"{receiver.url}/hook"
    listed = (await client.get(f"/api/v1/projects/{pid}/webhooks", headers=h)).json()
    assert listed["project_id"] == pid
    assert [(w["id"], w["status"], w["subscribed_events"]) for w in listed["webhooks"]] == [
        (created["id"], "active", ["job.completed", "job.failed"])]
    assert "secret" not in listed["webhooks"][0], "the secret is shown once"

    r = await client.post(f"/api/v1/projects/{pid}/webhooks/{created['id']}/test", headers=h)
    assert r.status_code == 202
    delivery_id = r.json()["delivery_id"]

    async def arrived() -> bool:
        return len(receiver.for_path("/hook")) == 1
    await _wait(arrived)
    req = receiver.for_path("/hook")[0]
    raw = req.body.decode()
    assert verify_imageextract_webhook(created["secret"], req.headers["X-ImageExtract-Timestamp"], raw,
                                       req.headers["X-ImageExtract-Signature"])
    assert not verify_imageextract_webhook(created["secret"] + "x", req.headers["X-ImageExtract-Timestamp"], raw,
                                           req.headers["X-ImageExtract-Signature"])
    assert verify_standard_webhooks(created["secret"], req.headers, req.body)
    assert req.headers["X-ImageExtract-Delivery-Id"] == delivery_id == req.headers["webhook-id"]
    assert abs(int(req.headers["X-ImageExtract-Timestamp"]) - time.time()) < 60
    assert json.loads(raw)["type"] == "webhook.test"

    async def delivered() -> bool:
        d = (await client.get(f"/api/v1/projects/{pid}/webhook-deliveries/{delivery_id}", headers=h)).json()
        return d["status"] == "delivered"
    await _wait(delivered)
    detail = (await client.get(f"/api/v1/projects/{pid}/webhook-deliveries/{delivery_id}", headers=h)).json()
    assert detail["event_type"] == "webhook.test" and detail["payload"]["type"] == "webhook.test"
    assert detail["attempts"][0]["status_code"] == 200
    lst = (await client.get(f"/api/v1/projects/{pid}/webhook-deliveries?limit=5", headers=h)).json()
    assert [(d["id"], d["event_type"], d["status"], d["attempt"]) for d in lst["deliveries"]] == [
        (delivery_id, "webhook.test", "delivered", 1)]

    r = await client.patch(f"/api/v1/projects/{pid}/webhooks/{created['id']}", headers=h, json={"status": "disabled"})
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    r = await client.patch(f"/api/v1/projects/{pid}/webhooks/{created['id']}", headers=h, json={"status": "paused"})
    assert r.status_code == 400
    r = await client.delete(f"/api/v1/projects/{pid}/webhooks/{created['id']}", headers=h)
    assert r.status_code == 200 and r.json() == {"deleted": True}
    assert (await client.get(f"/api/v1/projects/{pid}/webhooks", headers=h)).json()["webhooks"] == []


async def test_endpoint_validation_and_isolation(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h, pid = account["headers"], account["project_id"]
    for body in ({}, {"url": "ftp://x"}, {"url": "http://10.0.0.5/h"}, {"url": "http://169.254.169.254/"},
                 {"url": "http://127.0.0.1:9/h", "subscribed_events": ["job.exploded"]},
                 {"url": "http://127.0.0.1:9/h", "subscribed_events": []}):
        r = await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h, json=body)
        assert r.status_code == 400, body
    r = await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h, json={"url": "http://127.0.0.1:9/h"})
    wid = r.json()["id"]
    other = await make_account()
    oh = other["headers"]
    assert (await client.get(f"/api/v1/projects/{pid}/webhooks", headers=oh)).status_code == 404
    assert (await client.patch(f"/api/v1/projects/{pid}/webhooks/{wid}", headers=oh, json={"status": "disabled"})).status_code == 404
    assert (await client.delete(f"/api/v1/projects/{pid}/webhooks/{wid}", headers=oh)).status_code == 404
    assert (await client.post(f"/api/v1/projects/{pid}/webhooks/{wid}/test", headers=oh)).status_code == 404
    assert (await client.get(f"/api/v1/projects/{pid}/webhook-deliveries", headers=oh)).status_code == 404
    r = await client.post(f"/api/v1/projects/{pid}/webhooks/{wid}/test", headers=h)
    did = r.json()["delivery_id"]
    assert (await client.get(f"/api/v1/projects/{other['project_id']}/webhook-deliveries/{did}", headers=oh)).status_code == 404
    assert (await client.get(f"/api/v1/projects/{pid}/webhook-deliveries/{did}", headers=oh)).status_code == 404
    assert await WebhookEndpoint.filter(id=wid).exists()


async def test_job_completed_retried_then_delivered(client: httpx.AsyncClient, account: dict[str, Any],
                                                    receiver: Receiver, site: ThreadingHTTPServer, db: Any) -> None:
    h, pid = account["headers"], account["project_id"]
    receiver.script["/flaky"] = [500, 503, 200]
    created = (await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h,
                                 json={"url": f"{receiver.url}/flaky"})).json()
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(site)}/page/2"})
    job_id = r.json()["job_id"]
    await wait_for_job(client, job_id, h)

    async def three() -> bool:
        return len(receiver.for_path("/flaky")) >= 3 and await WebhookDelivery.filter(
            job_id=job_id, status="delivered").exists()
    await _wait(three)
    reqs = receiver.for_path("/flaky")
    assert len(reqs) == 3
    assert len({r.headers["X-ImageExtract-Delivery-Id"] for r in reqs}) == 1, "one delivery id across retries"
    for req in reqs:
        assert verify_imageextract_webhook(created["secret"], req.headers["X-ImageExtract-Timestamp"],
                                           req.body.decode(), req.headers["X-ImageExtract-Signature"])
    payload = json.loads(reqs[-1].body)
    assert payload["type"] == "job.completed"
    data = payload["data"]
    assert data["job_id"] == job_id and data["status"] == "done" and data["image_count"] == 2
    assert data["result_url"].startswith("http") and data["result_url"].endswith(f"/api/v1/jobs/{job_id}/result")
    assert data["download_url"].endswith(f"/api/v1/jobs/{job_id}/download")
    assert "images" not in data and len(reqs[-1].body) < 4096, "thin payloads"
    delivery = await WebhookDelivery.get(job_id=job_id)
    attempts = await WebhookAttempt.filter(delivery_id=delivery.id).order_by("attempt")
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    assert attempts[0].next_attempt_at is not None and attempts[2].next_attempt_at is None


async def test_410_disables_and_redirect_not_followed(client: httpx.AsyncClient, account: dict[str, Any],
                                                      receiver: Receiver, db: Any) -> None:
    h, pid = account["headers"], account["project_id"]
    receiver.script["/gone"] = [410]
    gone = (await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h, json={"url": f"{receiver.url}/gone"})).json()
    await client.post(f"/api/v1/projects/{pid}/webhooks/{gone['id']}/test", headers=h)

    async def disabled() -> bool:
        return (await WebhookEndpoint.get(id=gone["id"])).status == "disabled"
    await _wait(disabled)
    endpoint = (await client.get(f"/api/v1/projects/{pid}/webhooks", headers=h)).json()["webhooks"][0]
    assert endpoint["status"] == "disabled" and "410" in endpoint["disabled_reason"]
    assert len(receiver.for_path("/gone")) == 1

    receiver.script["/moved"] = [302]
    receiver.extra_headers["/moved"] = {"Location": f"{receiver.url}/target"}
    moved = (await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h, json={"url": f"{receiver.url}/moved"})).json()
    d = (await client.post(f"/api/v1/projects/{pid}/webhooks/{moved['id']}/test", headers=h)).json()["delivery_id"]

    async def failed() -> bool:
        return (await WebhookDelivery.get(id=d)).status == "failed"
    await _wait(failed)
    assert receiver.for_path("/target") == [], "redirects are not followed"
    attempts = await WebhookAttempt.filter(delivery_id=d).order_by("attempt")
    # IMAGEEXTRACT_WEBHOOK_RETRY_SCHEDULE has 5 entries in tests: one delay before each of 5 attempts.
    assert len(attempts) == 5 and all(a.status_code == 302 for a in attempts)
    assert "redirect" in (attempts[0].error or "")


async def test_default_webhook_url_gets_project_events(client: httpx.AsyncClient, receiver: Receiver, db: Any,
                                                       site: ThreadingHTTPServer) -> None:
    acc = await make_account()
    h = acc["headers"]
    p = (await client.post("/api/v1/projects", headers=h,
                           json={"name": "Hooked", "default_webhook_url": f"{receiver.url}/default"})).json()
    r = await client.post("/api/v1/jobs", headers=h,
                          json={"type": "url", "input": f"{base_url(site)}/status/404", "project_id": p["id"]})
    job_id = r.json()["job_id"]
    await wait_for_job(client, job_id, h)

    async def got() -> bool:
        return len(receiver.for_path("/default")) == 1
    await _wait(got)
    body = json.loads(receiver.for_path("/default")[0].body)
    assert body["type"] == "job.failed" and body["data"]["job_id"] == job_id
    assert body["data"]["project_id"] == p["id"] and body["data"]["error_code"] == "fetch_failed"
