"""Cancellation with refunds checked against the ledger, plan concurrency, and submission rate limits."""

from __future__ import annotations

import asyncio
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from imageextract.models import Account, LedgerEntry
from imageextract.services import ledger
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url


async def test_cancel_queued_job_refunds(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer) -> None:
    # The free plan runs 2 items at a time per account: two slow jobs hold both slots, the third stays queued.
    acc = await make_account(plan="free")
    h = acc["headers"]
    slow = [await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/slow/2/1"})
            for _ in range(2)]
    third = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/page/1"})
    assert third.status_code == 202
    job_id = third.json()["job_id"]
    await asyncio.sleep(0.5)
    state = (await client.get(f"/api/v1/jobs/{job_id}", headers=h)).json()
    assert state["status"] == "queued", state
    r = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)
    assert r.status_code == 200 and r.json() == {"cancelled": True}
    state = (await client.get(f"/api/v1/jobs/{job_id}", headers=h)).json()
    assert state["status"] == "cancelled" and state["credits_used"] == 0
    assert state["groups"][0]["status"] == "cancelled"
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)).status_code == 409
    r = await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "job_cancelled"
    for s in slow:
        done = await wait_for_job(client, s.json()["job_id"], h)
        assert done["status"] == "done"
        assert (await client.post(f"/api/v1/jobs/{s.json()['job_id']}/cancel", headers=h)).status_code == 409
    rows = await LedgerEntry.filter(account_id=acc["account_id"], job_id=job_id).order_by("id")
    assert [(e.entry_type, e.amount) for e in rows] == [("job_debit", -1), ("job_refund", 1)]
    account = await Account.get(id=acc["account_id"])
    assert account.credits == 50 - 2 == await ledger.ledger_sum(acc["account_id"])
    assert account.active_items == 0, "every concurrency slot was given back"
    # Still queued? then a cancelled job's item never runs.
    await asyncio.sleep(0.5)
    assert (await client.get(f"/api/v1/jobs/{job_id}", headers=h)).json()["status"] == "cancelled"


async def test_free_plan_daily_limit(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer) -> None:
    acc = await make_account(plan="free", credits=100)
    h = acc["headers"]
    body = {"type": "url", "input": f"{base_url(pages)}/page/1"}
    seen = []
    for i in range(10):
        r = await client.post("/api/v1/jobs", headers=h, json=body)
        assert r.status_code == 202, (i, r.text)
        assert r.headers["X-RateLimit-Limit"] == "10"
        seen.append(int(r.headers["X-RateLimit-Remaining"]))
        assert int(r.headers["X-RateLimit-Reset"]) > 0
    assert seen == list(range(9, -1, -1))
    r = await client.post("/api/v1/jobs", headers=h, json=body)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 86400
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert await LedgerEntry.filter(account_id=acc["account_id"], entry_type="job_debit").count() == 10
    pro = (await client.post("/api/v1/jobs", headers=(await make_account(plan="pro"))["headers"], json=body))
    assert pro.status_code == 202 and "X-RateLimit-Limit" not in pro.headers, "paid plans are unlimited"
