"""Transient faults are retried with backoff, terminal ones are not; credits follow the final outcome."""

from __future__ import annotations

import secrets
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from imageextract.models import JobItem, LedgerEntry
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url


async def _run(client: httpx.AsyncClient, account: dict[str, Any], url: str) -> tuple[dict[str, Any], JobItem]:
    r = await client.post("/api/v1/jobs", headers=account["headers"], json={"type": "url", "input": url})
    assert r.status_code == 202, r.text
    job = await wait_for_job(client, r.json()["job_id"], account["headers"])
    return job, await JobItem.get(job_id=job["id"])


async def test_transient_failures_are_retried(client: httpx.AsyncClient, account: dict[str, Any], db: Any,
                                              pages: ThreadingHTTPServer) -> None:
    # Two 503s, then the page: done on the third attempt, charged once, never refunded.
    job, item = await _run(client, account, f"{base_url(pages)}/flaky/{secrets.token_hex(4)}/2/3")
    assert job["status"] == "done" and job["image_count"] == 3 and job["credits_used"] == 1
    assert item.attempts == 3 and item.status == "done" and item.error_code is None
    entries = await LedgerEntry.filter(job_id=job["id"]).values_list("entry_type", flat=True)
    assert list(entries) == ["job_debit"]


async def test_retries_are_bounded_then_refunded(client: httpx.AsyncClient, account: dict[str, Any], db: Any,
                                                 pages: ThreadingHTTPServer) -> None:
    # Always 503: 1 attempt + 2 retries (IMAGEEXTRACT_ITEM_RETRY_DELAYS has two entries in tests), then failed.
    job, item = await _run(client, account, f"{base_url(pages)}/flaky/{secrets.token_hex(4)}/99/1")
    assert job["status"] == "failed" and job["error_code"] == "fetch_failed" and job["credits_used"] == 0
    assert item.attempts == 3 and "HTTP 503" in (item.error_message or "")
    entries = sorted(await LedgerEntry.filter(job_id=job["id"]).values_list("entry_type", flat=True))
    assert entries == ["job_debit", "job_refund"]


async def test_terminal_failures_are_not_retried(client: httpx.AsyncClient, account: dict[str, Any], db: Any,
                                                 pages: ThreadingHTTPServer) -> None:
    job, item = await _run(client, account, f"{base_url(pages)}/status/404")
    assert job["status"] == "failed" and item.attempts == 1 and "HTTP 404" in (item.error_message or "")
