"""Every input path of exports: bad bodies, unfinished and foreign jobs, missing credits, foreign exports,
anonymous callers and unsafe file names. Each refusal is the documented envelope and writes nothing."""

from __future__ import annotations

import uuid
from http.server import ThreadingHTTPServer
from typing import Any

import httpx

from imageextract.models import Export, ExportImage, LedgerEntry
from imageextract.services import ledger
from tests.exports.helpers import logo_png, photo_jpeg, upload_job, wait_for_export
from tests.factories import make_account
from tests.pages import base_url


async def _nothing_written(account_id: str, balance: int) -> None:
    assert await Export.filter(account_id=account_id).count() == 0
    assert await ExportImage.filter(export__account_id=account_id).count() == 0
    assert not await LedgerEntry.filter(account_id=account_id, entry_type="export_debit").exists()
    assert await ledger.balance_of(account_id) == balance == await ledger.ledger_sum(account_id)


async def test_bad_bodies_are_400_and_write_nothing(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    job_id, images = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg"), ("b.png", logo_png(), "image/png")])
    image_id = images[0]["id"]
    balance = await ledger.balance_of(account["account_id"])
    url = f"/api/v1/jobs/{job_id}/exports"
    cases: list[tuple[Any, int, str, str]] = [
        ([1], 400, "validation_error", "Request body must be a JSON object"),
        ({"settings": {"format": "gif"}}, 400, "validation_error", "settings.format must be one of webp, avif, jpeg, png, original"),
        ({"settings": {"preset": "ultra"}}, 400, "validation_error", "settings.preset must be one of"),
        ({"settings": {"quality": 80}}, 400, "validation_error", "Unknown settings: quality"),
        ({"settings": "webp"}, 400, "validation_error", "settings must be an object"),
        ({"settings": {"responsive": "yes"}}, 400, "validation_error", "settings.responsive must be true or false"),
        ({"settings": {"strip_metadata": 0}}, 400, "validation_error", "settings.strip_metadata must be true or false"),
        ({"settings": {"responsive_sizes": [10]}}, 400, "validation_error", "settings.responsive_sizes[0] must be a width"),
        ({"settings": {"responsive_sizes": []}}, 400, "validation_error", "settings.responsive_sizes must be a list of 1 to 10"),
        ({"settings": {"responsive_sizes": list(range(100, 1200, 100))}}, 400, "validation_error", "settings.responsive_sizes must be a list of 1 to 10"),
        ({"settings": {"responsive": False, "responsive_sizes": [300]}}, 400, "validation_error", "needs settings.responsive"),
        ({"settings": {"responsive_sizes": [{"w": 300}]}}, 400, "validation_error", "settings.responsive_sizes[0]"),
        ({"image_ids": []}, 400, "validation_error", "image_ids must be a non-empty list"),
        ({"image_ids": "all"}, 400, "validation_error", "image_ids must be a non-empty list"),
        ({"image_ids": [image_id, image_id]}, 400, "validation_error", "image_ids lists the same image twice"),
        ({"image_ids": ["img_000000000000000000000000"]}, 400, "validation_error", "image_ids names images this job does not hold"),
        ({"filenames": ["x"]}, 400, "validation_error", "filenames must be an object"),
        ({"filenames": {"img_nope": "x"}}, 400, "validation_error", "filenames names images that are not in this export"),
        ({"image_ids": [image_id], "filenames": {images[1]["id"]: "x"}}, 400, "validation_error", "filenames names images"),
        ({"filenames": {image_id: ""}}, 400, "validation_error", f"filenames[{image_id}] must be a name"),
        ({"filenames": {image_id: 7}}, 400, "validation_error", f"filenames[{image_id}] must be a name"),
        ({"format": "webp"}, 400, "validation_error", "Unknown fields: format"),
    ]
    for body, status, code, message in cases:
        r = await client.post(url, headers=h, json=body)
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == code and message in error["message"], (body, error)
    r = await client.post(url, headers=h | {"content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["message"] == "Request body is not valid JSON"
    await _nothing_written(account["account_id"], balance)


async def test_jobs_that_cannot_be_exported(client: httpx.AsyncClient, account: dict[str, Any], db: Any,
                                            pages: ThreadingHTTPServer) -> None:
    h = account["headers"]
    balance = await ledger.balance_of(account["account_id"])
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    await _nothing_written(account["account_id"], balance)

    # A running job: 409, nothing written.
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/slow/3/1"})
    running = r.json()["job_id"]
    balance = await ledger.balance_of(account["account_id"])
    r = await client.post(f"/api/v1/jobs/{running}/exports", headers=h, json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_not_finished", r.text
    # A finished job without stored images: 422.
    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/page/0"})
    from tests.jobs.helpers import wait_for_job

    empty = r.json()["job_id"]
    await wait_for_job(client, empty, h)
    balance = await ledger.balance_of(account["account_id"])
    r = await client.post(f"/api/v1/jobs/{empty}/exports", headers=h, json={})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_images", r.text
    await _nothing_written(account["account_id"], balance)


async def test_credits_are_checked_before_anything_is_written(client: httpx.AsyncClient, db: Any) -> None:
    poor = await make_account(plan="pro", credits=3)
    h = poor["headers"]
    job_id, _ = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg"), ("b.png", logo_png(), "image/png")])
    assert await ledger.balance_of(poor["account_id"]) == 1
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_credits", r.text
    assert r.json()["error"]["details"] == {"required": 2, "available": 1}
    await _nothing_written(poor["account_id"], 1)


async def test_exports_are_owner_only(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    job_id, _ = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg")])
    export_id = (await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})).json()["export_id"]
    export = await wait_for_export(client, export_id, h)
    filename = export["images"][0]["variants"][0]["filename"]
    other = await make_account(plan="pro")
    other_balance = await ledger.balance_of(other["account_id"])
    reads = [f"/api/v1/exports/{export_id}", f"/api/v1/exports/{export_id}/download",
             f"/api/v1/exports/{export_id}/download?filename={filename}",
             f"/api/v1/exports/{export_id}/files/{filename}", f"/api/v1/exports/{export_id}/stream"]
    # Another account: 404 for its job and its export alike, nothing of A's in the answer.
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=other["headers"], json={})
    assert r.status_code == 404 and r.json()["error"] == {"code": "not_found", "message": "Job not found",
                                                          "details": {"job_id": job_id}}
    await _nothing_written(other["account_id"], other_balance)
    for url in reads:
        r = await client.get(url, headers=other["headers"])
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (url, r.text)
    # No credentials, or bad ones: 401.
    for headers in ({}, {"Authorization": "Bearer ie_live_nope"}):
        r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=headers, json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        for url in reads:
            r = await client.get(url, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (url, r.text)
    # Unknown ids and file names: 404; unsafe names: 400 invalid_request (spec 001).
    for url in (f"/api/v1/exports/exp_{'0' * 24}", f"/api/v1/exports/{export_id}/files/nothing.webp",
                f"/api/v1/exports/exp_{'0' * 24}/files/{filename}",
                f"/api/v1/exports/{export_id}/download?filename=nothing.webp", f"/api/v1/exports/{'x' * 300}"):
        r = await client.get(url, headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (url, r.text)
    r = await client.get(f"/api/v1/exports/{export_id}/files/..%2F..%2Fetc%2Fpasswd", headers=h)
    assert r.status_code == 404, "a slash never reaches the handler: no route matches"
    for name in (".hidden", "a%20b.webp", "..webp", "-x.webp"):
        r = await client.get(f"/api/v1/exports/{export_id}/files/{name}", headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (name, r.text)
    # The owner's own project key (the job is in the Default project) reads it; downloads are multi-use.
    from imageextract.services.keys import _issue

    issued = await _issue(account_id=account["account_id"], kind="project", project_id=account["project_id"],
                          user_id=None, label="exports")
    project_key = {"Authorization": f"Bearer {issued.key}"}
    for _ in range(2):
        r = await client.get(f"/api/v1/exports/{export_id}/files/{filename}", headers=project_key)
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"


async def test_download_waits_for_the_export(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    path = "/api/v1/exports/{id}/download"
    h = account["headers"]
    job_id, _ = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg")])
    export_id = (await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h,
                                   json={"settings": {"format": "avif", "preset": "maximum"}})).json()["export_id"]
    r = await client.get(path.format(id=export_id), headers=h)
    if r.status_code == 202:  # still converting: the documented not-ready answer
        assert r.json()["error"]["code"] == "not_ready"
    else:
        assert r.status_code == 200
    await wait_for_export(client, export_id, h)
    assert (await client.get(path.format(id=export_id), headers=h)).status_code == 200


async def test_daily_credit_cap_counts_exports(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer) -> None:
    free = await make_account(plan="free")  # daily cap of 10 credits
    h = free["headers"]
    from tests.jobs.helpers import wait_for_job

    r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(pages)}/page/10"})
    job_id = r.json()["job_id"]
    assert (await wait_for_job(client, job_id, h))["image_count"] == 10
    balance = await ledger.balance_of(free["account_id"])
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})
    assert r.status_code == 402 and r.json()["error"]["code"] == "daily_credit_cap", r.text
    assert r.json()["error"]["details"] == {"daily_credit_cap": 10, "spent_today": 1, "required": 10}
    await _nothing_written(free["account_id"], balance)
    images = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()["images"]
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={"image_ids": [i["id"] for i in images[:9]]})
    assert r.status_code == 202, "9 more credits reach the cap exactly"
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={"image_ids": [images[9]["id"]]})
    assert r.status_code == 402 and r.json()["error"]["details"]["spent_today"] == 10
