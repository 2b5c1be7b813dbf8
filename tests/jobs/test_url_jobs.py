"""URL and bulk jobs end to end on the embedded default (SQLite) and on Postgres: submission, pipeline,
results, credits and refunds checked against the ledger, downloads."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from imageextract.models import Account, Image, LedgerEntry
from imageextract.services import ledger
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, png_bytes

IMAGE_FIELDS = {
    "id", "url", "source_url", "source_kind", "filename", "width", "height", "aspect_ratio", "format", "file_size",
    "color_space", "has_alpha", "alt_text", "title", "aria_label", "is_lazy_loaded", "storage_url", "storage_key",
    "document_page", "document_slide", "document_asset_hash", "document_occurrence_count",
}


async def test_url_job_end_to_end(client: httpx.AsyncClient, account: dict[str, Any],
                                  pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    url = f"{base_url(pages)}/page/3"
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": url, "metadata": {"ref": "abc"}})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert set(r.json()) == {"job_id"}
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done" and job["partial"] is False
    assert job["type"] == "url" and job["credits_used"] == 1 and job["image_count"] == 3
    assert job["total_groups"] == 1 and job["completed_groups"] == 1
    assert job["groups"][0]["label"] == url and job["groups"][0]["kind"] == "url"
    assert job["groups"][0]["duration_ms"] is not None and job["metadata"] == {"ref": "abc"}

    r = await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)
    assert r.status_code == 200
    result = r.json()
    assert result["job_id"] == job_id and result["image_count"] == 3 and result["credits_used"] == 1
    images = sorted(result["images"], key=lambda i: i["width"])
    assert IMAGE_FIELDS <= set(images[0])
    for i, img in enumerate(images):
        assert img["source_url"] == f"{base_url(pages)}/img/{i}.png"
        assert (img["width"], img["height"], img["format"]) == (i + 10, i + 5, "png")
        assert img["alt_text"] == f"image {i}" and img["source_kind"] == "web"
        assert img["file_size"] == len(png_bytes(i)) and img["color_space"] == "srgb"
        assert img["has_alpha"] is False
        assert img["url"].startswith(str(client.base_url).rstrip("/") + f"/api/v1/jobs/{job_id}/downloads/images/")
        got = await client.get(img["url"], headers=h)
        assert got.status_code == 200 and got.content == png_bytes(i)
        assert got.headers["content-type"] == "image/png"
        again = await client.get(img["url"], headers=h)
        assert again.content == got.content, "per-image URLs are multi-use"

    # Ledger: one debit of 1, no refund; the balance equals the ledger sum.
    entries = (await client.get("/api/v1/account/credits/ledger", headers=h)).json()["entries"]
    assert [(e["entry_type"], e["amount"]) for e in entries] == [("job_debit", -1), ("grant", 5000)]
    assert (await client.get("/api/v1/account/credits", headers=h)).json()["credits"] == 4999

    # ZIP of everything.
    r = await client.get(f"/api/v1/jobs/{job_id}/download", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="imageextract-{job_id[:8]}.zip"'
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        contents = sorted(zf.read(n) for n in zf.namelist())
        assert contents == sorted(png_bytes(i) for i in range(3))
        assert len(set(zf.namelist())) == 3
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())

    manifest = (await client.get(f"/api/v1/jobs/{job_id}/downloads", headers=h)).json()
    assert manifest["zip_url"].endswith(f"/api/v1/jobs/{job_id}/downloads/zip")
    assert len(manifest["groups"]) == 1 and len(manifest["images"]) == 3
    group_zip = await client.get(manifest["groups"][0]["zip_url"], headers=h)
    assert group_zip.status_code == 200
    with zipfile.ZipFile(io.BytesIO(group_zip.content)) as zf:
        assert len(zf.namelist()) == 3


async def test_bulk_job_partial_failure_refunds(client: httpx.AsyncClient, account: dict[str, Any],
                                                pages: ThreadingHTTPServer, db: Any) -> None:
    h = account["headers"]
    good, bad = f"{base_url(pages)}/page/2", f"{base_url(pages)}/status/500"
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": [good, bad]})
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done" and job["partial"] is True
    assert job["credits_used"] == 1 and job["image_count"] == 2
    items = (await client.get(f"/api/v1/jobs/{job_id}/items", headers=h)).json()["items"]
    assert [(i["position"], i["status"]) for i in items] == [(0, "done"), (1, "failed")]
    assert items[1]["error_code"] == "fetch_failed" and items[1]["error_message"]
    assert items[1]["image_count"] == 0
    # The documented item, exactly: these fields, a UTC timestamp written with Z, warnings a list.
    assert all(set(i) == {"id", "kind", "position", "source_label", "status", "image_count", "failed_image_count",
                          "duration_ms", "error_code", "error_message", "attempts", "warnings", "updated_at"}
               for i in items)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", i["updated_at"]) for i in items)
    assert items[0]["warnings"] == [] and items[0]["source_label"] == good and items[0]["kind"] == "url"
    rows = await LedgerEntry.filter(account_id=account["account_id"], job_id=job_id).order_by("id")
    assert [(e.entry_type, e.amount) for e in rows] == [("job_debit", -2), ("job_refund", 1)]
    assert await ledger.ledger_sum(account["account_id"]) == (await Account.get(id=account["account_id"])).credits == 4999
    assert await Image.filter(job_id=job_id).count() == 2


async def test_failed_job_is_422_and_fully_refunded(client: httpx.AsyncClient, account: dict[str, Any],
                                                    pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/status/404"})
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "failed" and job["credits_used"] == 0
    r = await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "job_failed" and r.json()["error"]["details"]["error_code"] == "fetch_failed"
    assert (await client.get("/api/v1/account/credits", headers=h)).json()["credits"] == 5000
    r = await client.get(f"/api/v1/jobs/{job_id}/download", headers=h)
    assert r.status_code == 404
    # Retry makes a new job and charges again.
    r = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=h)
    assert r.status_code == 202 and r.json()["job_id"] != job_id
    retried = await wait_for_job(client, r.json()["job_id"], h)
    assert retried["status"] == "failed" and retried["retry_of"] == job_id
    r = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=h)
    assert r.status_code == 409


async def test_submission_errors(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    cases: list[tuple[Any, int, str]] = [
        ({"type": "url"}, 400, "validation_error"),
        ({"type": "url", "input": 5}, 400, "validation_error"),
        ({"type": "url", "input": "ftp://example.com/x"}, 400, "validation_error"),
        ({"type": "url", "input": "http://169.254.169.254/latest/meta-data"}, 400, "ssrf_blocked"),
        ({"type": "url", "input": "http://10.1.2.3/"}, 400, "ssrf_blocked"),
        ({"type": "url", "input": "http://[::ffff:10.0.0.1]/"}, 400, "ssrf_blocked"),
        ({"type": "bulk", "input": []}, 400, "validation_error"),
        ({"type": "bulk", "input": [f"http://127.0.0.1:9/{i}" for i in range(6)]}, 400, "validation_error"),
        ({"type": "bulk", "input": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/a"]}, 400, "validation_error"),
        ({"type": "movie", "input": "http://127.0.0.1:9/"}, 400, "validation_error"),
        ({"type": "url", "input": "http://127.0.0.1:9/", "metadata": [1]}, 400, "validation_error"),
        ({"type": "url", "input": "http://127.0.0.1:9/", "metadata": {"x": "y" * 20000}}, 400, "validation_error"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/v1/jobs", headers=h, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, body
    for raw in (b"", b"{", b"[]"):
        r = await client.post("/api/v1/jobs", headers={**h, "content-type": "application/json"}, content=raw)
        assert r.status_code == 400
    assert (await client.get("/api/v1/account/credits", headers=h)).json()["credits"] == 5000, "nothing charged"
    r = await client.get("/api/v1/jobs/not-a-uuid", headers=h)
    assert r.status_code == 404
    r = await client.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_insufficient_credits_is_402_and_writes_nothing(client: httpx.AsyncClient, db: Any) -> None:
    from imageextract.models import IdempotencyRecord, Job, JobItem
    from tests.factories import make_account

    poor = await make_account(plan="pro", credits=1)
    r = await client.post("/api/v1/jobs", headers={**poor["headers"], "Idempotency-Key": "poor-1"},
                          json={"type": "bulk", "input": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]})
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "insufficient_credits"
    assert r.json()["error"]["details"] == {"required": 2, "available": 1}
    # The job, its items, the idempotency record and any ledger entry were one transaction: none is left.
    assert await Job.filter(account_id=poor["account_id"]).count() == 0
    assert await JobItem.filter(job__account_id=poor["account_id"]).count() == 0
    assert not await IdempotencyRecord.filter(scope=poor["account_id"], key="poor-1").exists()
    assert await LedgerEntry.filter(account_id=poor["account_id"], entry_type="job_debit").count() == 0
    assert (await Account.get(id=poor["account_id"])).credits == 1


async def test_idempotency(client: httpx.AsyncClient, account: dict[str, Any], pages: ThreadingHTTPServer,
                           db: Any) -> None:
    h = {**account["headers"], "Idempotency-Key": "6f4a2c0a-race"}
    body = {"type": "url", "input": f"{base_url(pages)}/page/1"}
    responses = await asyncio.gather(*(client.post("/api/v1/jobs", headers=h, json=body) for _ in range(10)))
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    assert len({r.json()["job_id"] for r in responses}) == 1
    debits = await LedgerEntry.filter(account_id=account["account_id"], entry_type="job_debit").count()
    assert debits == 1, "racing duplicates are charged once"
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/page/2"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_foreign_job_is_403(client: httpx.AsyncClient, account: dict[str, Any], pages: ThreadingHTTPServer,
                                  db: Any) -> None:
    from tests.factories import make_account

    r = await client.post("/api/v1/jobs", headers=account["headers"],
                          json={"type": "url", "input": f"{base_url(pages)}/page/1"})
    job_id = r.json()["job_id"]
    await wait_for_job(client, job_id, account["headers"])
    other = await make_account()
    for path in ("", "/items", "/result", "/download", "/downloads", "/stream"):
        r = await client.get(f"/api/v1/jobs/{job_id}{path}", headers=other["headers"])
        assert r.status_code == 403, path
    images = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=account["headers"])).json()["images"]
    r = await client.get(images[0]["url"], headers=other["headers"])
    assert r.status_code == 403
    r = await client.get(images[0]["url"])
    assert r.status_code == 401
    r = await client.get(f"/api/v1/jobs/{job_id}/downloads/images/..%2F..%2Fetc", headers=account["headers"])
    assert r.status_code in (400, 404)
    r = await client.get(f"/api/v1/jobs/{job_id}/downloads/images/img%20x", headers=account["headers"])
    assert r.status_code == 400
    r = await client.get(f"/api/v1/jobs/{job_id}/downloads/images/img_doesnotexist", headers=account["headers"])
    assert r.status_code == 404


async def test_dashboard_jobs_pagination(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer) -> None:
    from tests.factories import make_account

    acc = await make_account()
    ids = []
    for _ in range(3):
        r = await client.post("/api/v1/jobs", headers=acc["headers"],
                              json={"type": "url", "input": f"{base_url(pages)}/page/1"})
        ids.append(r.json()["job_id"])
    r = await client.get("/api/dashboard/jobs?page=1&limit=2", headers=acc["headers"])
    body = r.json()
    assert body["total"] == 3 and body["page"] == 1 and body["limit"] == 2 and body["has_more"] is True
    assert [j["id"] for j in body["jobs"]] == ids[::-1][:2]
    body = (await client.get("/api/dashboard/jobs?page=2&limit=2", headers=acc["headers"])).json()
    assert [j["id"] for j in body["jobs"]] == ids[:1] and body["has_more"] is False
    assert (await client.get("/api/dashboard/jobs?page=0", headers=acc["headers"])).status_code == 400
    assert (await client.get("/api/dashboard/jobs")).status_code == 401
    for job_id in ids:
        await wait_for_job(client, job_id, acc["headers"])
