from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

TERMINAL = ("done", "failed", "cancelled")


async def wait_for_job(client: httpx.AsyncClient, job_id: str, headers: dict[str, str] | None = None,
                       timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/api/v1/jobs/{job_id}", headers=headers or {})
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished in {timeout}s: {body}")
        await asyncio.sleep(0.1)
