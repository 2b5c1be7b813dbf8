"""Helpers for batch tests: stage and upload files, make distinct loopback URLs, wait for a batch."""

from __future__ import annotations

import asyncio
import time
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from tests.pages import base_url

TERMINAL = ("completed", "partially_failed", "failed", "cancelled", "expired")


def slow_urls(site: ThreadingHTTPServer, n: int, secs: float, images: int = 1) -> list[str]:
    """n distinct URLs of pages answering after about `secs` seconds (the digits after make them distinct)."""
    return [f"{base_url(site)}/slow/{secs:.2f}{i:05d}/{images}" for i in range(n)]


async def stage(client: httpx.AsyncClient, headers: dict[str, str], data: bytes, filename: str = "doc.pdf",
                size: int | None = None) -> dict[str, Any]:
    r = await client.post("/api/v1/files", headers=headers,
                          json={"filename": filename, "size_bytes": len(data) if size is None else size})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def stage_and_upload(client: httpx.AsyncClient, headers: dict[str, str], data: bytes,
                           filename: str = "doc.pdf") -> str:
    staged = await stage(client, headers, data, filename)
    up = staged["upload"]
    async with httpx.AsyncClient(timeout=30) as raw:  # a plain client: no API key, the URL is the credential
        r = await raw.request(up["method"], up["url"], content=data, headers=up["headers"])
    assert r.status_code == 200, r.text
    return str(staged["id"])


async def wait_for_batch(client: httpx.AsyncClient, batch_id: str, headers: dict[str, str],
                         timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/api/v1/batches/{batch_id}", headers=headers, params={"limit": 1})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} not finished in {timeout}s: {body}")
        await asyncio.sleep(0.1)


async def all_items(client: httpx.AsyncClient, batch_id: str, headers: dict[str, str],
                    settle: float = 1.1) -> dict[str, dict[str, Any]]:
    """Every item, walking the cursor to the end (after the settle window has passed)."""
    await asyncio.sleep(settle)
    items: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"/api/v1/batches/{batch_id}", headers=headers, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        for item in body["items"]:
            items[item["id"]] = item
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return items
