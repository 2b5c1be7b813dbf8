"""Result export files: a finished job's images as CSV, XLSX, JSON or XML, streamed in flat memory.

The rule is the result's (`jobs.check_readable`): 202 while the job runs, 422 when it failed or was cancelled.
Images are read in keyset pages of `PAGE` rows (items in position order, then each item's images by
position: the order of `GET /api/v1/jobs/:id/result`) and written as they arrive, so a 100,000-image job
never sits in memory.

- json: exactly the object `GET /api/v1/jobs/:id/result` answers (`images` and `failed_images` streamed).
- csv, xlsx, xml: one row per stored image, columns `COLUMNS`: every ImageResult field under its own name,
  with the one nested field flattened: `variants` -> `variants_count` (how many srcset candidates) and
  `variants_json` (the list as JSON text). Booleans are `true`/`false`, null is an empty cell (CSV) or an
  omitted element (XML).
- CSV is safe to open in a spreadsheet: a text cell starting with `=`, `+`, `-`, `@`, tab or carriage return
  is prefixed with `'` (OWASP's CSV injection rule). XLSX stores every text cell as a string cell, never a
  formula, so it needs no prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from imageextract import fastjson
from imageextract.context import Context
from imageextract.errors import ValidationError
from imageextract.services.job_views import JobView, job_image_page
from imageextract.services.jobs import check_readable, read_job

PAGE = 1000
FORMATS = ("csv", "xlsx", "json", "xml")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
}
COLUMNS = (
    "id", "url", "source_url", "source_kind", "filename", "width", "height", "aspect_ratio", "format", "file_size",
    "color_space", "has_alpha", "alt_text", "title", "aria_label", "is_lazy_loaded", "storage_url", "storage_key",
    "document_page", "document_slide", "document_asset_hash", "document_occurrence_count", "content_hash",
    "group_id", "provenance", "page_url", "variants_count", "variants_json", "sheet", "anchor_cell",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
XLSX_MAX_CELL = 32767


@dataclass(frozen=True)
class Export:
    media_type: str
    filename: str
    chunks: AsyncIterator[bytes]


def check_format(fmt: Any) -> str:
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of: {', '.join(FORMATS)}",
                              details={"field": "format", "allowed": list(FORMATS)})
    return str(fmt)


def export_path(job_id: Any, fmt: str) -> str:
    return f"/api/v1/jobs/{job_id}/export/{check_format(fmt)}"


def flat_row(image: dict[str, Any]) -> dict[str, Any]:
    """An ImageView as export columns (the nested `variants` flattened)."""
    variants = image.get("variants") or []
    row = {c: image.get(c) for c in COLUMNS}
    row["variants_count"] = len(variants)
    row["variants_json"] = json.dumps(variants, separators=(",", ":"), sort_keys=True)
    return row


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return str(value)


async def _images(view: JobView, ctx: Context, *, failed: bool = False) -> AsyncIterator[list[dict[str, Any]]]:
    """The job's stored (or failed) images, page by page, in result order: one query per page of PAGE images
    across items (a bulk job of thousands of one-image sources is not a query per source)."""
    storage = ctx.services.storage if ctx.services is not None else None
    after: tuple[int, int] | None = None
    while True:
        rows, after = await job_image_page(view.id, failed=failed, after=after, limit=PAGE,
                                           base_url=ctx.base_url or "", storage=storage)
        if rows:
            yield rows
        if after is None:
            return


async def _csv(view: JobView, ctx: Context) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    async for page in _images(view, ctx):
        for image in page:
            row = flat_row(image)
            writer.writerow([csv_cell(row[c]) for c in COLUMNS])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def _json(view: JobView, ctx: Context) -> AsyncIterator[bytes]:
    """The body of GET /api/v1/jobs/:id/result, written field by field."""
    def dump(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    head = {"job_id": view.id, "type": view.type, "status": view.status, "partial": view.partial,
            "image_count": view.image_count, "failed_image_count": view.failed_image_count,
            "credits_used": view.credits_used}
    yield (dump(head)[:-1] + ',"images":[').encode()
    for failed, closing in ((False, '],"failed_images":['), (True, "]")):
        first = True
        async for page in _images(view, ctx, failed=failed):
            text = fastjson.dumps(page)[1:-1]  # the page's array without its brackets (the same JSON /result sends)
            yield text if first else b"," + text
            first = False
        yield closing.encode()
    yield f',"extracted_at":{dump(_iso(view.finished_at))}}}'.encode()


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(_XML_ILLEGAL.sub("", str(value)), {"\r": "&#13;"})


async def _xml(view: JobView, ctx: Context) -> AsyncIterator[bytes]:
    attrs = {"id": view.id, "type": view.type, "status": view.status, "image_count": view.image_count,
             "extracted_at": _iso(view.finished_at) or ""}
    yield f'<?xml version="1.0" encoding="UTF-8"?>\n<job {_quote_attrs(attrs)}>\n<images>\n'.encode()
    async for page in _images(view, ctx):
        parts: list[str] = []
        for image in page:
            row = flat_row(image)
            fields = "".join(f"<{c}>{_xml_text(row[c])}</{c}>" for c in COLUMNS if row[c] is not None)
            parts.append(f"<image>{fields}</image>\n")
        yield "".join(parts).encode()
    yield b"</images>\n</job>\n"


def _quote_attrs(attrs: dict[str, Any]) -> str:
    return " ".join(f"{k}={quoteattr(_XML_ILLEGAL.sub('', str(v)))}" for k, v in attrs.items())


def _xlsx_cell(ws: Any, value: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, str):
        cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_MAX_CELL])
        cell.data_type = "s"  # text stays text: never a formula
        return cell
    return value


async def _xlsx(view: JobView, ctx: Context) -> AsyncIterator[bytes]:
    """openpyxl in write-only mode: rows go to a temporary file as they are appended; the finished workbook
    is then streamed from disk and removed."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("images")
    sheet.append(list(COLUMNS))

    def append(page: list[dict[str, Any]]) -> None:
        for image in page:
            row = flat_row(image)
            sheet.append([_xlsx_cell(sheet, row[c]) for c in COLUMNS])

    fd, path = tempfile.mkstemp(prefix="ie-export-", suffix=".xlsx")
    os.close(fd)
    try:
        async for page in _images(view, ctx):
            await asyncio.to_thread(append, page)
        await asyncio.to_thread(workbook.save, path)
        with open(path, "rb") as fh:  # noqa: ASYNC230 (chunks are read off the loop below)
            while chunk := await asyncio.to_thread(fh.read, 256 * 1024):
                yield chunk
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


_WRITERS: dict[str, Callable[[JobView, Context], AsyncIterator[bytes]]] = {
    "csv": _csv, "xlsx": _xlsx, "json": _json, "xml": _xml,
}


async def export_job(ctx: Context, job_id: str, fmt: str) -> Export:
    """Check access and readability now (errors before the first byte), then stream the file."""

    fmt = check_format(fmt)
    view = await read_job(ctx, job_id)
    check_readable(view)
    return Export(media_type=MEDIA_TYPES[fmt], filename=f"job-{view.id}.{fmt}", chunks=_WRITERS[fmt](view, ctx))
