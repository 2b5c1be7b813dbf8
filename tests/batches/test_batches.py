"""The batch lane end to end on each backend (embedded worker): staged uploads through signed URLs,
submission, partial failure with refunds, results, idempotency, credits, cancellation, fairness."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from imageextract.models import Account, Batch, Job, JobItem, LedgerEntry, StagedFile
from imageextract.services import ledger
from tests.batches.helpers import all_items, slow_urls, stage, stage_and_upload, wait_for_batch
from tests.extract.docfixtures import png, simple_pdf
from tests.factories import make_account
from tests.pages import base_url


async def _ledger_consistent(account_id: str) -> int:
    balance = await ledger.balance_of(account_id)
    assert await ledger.ledger_sum(account_id) == balance
    return balance


async def test_files_batch_partial_failure_refunds_and_results(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    before = await _ledger_consistent(account["account_id"])
    good = [await stage_and_upload(client, h, simple_pdf(pages=1 + i % 2), f"doc-{i}.pdf") for i in range(3)]
    corrupt = await stage_and_upload(client, h, b"%PDF-1.7\n" + b"\x00garbage" * 50, "broken.pdf")
    never_uploaded = (await stage(client, h, simple_pdf(1), "late.pdf"))["id"]
    file_ids = [*good, corrupt, never_uploaded]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": file_ids}})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "pending" and created["total_items"] == 5
    batch_id = created["id"]
    # Credits for the whole batch went in one entry at submission.
    debits = await LedgerEntry.filter(job_id=batch_id, entry_type="job_debit").values_list("amount", flat=True)
    assert debits == [-5]

    final = await wait_for_batch(client, batch_id, h)
    assert final["status"] == "partially_failed", final
    assert final["counts"] == {"pending": 0, "running": 0, "succeeded": 3, "failed": 2, "cancelled": 0}
    items = await all_items(client, batch_id, h)
    by_source = {i["source"]: i for i in items.values()}
    assert by_source["late.pdf"]["error"]["code"] == "upload_missing"
    assert by_source["broken.pdf"]["status"] == "failed"
    assert by_source["broken.pdf"]["error"]["code"] in ("extraction_failed", "unsupported_input")
    assert by_source["broken.pdf"]["result_url"] is None
    for name in ("doc-0.pdf", "doc-1.pdf", "doc-2.pdf"):
        item = by_source[name]
        assert item["status"] == "succeeded" and item["error"] is None
        assert item["result_url"] == f"/api/v1/batches/{batch_id}/items/{item['id']}/result"
    # Failed items were refunded; the ledger still sums to the balance.
    after = await _ledger_consistent(account["account_id"])
    assert before - after == 3

    # The result: a 302 to a signed, expiring URL that needs no other credential.
    item = by_source["doc-1.pdf"]
    r = await client.get(item["result_url"], headers=h)
    assert r.status_code == 302, r.text
    signed = r.headers["location"]
    assert "signature=" in signed and "expires=" in signed
    async with httpx.AsyncClient(timeout=30) as raw:
        got = await raw.get(signed)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["item_id"] == item["id"] and body["source"] == "doc-1.pdf"
        assert len(body["images"]) == 2 and all(img["url"] for img in body["images"])
        tampered = await raw.get(signed.replace("signature=", "signature=0"))
        assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "invalid_signature"
    # A failed item has no result; a pending one would be 202; a foreign item 404.
    r = await client.get(f"/api/v1/batches/{batch_id}/items/{by_source['late.pdf']['id']}/result", headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "item_failed"
    other = await make_account()
    r = await client.get(item["result_url"], headers=other["headers"])
    assert r.status_code == 404
    r = await client.get(f"/api/v1/batches/{batch_id}", headers=other["headers"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # The batch is a job on the one pipeline: its items are ordinary job items.
    assert await JobItem.filter(job_id=batch_id).count() == 5
    assert (await Job.get(id=batch_id)).type == "batch"


async def test_x_api_key_alias_and_anonymous(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    alias = {"X-API-Key": account["api_key"]}
    r = await client.post("/api/v1/files", headers=alias, json={"filename": "a.pdf", "size_bytes": 10})
    assert r.status_code == 201, r.text
    for method, path, body in (("POST", "/api/v1/files", {"filename": "a.pdf", "size_bytes": 10}),
                               ("POST", "/api/v1/batches", {"source": {"type": "urls", "urls": ["http://x.test/"]}}),
                               ("GET", "/api/v1/batches/00000000-0000-0000-0000-000000000000", None)):
        r = await client.request(method, path, json=body)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
    r = await client.post("/api/v1/files", headers={"X-API-Key": "ie_live_wrong"},
                          json={"filename": "a.pdf", "size_bytes": 10})
    assert r.status_code == 401


async def test_staging_bad_inputs(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "validation_error"),
        ({"filename": "", "size_bytes": 10}, 400, "validation_error"),
        ({"filename": "a.pdf"}, 400, "validation_error"),
        ({"filename": "a.pdf", "size_bytes": 0}, 400, "validation_error"),
        ({"filename": "a.pdf", "size_bytes": "10"}, 400, "validation_error"),
        ({"filename": "a.pdf", "size_bytes": True}, 400, "validation_error"),
        ({"filename": "a.pdf", "size_bytes": 51 * 1024 * 1024}, 413, "document_too_large"),  # pro: 50 MB
        ({"filename": "a.exe", "size_bytes": 10, "content_type": "application/x-msdownload"}, 415, "unsupported_input"),
        ({"filename": "a.pdf", "size_bytes": 10, "colour": "red"}, 400, "validation_error"),
        ([1, 2], 400, "validation_error"),
    ]
    before = await StagedFile.filter(account_id=account["account_id"]).count()
    for body, status, code in cases:
        r = await client.post("/api/v1/files", headers=h, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.text)
    r = await client.post("/api/v1/files", headers=h, content=b"{not json")
    assert r.status_code == 400
    assert await StagedFile.filter(account_id=account["account_id"]).count() == before, "nothing half-written"


async def test_signed_upload_checks_on_arrival(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    from imageextract.services.staged_files import sign

    h = account["headers"]
    data = simple_pdf(1)
    staged = await stage(client, h, data)
    url = staged["upload"]["url"]
    assert staged["upload"]["method"] == "PUT"
    assert datetime.fromisoformat(staged["upload"]["expires_at"]) > datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as raw:
        # Wrong size (both ways), then bytes that are no document: refused, and the URL stays usable.
        r = await raw.put(url, content=data + b"extra")
        assert r.status_code == 413 and r.json()["error"]["code"] == "document_too_large"
        r = await raw.put(url, content=data[:-5])
        assert r.status_code == 400 and r.json()["error"]["code"] == "size_mismatch"
        r = await raw.put(url, content=b"MZ" + b"\x00" * (len(data) - 2))
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_input"
        assert (await StagedFile.get(id=staged["id"])).status == "pending"
        # A forged or altered URL: 403.
        r = await raw.put(url.replace("signature=", "signature=ab"), content=data)
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
        other = await stage(client, h, data)
        r = await raw.put(url.replace(f"file={staged['id']}", f"file={other['id']}"), content=data)
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
        r = await raw.put(url.split("?")[0], content=data)
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
        later = int(url.split("expires=")[1].split("&")[0]) + 3600
        r = await raw.put(url.replace(f"expires={later - 3600}", f"expires={later}"), content=data)
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
        # Expired: a genuinely signed URL whose time has passed.
        past = int(time.time()) - 5
        expired = f"{client.base_url}/api/v1/files/upload?file={staged['id']}&expires={past}&signature=" \
                  f"{sign(db.settings(), 'upload', staged['id'], past)}"
        r = await raw.put(expired, content=data)
        assert r.status_code == 403 and r.json()["error"]["code"] == "url_expired"
        # The right bytes: stored; the URL is single-use.
        r = await raw.put(url, content=data)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "uploaded" and r.json()["detected_type"] == "pdf"
        r = await raw.put(url, content=data)
        assert r.status_code == 409 and r.json()["error"]["code"] == "upload_url_used"
    record = await StagedFile.get(id=staged["id"])
    stored = (db.data_dir / "files" / record.storage_key).read_bytes()
    assert stored == data


async def test_submission_bad_inputs_write_nothing(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    other = await make_account()
    foreign = await stage_and_upload(client, other["headers"], png((1, 2, 3)), "x.png")
    mine = await stage_and_upload(client, h, png((1, 2, 3)), "x.png")
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "validation_error"),
        ({"source": "files"}, 400, "validation_error"),
        ({"source": {"type": "zip", "file_ids": [mine]}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": []}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": [mine, mine]}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": [mine], "urls": []}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": [1]}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": ["f"] * 10_001}}, 400, "validation_error"),
        ({"source": {"type": "urls", "urls": ["ftp://x.test/a"]}}, 400, "validation_error"),
        ({"source": {"type": "urls", "urls": ["not a url"]}}, 400, "validation_error"),
        ({"source": {"type": "files", "file_ids": [mine, foreign]}}, 404, "not_found"),
        ({"source": {"type": "files", "file_ids": [mine, "file_doesnotexist"]}}, 404, "not_found"),
        ({"source": {"type": "files", "file_ids": [mine]}, "extra": 1}, 400, "validation_error"),
    ]
    before = await _ledger_consistent(account["account_id"])
    for body, status, code in cases:
        r = await client.post("/api/v1/batches", headers=h, json=body)
        assert r.status_code == status, (str(body)[:200], r.text)
        assert r.json()["error"]["code"] == code, (str(body)[:200], r.text)
    assert await Job.filter(account_id=account["account_id"]).count() == 0
    assert (await StagedFile.get(id=mine)).batch_id is None, "a refused batch claims no file"
    assert await _ledger_consistent(account["account_id"]) == before
    # A file already used by a batch cannot go into another.
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": [mine]}})
    assert r.status_code == 201
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": [mine]}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "file_already_used"


async def test_insufficient_credits_creates_nothing(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    poor = await make_account(plan="pro", credits=5)
    h = poor["headers"]
    balance = await _ledger_consistent(poor["account_id"])
    files = [await stage_and_upload(client, h, png((i, 2, 3)), f"{i}.png") for i in range(3)]
    r = await client.post("/api/v1/batches", headers=h,
                          json={"source": {"type": "urls", "urls": slow_urls(site, balance + 1, 0)}})
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "insufficient_credits"
    assert await Job.filter(account_id=poor["account_id"]).count() == 0
    assert await JobItem.filter(job__account_id=poor["account_id"]).count() == 0
    assert await _ledger_consistent(poor["account_id"]) == balance
    # Enough for the files: accepted, and the files are claimed only now.
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": files}})
    assert r.status_code == 201, r.text
    assert await StagedFile.filter(id__in=files, batch_id=r.json()["id"]).count() == 3
    assert await _ledger_consistent(poor["account_id"]) == balance - 3


async def test_idempotency_key(client: httpx.AsyncClient, account: dict[str, Any], site: ThreadingHTTPServer) -> None:
    h = account["headers"]
    body = {"source": {"type": "urls", "urls": slow_urls(site, 3, 0)}}
    key = {"Idempotency-Key": f"run-{time.time()}"}
    first = await client.post("/api/v1/batches", headers=h | key, json=body)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/batches", headers=h | key, json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await Job.filter(account_id=account["account_id"], type="batch").count() == 1
    assert await LedgerEntry.filter(account_id=account["account_id"], entry_type="job_debit").count() == 1
    different = await client.post("/api/v1/batches", headers=h | key,
                                  json={"source": {"type": "urls", "urls": slow_urls(site, 2, 0)}})
    assert different.status_code == 409 and different.json()["error"]["code"] == "conflict"
    r = await client.post("/api/v1/batches", headers=h | {"Idempotency-Key": "k" * 256}, json=body)
    assert r.status_code == 400


async def test_submission_rate_limit(client: httpx.AsyncClient, account: dict[str, Any], site: ThreadingHTTPServer) -> None:
    h = account["headers"]
    if datetime.now(UTC).second > 45:  # the window is the UTC minute: start in a fresh one
        await asyncio.sleep(61 - datetime.now(UTC).second)
    url = slow_urls(site, 1, 0)
    statuses = []
    for _ in range(61):
        r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": url}})
        statuses.append(r.status_code)
    assert statuses[:60] == [201] * 60
    assert statuses[60] == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert await Job.filter(account_id=account["account_id"], type="batch").count() == 60


async def test_cancel_mid_batch_refunds_pending(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account(plan="starter")  # 5 at a time
    h = acc["headers"]
    before = await _ledger_consistent(acc["account_id"])
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 60, 0.2)}})
    assert r.status_code == 201, r.text
    batch_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while (await client.get(f"/api/v1/batches/{batch_id}", headers=h)).json()["counts"]["succeeded"] < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    r = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["cancelled"] > 0
    final = await wait_for_batch(client, batch_id, h)
    counts = final["counts"]
    assert final["status"] == "completed", final  # some succeeded, none failed
    assert counts["cancelled"] > 30 and counts["succeeded"] >= 3
    assert counts["succeeded"] + counts["cancelled"] == 60 and counts["failed"] == 0
    # Cancelled items were refunded, the rest paid: the ledger sums to the balance.
    after = await _ledger_consistent(acc["account_id"])
    assert before - after == counts["succeeded"]
    assert (await Batch.get(id=batch_id)).cancel_requested_at is not None
    r = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=h)
    assert r.status_code == 409
    r = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=(await make_account())["headers"])
    assert r.status_code == 404


async def test_cancel_before_start_is_cancelled(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account(plan="starter")
    h = acc["headers"]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 20, 0.5)}})
    batch_id = r.json()["id"]
    r = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=h)
    assert r.status_code == 200
    final = await wait_for_batch(client, batch_id, h)
    assert final["counts"]["succeeded"] <= 5  # at most the first window had started
    assert final["status"] == ("cancelled" if final["counts"]["succeeded"] == 0 else "completed")


async def test_small_job_of_another_account_finishes_while_a_big_batch_runs(
        client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    big, small = await make_account(plan="pro"), await make_account(plan="pro")
    r = await client.post("/api/v1/batches", headers=big["headers"],
                          json={"source": {"type": "urls", "urls": slow_urls(site, 200, 0.1)}})
    assert r.status_code == 201
    batch_id = r.json()["id"]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    r = await client.post("/api/v1/jobs", headers=small["headers"], json={"type": "url", "input": f"{base_url(site)}/page/2"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    while (body := (await client.get(f"/api/v1/jobs/{job_id}", headers=small["headers"])).json())["status"] not in (
            "done", "failed"):
        assert time.monotonic() - started < 30, "the small job starved"
        await asyncio.sleep(0.05)
    assert body["status"] == "done"
    state = (await client.get(f"/api/v1/batches/{batch_id}", headers=big["headers"])).json()
    assert state["status"] == "running" and state["counts"]["pending"] > 50, state
    # The batch never held more than its window in the queue, nor ran more than the plan allows.
    account = await Account.get(id=big["account_id"])
    assert account.active_items <= 10
    await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=big["headers"])
    await wait_for_batch(client, batch_id, big["headers"])


async def test_expired_staged_file_cannot_be_used_or_uploaded(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    data = png((7, 7, 7))
    staged = await stage(client, h, data, "old.png")
    uploaded = await stage_and_upload(client, h, data, "done.png")
    # A day has passed for these two (their window is what the sweep and submission read).
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    await StagedFile.filter(id__in=[staged["id"], uploaded]).update(expires_at=past)
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": [uploaded]}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "file_expired", r.text
    assert await Job.filter(account_id=account["account_id"]).count() == 0
    async with httpx.AsyncClient(timeout=30) as raw:
        r = await raw.put(staged["upload"]["url"], content=data)
    # Refused either way: expired (403), or already removed by the sweep, which runs every second here (404).
    assert (r.status_code, r.json()["error"]["code"]) in ((403, "url_expired"), (404, "not_found")), r.text
