"""Document uploads through multipart: stored, extracted in the worker, with page provenance; bad uploads."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pymupdf
from PIL import Image as PILImage

from imageextract.models import Job
from tests.jobs.helpers import wait_for_job


def make_pdf(pages: int = 2) -> bytes:
    doc = pymupdf.open()
    for p in range(pages):
        page = doc.new_page()
        img = PILImage.new("RGB", (40 + p, 30), (200, 10 * p, 10))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        page.insert_image(pymupdf.Rect(10, 10, 110, 110), stream=buf.getvalue())
    data = doc.tobytes()
    doc.close()
    return bytes(data)


async def test_document_job(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    files = [("files", ("report.pdf", make_pdf(2), "application/pdf"))]
    r = await client.post("/api/v1/jobs", headers=h, files=files)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done" and job["type"] == "document", job
    assert job["groups"][0]["kind"] == "document" and job["groups"][0]["label"] == "report.pdf"
    images = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()["images"]
    assert sorted((i["document_page"], i["width"]) for i in images) == [(1, 40), (2, 41)]
    for i in images:
        assert i["source_kind"] == "document" and len(i["document_asset_hash"]) == 64
        assert i["document_occurrence_count"] == 1


async def test_upload_errors(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    before = await Job.filter(account_id=account["account_id"]).count()
    r = await client.post("/api/v1/jobs", headers=h, files=[("files", ("x.pdf", b"not a pdf at all", "application/pdf"))])
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    six = [("files", (f"{i}.pdf", make_pdf(1), "application/pdf")) for i in range(6)]
    r = await client.post("/api/v1/jobs", headers=h, files=six)
    assert r.status_code == 413
    r = await client.post("/api/v1/jobs", headers=h, files=[("files", ("big.pdf", b"%PDF-" + b"0" * (51 * 1024 * 1024), "application/pdf"))])
    assert r.status_code == 413
    r = await client.post("/api/v1/jobs", headers=h, files=[("other", ("a.pdf", make_pdf(1), "application/pdf"))])
    assert r.status_code == 400
    r = await client.post("/api/v1/jobs", headers=h, files=[("files", ("empty.pdf", b"", "application/pdf"))])
    assert r.status_code == 400
    r = await client.post("/api/v1/jobs", files=[("files", ("a.pdf", make_pdf(1), "application/pdf"))])
    assert r.status_code == 401, "uploads need an account"
    assert await Job.filter(account_id=account["account_id"]).count() == before
    assert (await client.get("/api/v1/account/credits", headers=h)).json()["credits"] == 5000


async def test_repaired_document_is_done_with_a_warning_in_rest_and_graphql(client: httpx.AsyncClient,
                                                                             account: dict[str, Any]) -> None:
    import re

    h = account["headers"]
    damaged = re.sub(rb"startxref\s+\d+", b"startxref\n99", make_pdf(2))  # MuPDF rebuilds the xref
    files = [("files", ("damaged.pdf", damaged, "application/pdf")), ("files", ("fine.pdf", make_pdf(1), "application/pdf"))]
    r = await client.post("/api/v1/jobs", headers=h, files=files)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done", job
    items = (await client.get(f"/api/v1/jobs/{job_id}/items", headers=h)).json()["items"]
    assert [(i["source_label"], i["status"], i["image_count"], i["warnings"]) for i in items] == [
        ("damaged.pdf", "done", 2, ["document_repaired"]),
        ("fine.pdf", "done", 1, []),
    ]
    r = await client.post("/graphql", headers=h, json={
        "query": "query($id: ID!) { job(id: $id) { items { nodes { sourceLabel warnings } } } }", "variables": {"id": job_id}})
    assert r.json()["data"]["job"]["items"]["nodes"] == [
        {"sourceLabel": "damaged.pdf", "warnings": ["document_repaired"]},
        {"sourceLabel": "fine.pdf", "warnings": []},
    ]
