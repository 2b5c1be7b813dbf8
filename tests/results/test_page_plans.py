"""A page of a job's images costs its own rows, not the job's: the database walks the job's items and each
item's images in order and stops at the page's end, on both engines, also when the planner's statistics say
an item holds a couple of images and the job read holds hundreds (what made Postgres read and sort a whole
1,000-image job for each page of 100)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tortoise import connections

from imageextract.models import Image, Job, JobItem
from imageextract.services import job_views
from tests.results.test_exports import seed_done_job_with_images

PAGE = 20
SKIP = 100  # the page starts after the 100th image


def _image(job_id: Any, item_id: Any, position: int, *, stored: bool = True) -> Image:
    return Image(job_id=job_id, item_id=item_id, position=position, source_kind="img", filename=f"{position}.png",
                 source_url=f"https://x.example/{position}", error=None if stored else "HTTP 404",
                 storage_key=f"images/aa/bb/{uuid.uuid4().hex}.png" if stored else None)


async def _skewed(account: dict[str, Any]) -> tuple[str, str]:
    """A one-page job of 400 images (every 7th one failed), and a bulk job of 400 sources with an image each:
    the images table's statistics then give about two images an item."""
    page_job = await seed_done_job_with_images(account, [])
    item = await JobItem.get(job_id=page_job)
    await Image.bulk_create([_image(page_job, item.id, i, stored=i % 7 != 3) for i in range(400)])
    bulk = await Job.create(account_id=account["account_id"], project_id=account["project_id"], type="bulk",
                            status="done", input={"value": []}, total_items=400, completed_items=400)
    items = [JobItem(id=uuid.uuid4(), job_id=bulk.id, position=i, kind="url", source_label=f"s{i}", status="done")
             for i in range(400)]
    await JobItem.bulk_create(items)
    await Image.bulk_create([_image(bulk.id, it.id, 0) for it in items])
    conn = connections.get("default")
    await conn.execute_script('ANALYZE "images"; ANALYZE "job_items"')
    return page_job, str(bulk.id)


def _rows_read(plan: dict[str, Any], relation: str) -> int:
    """Rows the plan's scans of `relation` produced or filtered out, over all their loops."""
    read = 0
    if plan.get("Relation Name") == relation:
        read += int((plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"])
    for child in plan.get("Plans", []):
        read += _rows_read(child, relation)
    return read


async def _explain(sql: str, params: list[Any]) -> tuple[str, int]:
    """(the plan as text, image rows read) for Postgres; (the query plan, -1) for SQLite."""
    conn = connections.get("default")
    if conn.capabilities.dialect == "sqlite":
        rows = await conn.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(r["detail"] for r in rows), -1
    _, rows = await conn.execute_query(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
    plan = rows[0][0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return json.dumps(plan), _rows_read(plan[0]["Plan"], "images")


async def test_a_page_reads_its_own_rows(account: dict[str, Any]) -> None:
    page_job, bulk = await _skewed(account)
    conn = connections.get("default")
    sqlite = conn.capabilities.dialect == "sqlite"
    stored_positions = [i for i in range(400) if i % 7 != 3]
    # One page past the first 100 stored images of the one-page job, as the service reads it (one row more
    # than the page, to tell whether another follows), then the same of the failed ones, then of the bulk job.
    cases = [
        (page_job, True, (0, stored_positions[SKIP - 1]), stored_positions[SKIP:SKIP + PAGE + 1]),
        (page_job, False, (0, 3), [i for i in range(400) if i % 7 == 3][1:PAGE + 2]),
        (bulk, True, (SKIP - 1, 0), [0] * (PAGE + 1)),
    ]
    for job_id, stored, after, positions in cases:
        sql, params = job_views.image_query(conn, [job_id], stored=stored, after=after, limit=PAGE + 1)
        rows = await job_views._image_rows([job_id], stored=stored, after=after, limit=PAGE + 1)
        assert [r["image_position"] for r in rows] == positions
        if job_id == bulk:
            assert [r["item_position"] for r in rows] == list(range(SKIP, SKIP + PAGE + 1))
        plan, read = await _explain(sql, params)
        if sqlite:  # both indexes walked in order: nothing sorted, no table scanned
            assert "TEMP B-TREE" not in plan and "SCAN" not in plan.replace("SCAN t USING", ""), plan
        else:  # the images from the cursor to the page's last row (the other kind's among them), and the
            # next item's or two that the sort reads to see an item's rows end: not the job's 400
            span = positions[-1] - after[1] if job_id == page_job else len(positions)
            assert read <= span + 2, (read, span, plan)
    # The first page of both jobs in one statement (GraphQL's batched loader), each with its count.
    rows = await job_views._image_rows([page_job, bulk], stored=True, limit=PAGE, count=True)
    assert [(r["job_id"], r["image_position"], r["total"]) for r in rows] == (
        [(page_job, p, len(stored_positions)) for p in stored_positions[:PAGE]] + [(bulk, 0, 400)] * PAGE)
