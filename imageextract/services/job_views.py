"""What a job, an item and an image look like to a caller: computed once here, mapped by both doors.

Status rules (one `JobStatus`, one set of terminal states), `credits_used`, progress, counts and URLs are
decided in this module; REST JSON and Strawberry types only rename fields. Lists are read as projections
(`values()`: one query, no model objects, no per-row datetime parsing beyond the columns asked for), so
reading 1,000 images costs one query and a dict per image.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypedDict

from imageextract.errors import ValidationError
from imageextract.models import Job, JobItem
from imageextract.services import projection
from imageextract.services.pagination import Cursors, Page, check_first, decode_cursor, keyset_page


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[str] = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
OPEN: frozenset[str] = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.PROCESSING})
JOB_TYPES = ("url", "bulk", "document")


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def progress_percent(job: Job) -> int:
    if job.status == JobStatus.DONE:
        return 100
    if not job.total_items:
        return 0
    return int(job.completed_items * 100 / job.total_items)


def result_path(job_id: Any) -> str:
    return f"/api/v1/jobs/{job_id}/result"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 5x (object.__setattr__ per field),
class ItemView:           # 4 ms of a 1,000-item list. Views are read, never changed.
    id: str
    position: int
    kind: str
    source_label: str
    status: str
    image_count: int  # images stored
    failed_image_count: int  # images found but not stored (download failed)
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    updated_at: datetime | None
    warnings: tuple[str, ...] = ()  # what the engine noticed on a done item, e.g. document_repaired


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    type: str
    status: str
    progress: int
    partial: bool
    credits_used: int
    image_count: int
    failed_image_count: int
    total_items: int
    completed_items: int
    project_id: str | None
    metadata: Any
    error_code: str | None
    error_message: str | None
    retry_of: str | None
    created_at: datetime
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    result_url: str | None  # path on the API's own origin, set when the result can be read


def job_view(job: Job) -> JobView:
    terminal = is_terminal(job.status)
    project_id = job.project_id  # type: ignore[attr-defined]
    return JobView(
        id=str(job.id), type=job.type, status=job.status, progress=progress_percent(job), partial=job.partial,
        credits_used=job.credits_used if terminal else job.credits_reserved, image_count=job.image_count,
        failed_image_count=job.failed_image_count, total_items=job.total_items,
        completed_items=job.completed_items, project_id=str(project_id) if project_id else None,
        metadata=job.metadata, error_code=job.error_code, error_message=job.error_message,
        retry_of=str(job.retry_of_id) if job.retry_of_id else None, created_at=job.created_at,
        updated_at=job.updated_at, started_at=job.started_at, finished_at=job.finished_at,
        result_url=result_path(job.id) if job.status == JobStatus.DONE else None,
    )


_ITEM_COLUMNS = ("id", "position", "kind", "source_label", "status", "image_count", "failed_image_count",
                 "duration_ms", "error_code", "error_message", "attempts", "updated_at", "warnings")


def item_view(row: Any) -> ItemView:
    """From a JobItem model or a `values()` row of `_ITEM_COLUMNS`."""
    def get(name: str) -> Any:
        return row[name] if isinstance(row, dict) else getattr(row, name)

    return ItemView(
        id=str(get("id")), position=get("position"), kind=get("kind"), source_label=get("source_label"),
        status=get("status"), image_count=get("image_count"), failed_image_count=get("failed_image_count"),
        duration_ms=get("duration_ms"), error_code=get("error_code"), error_message=get("error_message"),
        attempts=get("attempts"), updated_at=get("updated_at"), warnings=tuple(get("warnings") or ()),
    )


# ItemView is built positionally from a row of `_ITEM_COLUMNS` (a dataclass's keyword arguments cost twice
# the rest of building 1,000 views): its fields must stay in that order.
assert tuple(f.name for f in fields(ItemView)) == _ITEM_COLUMNS, "ItemView's fields and _ITEM_COLUMNS differ"


async def item_views(job_ids: list[Any]) -> dict[str, list[ItemView]]:
    """Items of each job in position order, one query for all the jobs (plain rows: services/projection)."""
    grouped: dict[str, list[ItemView]] = {str(j): [] for j in job_ids}
    if not grouped:
        return grouped
    conn = projection.connection()
    sql = (f'SELECT {projection.columns("t", ("job_id", *_ITEM_COLUMNS))} FROM "job_items" t '
           f'WHERE t."job_id" IN ({", ".join(projection.marks(conn, len(grouped)))}) ORDER BY t."job_id", t."position"')
    fromisoformat, loads = datetime.fromisoformat, json.loads
    views: list[ItemView] = []
    job = None
    for (job_id, item_id, position, kind, label, status, images, failed, duration, code, message, attempts,
         updated, warnings) in await projection.tuples(conn, sql, list(grouped)):
        if job_id != job:
            job, views = job_id, grouped[str(job_id)]
        views.append(ItemView(
            str(item_id), position, kind, label, status, images, failed, duration, code, message, attempts,
            fromisoformat(updated) if isinstance(updated, str) else updated,  # SQLite's text, Postgres' datetime
            tuple(loads(warnings) if isinstance(warnings, str) else warnings) if warnings else (),
        ))
    return grouped


class ImageView(TypedDict):
    """The documented ImageResult (plus provenance fields). A plain dict: REST serialises it as it is."""

    id: str
    url: str
    source_url: str | None
    source_kind: str
    filename: str
    width: int | None
    height: int | None
    aspect_ratio: float | None
    format: str | None
    file_size: int | None
    color_space: str | None
    has_alpha: bool | None
    alt_text: str | None
    title: str | None
    aria_label: str | None
    is_lazy_loaded: bool
    storage_url: str | None
    storage_key: str | None
    document_page: int | None
    document_slide: int | None
    document_asset_hash: str | None
    document_occurrence_count: int | None
    content_hash: str | None
    group_id: str
    provenance: str | None
    page_url: str | None
    variants: list[Any]
    sheet: str | None
    anchor_cell: str | None


class FailedImageView(TypedDict):
    """An image a source referenced that could not be stored: no bytes, no download URL."""

    source_url: str | None
    filename: str
    group_id: str
    error: str | None


_IMAGE_COLUMNS = (
    "id", "job_id", "item_id", "source_url", "source_kind", "filename", "width", "height", "aspect_ratio",
    "format", "file_size", "color_space", "has_alpha", "alt_text", "title", "aria_label", "is_lazy_loaded",
    "storage_key", "document_page", "document_slide", "document_asset_hash", "document_occurrence_count",
    "content_hash", "provenance", "page_url", "variants", "sheet", "anchor_cell", "error",
)


def image_url(base_url: str, job_id: Any, image_id: str) -> str:
    return f"{base_url}/api/v1/jobs/{job_id}/downloads/images/{image_id}"


def _image_view(row: dict[str, Any], base_url: str, describe: Any) -> ImageView:
    key = row["storage_key"]
    job_id = row.pop("job_id")
    row["group_id"] = str(row.pop("item_id"))
    row.pop("error")
    row["url"] = image_url(base_url, job_id, row["id"])
    row["storage_url"] = describe(key) if describe is not None else None
    row["variants"] = row["variants"] or []
    return row  # type: ignore[return-value]


@dataclass
class ImageSet:
    stored: list[ImageView]
    failed: list[FailedImageView]


async def image_views(job_id: Any, *, base_url: str, storage: Any, item_id: Any = None) -> ImageSet:
    """The job's images (or one item's) in source order then position: stored ones, and failed ones apart."""
    found = ImageSet(stored=[], failed=[])
    describe = storage.describe if storage is not None else None
    for row in await _image_rows([job_id], stored=None, item_id=item_id):
        del row["item_position"], row["image_position"]
        if row["storage_key"]:
            found.stored.append(_image_view(row, base_url, describe))
        else:
            found.failed.append(_failed_view(row))
    return found


async def _image_rows(job_ids: list[Any], *, stored: bool | None, after: tuple[int, int] | None = None,
                      limit: int | None = None, item_id: Any = None, count: bool = False) -> list[dict[str, Any]]:
    """Image rows of each job (stored ones, failed ones, or both: `stored` None) in result order (item
    position, then image position), after the key `after` (item position, image position), at most `limit`
    a job, each with its `item_position` and `image_position` (and with `count`, its job's `total` of
    images of that kind): one statement (`image_query`), plain rows (services/projection)."""
    if not job_ids:
        return []
    conn = projection.connection()
    sql, params = image_query(conn, job_ids, stored=stored, after=after, limit=limit, item_id=item_id, count=count)
    rows = _typed(conn, await projection.rows(conn, sql, params))
    if len(job_ids) > 1:  # a union's order is not promised
        order = {str(j): n for n, j in enumerate(job_ids)}
        rows.sort(key=lambda r: (order[r["job_id"]], r["item_position"], r["image_position"]))
    return rows


def image_query(conn: Any, job_ids: list[Any], *, stored: bool | None, after: tuple[int, int] | None = None,
                limit: int | None = None, item_id: Any = None, count: bool = False) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) behind `_image_rows` on `conn`: one part a job, joined by UNION ALL.

    Each job's part walks its items in position order (index `(job_id, position)`) and each item's images in
    position order (index `(item_id, position)`), and stops after `limit` rows: a page costs its own rows,
    not the job's (no sort of every image of the job, no OFFSET over the pages before). The count runs on
    the index `(job_id, storage_key)` (tests/results/test_page_plans.py checks both engines' plans).

    SQLite keeps that join order as written. Postgres plans from its statistics: with the average item
    holding a few images, it read all 1,000 images of a one-page job and sorted them to return 100 (3 ms
    for a page, 0.3 ms its own rows). So on Postgres a page takes each item's images in a LATERAL
    subquery with its own ORDER BY and LIMIT, which only an ordered index scan that stops at the limit
    serves (SQLite has no LATERAL; it needs none)."""
    is_kind = f'IS {"NOT " if stored else ""}NULL'  # stored or failed images
    kind = "" if stored is None else f' AND i."storage_key" {is_kind}'
    item_position, image_position = after if after is not None else (-1, -1)
    params: list[Any] = []
    parts: list[str] = []

    def mark(value: Any) -> str:
        params.append(value)
        return projection.marks(conn, 1, start=len(params))[0]

    lateral = limit is not None and not projection.is_sqlite(conn)
    for job_id in job_ids:
        total = ""
        if count:
            total = (f', (SELECT COUNT(*) FROM "images" c WHERE c."job_id" = {mark(str(job_id))} '
                     f'AND c."storage_key" {is_kind}) AS "total"')
        where = f't."job_id" = {mark(str(job_id))}'
        images_where = f'i."item_id" = t."id"{kind}'
        if item_id is not None:
            where += f' AND t."id" = {mark(str(item_id))}'
        if after is not None:  # one range on each index: the item where the cursor stands, then images past it
            where += f' AND t."position" >= {mark(item_position)}'
            images_where += (f' AND i."position" > CASE WHEN t."position" = {mark(item_position)} THEN '
                             f'{mark(image_position)} ELSE -1 END')
        if lateral:
            images = (f'LATERAL (SELECT {projection.columns("i", _IMAGE_COLUMNS)}, i."position" FROM "images" i '
                      f'WHERE {images_where} ORDER BY i."position" LIMIT {mark(limit)}) i')
        else:  # CROSS JOIN: SQLite keeps the join order written (items, then their images): both indexes serve
            images, where = '"images" i', f"{where} AND {images_where}"
        parts.append(
            f'SELECT * FROM (SELECT {projection.columns("i", _IMAGE_COLUMNS)}, t."position" AS "item_position", '
            f'i."position" AS "image_position"{total} FROM "job_items" t CROSS JOIN {images} WHERE {where} '
            f'ORDER BY t."position", i."position"{f" LIMIT {mark(limit)}" if limit is not None else ""}) '
            f'p{len(parts)}')
    return " UNION ALL ".join(parts), params


def _typed(conn: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Image rows as the views want them, whatever the driver gave (see services/projection)."""
    if projection.is_sqlite(conn):
        for row in rows:
            row["has_alpha"] = None if row["has_alpha"] is None else bool(row["has_alpha"])
            row["is_lazy_loaded"] = bool(row["is_lazy_loaded"])
    for row in rows:
        row["job_id"], row["item_id"] = str(row["job_id"]), str(row["item_id"])
        variants = row["variants"]
        if variants is not None and not isinstance(variants, list):
            row["variants"] = projection.as_json(variants)
    return rows


def _failed_view(row: dict[str, Any]) -> FailedImageView:
    return {"source_url": row["source_url"], "filename": row["filename"], "group_id": str(row["item_id"]),
            "error": row["error"]}


async def job_image_page(job_id: Any, *, failed: bool, after: tuple[int, int] | None, limit: int, base_url: str,
                         storage: Any) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """One keyset page of a job's stored (or failed) images in result order after `after`, across items:
    one statement per page whatever the number of items. For exports that stream a whole job in flat
    memory. Returns (views, the key to continue after; None at the end)."""
    rows = await _image_rows([job_id], stored=not failed, after=after, limit=limit)
    last = (int(rows[-1]["item_position"]), int(rows[-1]["image_position"])) if len(rows) == limit else None
    describe = storage.describe if storage is not None else None
    views: list[dict[str, Any]] = []
    for row in rows:
        del row["item_position"], row["image_position"]
        views.append(dict(_failed_view(row)) if failed else _image_view(row, base_url, describe))  # type: ignore[arg-type]
    return views, last


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def item_rows_page(job_id: Any, *, first: int, after: str | None) -> Page[ItemView]:
    """A job's items in position order, by cursor (one query, projected rows)."""
    page = await keyset_page(JobItem.filter(job_id=job_id), first=first, after=after, sort="position",
                             descending=False, values=_ITEM_COLUMNS)
    return Page(rows=[item_view(r) for r in page.rows], total=page.total, has_next=page.has_next,
                has_previous=page.has_previous, cursors=page.cursors)


def list_page(rows: list[Any], *, first: int, start: int, key: Any) -> Page[Any]:
    """A page of an already loaded list (the first page GraphQL gets from its batched loaders); `key(index,
    row)` gives the sort values a row's cursor holds."""
    check_first(first)
    window = rows[start:start + first]
    return Page(rows=window, total=len(rows), has_next=start + first < len(rows), has_previous=start > 0,
                cursors=Cursors([key(start + i, r) for i, r in enumerate(window)]))


# An image's cursor holds its place in result order: its index (for `hasPreviousPage` and `totalCount`) and
# its key (item position, image position) that the next page starts after.


def _image_after(after: str | None) -> tuple[int, tuple[int, int] | None]:
    """(index of the first image of the page, key to start after) for the cursor `after`."""
    if after is None:
        return 0, None
    values = decode_cursor(after, size=3)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ValidationError("Invalid cursor", details={"field": "after"})
    index, item_position, image_position = values
    return index + 1, (item_position, image_position)


async def image_pages(job_ids: list[Any], *, failed: bool, first: int, after: str | None = None, base_url: str,
                      storage: Any, count: bool = True) -> dict[str, Page[Any]]:
    """The first `first` stored (or failed) images of each job in result order after the cursor `after`,
    with their cursors and the job's total: one statement for all the jobs (GraphQL's loader batches
    `Job.images` through this). Without `count` (a query that does not ask for `totalCount`) no job's images
    are counted: one row more than the page tells whether another page follows, and the total is -1."""
    check_first(first)
    start, key = _image_after(after)
    pages: dict[str, Page[Any]] = {str(j): Page(rows=[], total=start, has_next=False, has_previous=start > 0)
                                   for j in job_ids}
    describe = storage.describe if storage is not None else None
    totals: dict[str, int] = {}
    keys: dict[str, list[Sequence[Any]]] = {job_id: [] for job_id in pages}
    more: set[str] = set()
    for row in await _image_rows(list(pages), stored=not failed, after=key, limit=first if count else first + 1,
                                 count=count):
        page = pages[row["job_id"]]
        if len(page.rows) == first:  # the row past the page (asked for without a count)
            more.add(row["job_id"])
            continue
        if count:
            totals[row["job_id"]] = int(row.pop("total"))
        keys[row["job_id"]].append((start + len(page.rows), int(row.pop("item_position")),
                                    int(row.pop("image_position"))))
        page.rows.append(_failed_view(row) if failed else _image_view(row, base_url, describe))
    for job_id, page in pages.items():
        page.cursors = Cursors(keys[job_id])
        if not count:
            page.total, page.has_next = -1, job_id in more
            continue
        # A job with no row here has nothing after the cursor: its total is where the cursor stood.
        page.total = max(totals.get(job_id, start), start + len(page.rows))
        page.has_next = start + len(page.rows) < page.total
    return pages
