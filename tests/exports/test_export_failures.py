"""Images that cannot be converted: refunded one by one, reported per image; the export is partial or failed,
and SSE says so with the events spec 002 names."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx

from imageextract.models import ExportImage, LedgerEntry
from imageextract.services import ledger
from tests.exports.helpers import SVG, bomb_png, photo_jpeg, upload_job, wait_for_export


async def _sse(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                assert name is not None
                events.append((name, json.loads(line[len("data: "):])))
    return events


async def test_failed_images_are_refunded_and_reported(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    job_id, images = await upload_job(client, h, [("photo.jpg", photo_jpeg(), "image/jpeg"),
                                                  ("bomb.png", bomb_png(), "image/png"),
                                                  ("truncated.jpg", photo_jpeg()[:3000], "image/jpeg"),
                                                  ("vector.svg", SVG, "image/svg+xml")])
    before = await ledger.balance_of(account["account_id"])
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={"settings": {"format": "avif"}})
    assert r.status_code == 202, r.text
    export_id = r.json()["export_id"]
    events = await _sse(client, f"/api/v1/exports/{export_id}/stream", h)
    export = await wait_for_export(client, export_id, h)
    assert export["status"] == "partial" and export["failed_images"] == 3 and export["credits_used"] == 1, export
    errors = {i["filename"].rsplit(".", 1)[0]: (i["status"], i["error_code"]) for i in export["images"]}
    assert errors == {"photo": ("done", None), "bomb": ("failed", "image_too_large"),
                      "truncated": ("failed", "unsupported_input"), "vector": ("failed", "unsupported_input")}
    for image in export["images"]:
        assert (image["error"] is None) == (image["status"] == "done")
        assert (image["variants"] == []) == (image["status"] == "failed")

    # 4 debited in one entry, 3 refunded one by one; the ledger sums to the balance.
    debits = await LedgerEntry.filter(account_id=account["account_id"], entry_type="export_debit")
    refunds = await LedgerEntry.filter(account_id=account["account_id"], entry_type="export_refund")
    assert [d.amount for d in debits] == [-4] and sorted(r.amount for r in refunds) == [1, 1, 1]
    assert await ledger.balance_of(account["account_id"]) == before - 1 == await ledger.ledger_sum(account["account_id"])
    assert await ExportImage.filter(export_id=export_id, refunded=True).count() == 3

    # SSE: progress events, then `complete` with every result (a partial export completes).
    names = [n for n, _ in events]
    assert names[-1] == "complete" and set(names[:-1]) == {"progress"}, names
    complete = events[-1][1]
    assert complete["status"] == "partial" and len(complete["results"]) == 4
    assert complete["results"] == export["images"]
    assert all({"image_id", "status", "step", "current", "total"} <= set(d) for n, d in events if n == "progress")

    r = await client.get(f"/api/v1/exports/{export_id}/download", headers=h)
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == ["photo.avif"]


async def test_export_where_every_image_fails(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    job_id, _ = await upload_job(client, h, [("vector.svg", SVG, "image/svg+xml")])
    before = await ledger.balance_of(account["account_id"])
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})
    export_id = r.json()["export_id"]
    export = await wait_for_export(client, export_id, h)
    assert export["status"] == "failed" and export["credits_used"] == 0
    assert await ledger.balance_of(account["account_id"]) == before == await ledger.ledger_sum(account["account_id"])
    events = await _sse(client, f"/api/v1/exports/{export_id}/stream", h)
    assert [n for n, _ in events] == ["progress", "error"]
    assert "could not be decoded" in events[-1][1]["error"]
    r = await client.get(f"/api/v1/exports/{export_id}/download", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
