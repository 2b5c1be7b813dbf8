"""GET /api/v1/jobs/:id/export/{csv|xlsx|json|xml}: each format parsed back by its own library and compared with
GET /api/v1/jobs/:id/result; hostile text stays inert (CSV formulas, XML markup); the result rule (202, 422);
headers; GraphQL's exportUrl."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import openpyxl
import pytest
from lxml import etree

from imageextract.models import Image, Job, JobItem
from imageextract.services.result_exports import COLUMNS
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.results.conftest import graphql, seed_job, unique_pdf

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
}
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def expected_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """What every tabular export must say, from /result (variants flattened as documented)."""
    rows = []
    for image in result["images"]:
        row = {c: image.get(c) for c in COLUMNS}
        row["variants_count"] = len(image["variants"])
        row["variants_json"] = image["variants"]
        rows.append(row)
    return rows


def _typed(column: str, text: str | None, sample: Any) -> Any:
    """A cell's text back to the /result value of that column (variants_json as the list it encodes)."""
    if text is None:
        return None
    if text == "":
        return "" if sample == "" else None
    if column == "variants_json":
        return json.loads(text)
    if isinstance(sample, bool):
        return text == "true"
    if isinstance(sample, int):
        return int(text)
    if isinstance(sample, float):
        return float(text)
    return text


def parse_csv(body: bytes, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(body.decode()))
    header = next(reader)
    assert tuple(header) == COLUMNS
    rows = []
    for raw, want in zip(reader, expected, strict=True):
        row = {}
        for column, text in zip(header, raw, strict=True):
            sample = want[column]
            if isinstance(sample, str) and sample.startswith(("=", "+", "-", "@", "\t", "\r")):
                assert text == "'" + sample, (column, text)  # neutralised for spreadsheets
                text = sample
            row[column] = _typed(column, text, sample)
        rows.append(row)
    return rows


def parse_xlsx(body: bytes) -> list[dict[str, Any]]:
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True)["images"]
    lines = list(sheet.iter_rows())
    assert tuple(c.value for c in lines[0]) == COLUMNS
    rows = []
    for line in lines[1:]:
        cells = {c: None for c in COLUMNS} | {COLUMNS[i]: cell.value for i, cell in enumerate(line)}
        for cell in line:
            if isinstance(cell.value, str):
                assert cell.data_type == "s", "text is never stored as a formula"
        cells["variants_json"] = json.loads(cells["variants_json"])
        rows.append(cells)
    return rows


def parse_xml(body: bytes, job_id: str) -> list[dict[str, Any]]:
    root = etree.fromstring(body)
    assert root.tag == "job" and root.get("id") == job_id
    rows = []
    for element in root.find("images"):
        row: dict[str, Any] = {c: None for c in COLUMNS}
        for child in element:
            row[child.tag] = child.text or ""
        rows.append(row)
    return rows


def typed_xml(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{c: _typed(c, row[c], want[c]) if row[c] is not None else None for c in COLUMNS}
            for row, want in zip(rows, expected, strict=True)]


def without_illegal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{c: XML_ILLEGAL.sub("", v) if isinstance(v, str) and c != "variants_json" else v
             for c, v in row.items()} for row in rows]


async def check_all_formats(client: httpx.AsyncClient, h: dict[str, str], job_id: str, *,
                            xml_normalise: bool = False) -> dict[str, Any]:
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()
    want = expected_rows(result)
    bodies: dict[str, bytes] = {}
    for fmt, content_type in CONTENT_TYPES.items():
        r = await client.get(f"/api/v1/jobs/{job_id}/export/{fmt}", headers=h)
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["content-type"] == content_type
        assert r.headers["content-disposition"] == f'attachment; filename="job-{job_id}.{fmt}"'
        bodies[fmt] = r.content
    assert json.loads(bodies["json"]) == result, "json is exactly the result object"
    assert parse_csv(bodies["csv"], want) == want
    xlsx = parse_xlsx(bodies["xlsx"])
    assert without_illegal(xlsx) == without_illegal(want) if xml_normalise else xlsx == want
    xml = typed_xml(parse_xml(bodies["xml"], job_id), want)
    assert xml == (without_illegal(want) if xml_normalise else want)
    return result


async def test_document_job_exports_match_result(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    r = await client.post("/api/v1/jobs", headers=h, files=[("files", ("deck.pdf", unique_pdf(3), "application/pdf"))])
    job_id = r.json()["job_id"]
    assert (await wait_for_job(client, job_id, h))["status"] == "done"
    result = await check_all_formats(client, h, job_id)
    assert len(result["images"]) == 3


HOSTILE = [
    {"alt_text": '=HYPERLINK("http://evil.example","click")', "title": "+SUM(A1:A9)", "aria_label": "@cmd",
     "filename": "-2+3.png", "variants": [{"url": "https://cdn.example/a.png?x=1&y=<2>", "descriptor": "2x"}]},
    {"alt_text": "</alt_text><injected>&amp;\"'", "title": "tab\tand\rreturn", "aria_label": "\tlead",
     "filename": "ctl\x01char.png", "variants": []},
    {"alt_text": "plain, with \"quotes\"\nand a newline", "title": None, "aria_label": "ünïcödé ✓",
     "filename": "ok.png", "variants": None},
]


async def seed_done_job_with_images(account: dict[str, Any], images: list[dict[str, Any]]) -> str:
    job_id = await seed_job(account["account_id"], project_id=account["project_id"], type="url", status="done",
                            created_at=datetime.now(UTC), finished_at=datetime.now(UTC))
    item = await JobItem.get(job_id=job_id)
    rows = [Image(job_id=job_id, item_id=item.id, position=i, source_kind="img", source_url=f"https://x.example/{i}",
                  storage_key=f"images/aa/bb/{uuid.uuid4().hex}.png", content_hash=uuid.uuid4().hex, width=10 + i,
                  height=5, aspect_ratio=2.0, format="png", file_size=123, has_alpha=bool(i % 2), is_lazy_loaded=i == 0,
                  **fields) for i, fields in enumerate(images)]
    await Image.bulk_create(rows)
    await Job.filter(id=job_id).update(image_count=len(rows))
    return job_id


async def test_hostile_text_stays_inert(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    job_id = await seed_done_job_with_images(account, HOSTILE)
    await check_all_formats(client, h, job_id, xml_normalise=True)
    body = (await client.get(f"/api/v1/jobs/{job_id}/export/csv", headers=h)).text
    assert "'=HYPERLINK(" in body and "'+SUM(" in body and "'@cmd" in body and "'-2+3.png" in body


async def test_paging_keeps_result_order_across_pages(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    """More images than one export page (1,000), over two items: rows in /result order, none lost."""
    h = account["headers"]
    job_id = await seed_done_job_with_images(account, [{"filename": f"f{i}.png"} for i in range(1205)])
    second = await JobItem.create(job_id=job_id, position=1, kind="url", source_label="b", status="done")
    await Image.bulk_create([Image(job_id=job_id, item_id=second.id, position=i, source_kind="img",
                                   filename=f"g{i}.png", storage_key=f"images/cc/dd/{uuid.uuid4().hex}.png")
                             for i in range(3)])
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()
    names = [i["filename"] for i in result["images"]]
    assert len(names) == 1208
    r = await client.get(f"/api/v1/jobs/{job_id}/export/csv", headers=h)
    assert [row["filename"] for row in csv.DictReader(io.StringIO(r.text))] == names
    assert json.loads((await client.get(f"/api/v1/jobs/{job_id}/export/json", headers=h)).content) == result


@pytest.mark.parametrize("status,code,http", [("queued", "not_ready", 202), ("processing", "not_ready", 202),
                                              ("failed", "job_failed", 422), ("cancelled", "job_cancelled", 422)])
async def test_result_rule(client: httpx.AsyncClient, account: dict[str, Any], status: str, code: str,
                           http: int) -> None:
    h = account["headers"]
    job_id = await seed_job(account["account_id"], project_id=account["project_id"], status=status,
                            created_at=datetime.now(UTC))
    for fmt in CONTENT_TYPES:
        r = await client.get(f"/api/v1/jobs/{job_id}/export/{fmt}", headers=h)
        result = await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)
        assert r.status_code == result.status_code == http
        assert r.json() == result.json() and r.json()["error"]["code"] == code


async def test_export_refusals_and_graphql_url(client: httpx.AsyncClient, server: Any,
                                               account: dict[str, Any]) -> None:
    h = account["headers"]
    job_id = await seed_done_job_with_images(account, [{"filename": "a.png"}])
    stranger = await make_account(plan="pro")
    query = "query($id: ID!, $f: String!) { job(id: $id) { exportUrl(format: $f) } }"
    for fmt in CONTENT_TYPES:
        data, errors = await graphql(server.base_url, h, query, {"id": job_id, "f": fmt})
        assert errors is None and data is not None
        url = data["job"]["exportUrl"]
        assert url == f"{server.base_url}/api/v1/jobs/{job_id}/export/{fmt}"
        assert (await client.get(url, headers=h)).status_code == 200
    r = await client.get(f"/api/v1/jobs/{job_id}/export/pdf", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"
    data, errors = await graphql(server.base_url, h, query, {"id": job_id, "f": "pdf"})
    assert errors and errors[0]["extensions"]["code"] == "validation_error"
    assert errors[0]["message"] == r.json()["error"]["message"]
    for headers in (stranger["headers"], {}):
        r = await client.get(f"/api/v1/jobs/{job_id}/export/csv", headers=headers)
        data, errors = await graphql(server.base_url, headers, query, {"id": job_id, "f": "csv"})
        assert r.status_code in (401, 403) and errors
        assert errors[0]["extensions"]["code"] == r.json()["error"]["code"]
        assert errors[0]["message"] == r.json()["error"]["message"]
    r = await client.get("/api/v1/jobs/not-a-job/export/csv", headers=h)
    assert r.status_code == 404
