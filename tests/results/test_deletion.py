"""DELETE /api/v1/jobs/:id and GraphQL deleteJob: rows gone, ledger kept, shared stored bytes kept until the last
job that references them is deleted (listed on disk before and after), running jobs cancelled and refunded,
a second delete is 404, concurrent deletes and submissions of the same bytes stay consistent."""

from __future__ import annotations

import asyncio
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from imageextract.models import Account, IdempotencyRecord, Image, Job, JobItem, LedgerEntry
from imageextract.services.ledger import ledger_sum
from imageextract.storage import content_key
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, png_bytes
from tests.results.conftest import graphql, unique_pdf


def stored_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")}


async def upload(client: httpx.AsyncClient, headers: dict[str, str], pdf: bytes, name: str = "a.pdf",
                 **extra: str) -> str:
    r = await client.post("/api/v1/jobs", headers={**headers, **extra},
                          files=[("files", (name, pdf, "application/pdf"))])
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


async def job_keys(job_id: str) -> set[str]:
    images = await Image.filter(job_id=job_id, storage_key__isnull=False).values_list("storage_key", flat=True)
    uploads = await JobItem.filter(job_id=job_id).values_list("upload_key", flat=True)
    return {k for k in [*images, *uploads] if k}


async def test_delete_keeps_shared_bytes_until_the_last_job(client: httpx.AsyncClient, account: dict[str, Any],
                                                            backend: Any) -> None:
    h = account["headers"]
    root = backend.data_dir / "files"
    shared, own = unique_pdf(2), unique_pdf(3)
    first, second = await upload(client, h, shared), await upload(client, h, shared, name="copy.pdf")
    third = await upload(client, h, own)
    for job_id in (first, second, third):
        assert (await wait_for_job(client, job_id, h))["status"] == "done"
    keys_first, keys_third = await job_keys(first), await job_keys(third)
    assert keys_first == await job_keys(second) and len(keys_first) == 3  # one upload, two images
    before = stored_files(root)
    assert keys_first | keys_third <= before
    debits = await LedgerEntry.filter(job_id=first).count()

    r = await client.delete(f"/api/v1/jobs/{first}", headers=h)
    assert r.status_code == 200 and r.json() == {"deleted": True}
    assert stored_files(root) == before, "the other job still references every key"
    assert not await Job.filter(id=first).exists() and not await JobItem.filter(job_id=first).exists()
    assert not await Image.filter(job_id=first).exists()
    assert await LedgerEntry.filter(job_id=first).count() == debits >= 1, "money history stays"
    for path in ("", "/result", "/items", "/export/csv"):
        assert (await client.get(f"/api/v1/jobs/{first}{path}", headers=h)).status_code == 404
    r = await client.delete(f"/api/v1/jobs/{first}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    result = (await client.get(f"/api/v1/jobs/{second}/result", headers=h)).json()
    for image in result["images"]:
        assert (await client.get(image["url"], headers=h)).status_code == 200

    r = await client.delete(f"/api/v1/jobs/{second}", headers=h)
    assert r.status_code == 200
    assert stored_files(root) == before - keys_first, "last reference gone: bytes gone, nothing else touched"
    assert (await client.get(f"/api/v1/jobs/{third}/result", headers=h)).status_code == 200
    account_row = await Account.get(id=account["account_id"])
    assert await ledger_sum(account["account_id"]) == account_row.credits


async def test_delete_running_job_cancels_and_refunds(client: httpx.AsyncClient, account: dict[str, Any],
                                                      pages: ThreadingHTTPServer, backend: Any) -> None:
    h = account["headers"]
    site = base_url(pages)
    balance = (await Account.get(id=account["account_id"])).credits
    earlier = len(pages.hits)  # type: ignore[attr-defined]  # the page server lives for the whole session
    r = await client.post("/api/v1/jobs", headers={**h, "Idempotency-Key": "del-running"},
                          json={"type": "bulk", "input": [f"{site}/slow/2/{60 + i}" for i in range(3)]})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert (await Account.get(id=account["account_id"])).credits == balance - 3
    deadline = time.monotonic() + 15
    # A source's fetch starts as its item is claimed (pipeline.process_item): wait for both, so the delete
    # comes while an item is running.
    while not (any(h.startswith("/slow/2/6") for h in pages.hits[earlier:])  # type: ignore[attr-defined]
               and await JobItem.filter(job_id=job_id, status="processing").exists()):
        assert time.monotonic() < deadline, "no worker started"
        await asyncio.sleep(0.05)
    r = await client.delete(f"/api/v1/jobs/{job_id}", headers=h)
    assert r.status_code == 200, r.text
    assert (await Account.get(id=account["account_id"])).credits == balance, "unprocessed items refunded"
    refunds = await LedgerEntry.filter(job_id=job_id, entry_type="job_refund").count()
    assert refunds == 3 and await ledger_sum(account["account_id"]) == balance
    assert not await IdempotencyRecord.filter(job_id=job_id).exists()
    # The workers holding the items finish, find nothing to write, and free the bytes they stored that
    # nobody references: no orphan among the images those pages hold.
    deadline, seen, quiet_since = time.monotonic() + 30, -1, time.monotonic()
    while True:
        hits = len(pages.hits)  # type: ignore[attr-defined]
        if hits != seen:
            seen, quiet_since = hits, time.monotonic()
        busy = (await Account.get(id=account["account_id"])).active_items
        if not busy and time.monotonic() - quiet_since > 2.5:  # past the 2 s page delay, nothing fetched
            break
        assert time.monotonic() < deadline, "workers did not finish"
        await asyncio.sleep(0.1)
    assert any(h.startswith("/img/") for h in pages.hits[earlier:]), "workers fetched images"  # type: ignore[attr-defined]
    root = backend.data_dir / "files"
    for i in range(62):
        key = content_key(png_bytes(i), namespace="images", ext="png")
        if (root / key).exists():
            assert await Image.filter(storage_key=key).exists(), f"orphan bytes for image {i}"
    assert not await Image.filter(job_id=job_id).exists() and not await JobItem.filter(job_id=job_id).exists()
    assert (await Account.get(id=account["account_id"])).credits == balance
    # The same Idempotency-Key makes a fresh job now (the deleted one is not replayed).
    r = await client.post("/api/v1/jobs", headers={**h, "Idempotency-Key": "del-running"},
                          json={"type": "bulk", "input": [f"{site}/page/{i}" for i in range(3)]})
    assert r.status_code == 202 and r.json()["job_id"] != job_id


async def test_delete_refusals_and_parity(client: httpx.AsyncClient, server: Any, account: dict[str, Any]) -> None:
    h = account["headers"]
    stranger = await make_account(plan="pro")
    job_id = await upload(client, h, unique_pdf(1))
    await wait_for_job(client, job_id, h)
    mutation = "mutation($id: ID!) { deleteJob(id: $id) { deleted jobId } }"
    for ident, headers in ((job_id, stranger["headers"]), (job_id, {}), ("not-a-uuid", h),
                           ("00000000-0000-0000-0000-000000000000", h), (job_id, {"Authorization": "Bearer nope"})):
        r = await client.delete(f"/api/v1/jobs/{ident}", headers=headers)
        assert r.status_code in (401, 403, 404), r.text
        data, errors = await graphql(server.base_url, headers, mutation, {"id": ident})
        assert errors and data is None
        assert errors[0]["extensions"]["code"] == r.json()["error"]["code"]
        assert errors[0]["message"] == r.json()["error"]["message"]
    assert await Job.filter(id=job_id).exists(), "refused deletes change nothing"
    data, errors = await graphql(server.base_url, h, mutation, {"id": job_id})
    assert errors is None and data == {"deleteJob": {"deleted": True, "jobId": job_id}}
    data, errors = await graphql(server.base_url, h, mutation, {"id": job_id})
    assert errors and errors[0]["extensions"]["code"] == "not_found"


async def test_concurrent_deletes_and_resubmission_of_shared_bytes(client: httpx.AsyncClient,
                                                                   account: dict[str, Any], backend: Any) -> None:
    """Two deletes of jobs sharing bytes at once remove them exactly once; a delete racing a new job that
    stores the same bytes never leaves the new job pointing at missing bytes."""
    h = account["headers"]
    root = backend.data_dir / "files"
    pdf = unique_pdf(2)
    a, b = await upload(client, h, pdf), await upload(client, h, pdf)
    for job_id in (a, b):
        await wait_for_job(client, job_id, h)
    keys = await job_keys(a)
    answers = await asyncio.gather(client.delete(f"/api/v1/jobs/{a}", headers=h),
                                   client.delete(f"/api/v1/jobs/{b}", headers=h))
    assert [r.status_code for r in answers] == [200, 200]
    assert not keys & stored_files(root)
    same = await asyncio.gather(*(client.delete(f"/api/v1/jobs/{x}", headers=h) for x in (a, a)))
    assert [r.status_code for r in same] == [404, 404]

    for _ in range(3):
        old = await upload(client, h, pdf)
        await wait_for_job(client, old, h)
        deleted, new = await asyncio.gather(client.delete(f"/api/v1/jobs/{old}", headers=h), upload(client, h, pdf))
        assert deleted.status_code == 200
        assert (await wait_for_job(client, new, h))["status"] == "done"
        assert await job_keys(new) <= stored_files(root), "every key the new job references has its bytes"
        for image in (await client.get(f"/api/v1/jobs/{new}/result", headers=h)).json()["images"]:
            assert (await client.get(image["url"], headers=h)).status_code == 200
        assert (await client.delete(f"/api/v1/jobs/{new}", headers=h)).status_code == 200
        assert not keys & stored_files(root)
