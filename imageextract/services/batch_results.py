"""Batch item results (shared/spec/003): `GET /api/v1/batches/{id}/items/{item_id}/result` answers 302 to a
signed, expiring URL of the item's result JSON.

The document is built once, the first time someone asks for it, and kept as a blob in storage
(`batch-results/{batch_id}/{item_id}.json`); later requests reuse it. Both backends serve those same bytes
with the same Content-Type and Content-Disposition:

- S3: a presigned GET of the blob (aioboto3, `result_url_ttl_seconds`), so the bytes never transit the API;
- local directory: the API's own HMAC-signed URL (`/api/v1/batch-results?item=&expires=&signature=`), which
  sends the blob.

Lifetime: a batch's result blobs live under one prefix and go with its other bytes when the batch expires
(`batch_runs.expire_batch`, 24 h past its end by default) or is deleted (`deletion.purge_job`, which project
retention uses too). A blob written while one of those runs could be missed by its listing, so the writer
checks the batch again after writing and removes its own blob when the batch has expired or gone: either the
sweep's listing comes after the write (and deletes the blob), or the sweep's mark, committed before its
listing, is seen by the writer's check (and the writer deletes it). Either way no result outlives its batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from imageextract.context import Context
from imageextract.errors import Forbidden, NotFound, NotReady, Unprocessable
from imageextract.models import Batch, JobItem
from imageextract.services.batches import _ITEM_STATUS, get_batch
from imageextract.services.job_views import image_views, parse_uuid
from imageextract.services.staged_files import check_signature, sign
from imageextract.storage import StorageNotFound

MEDIA_TYPE = "application/json"
CACHE_CONTROL = "private, no-store"
_ITEM_COLUMNS = ("id", "job_id", "status", "source_label", "image_count", "failed_image_count")


@dataclass(frozen=True)
class ResultFile:
    """A stored result document and the headers both backends send it with."""

    data: bytes
    headers: dict[str, str]


def results_prefix(batch_id: Any) -> str:
    return f"batch-results/{batch_id}"


def result_key(batch_id: Any, item_id: Any) -> str:
    return f"{results_prefix(batch_id)}/{item_id}.json"


def disposition(item_id: Any) -> str:
    return f'attachment; filename="{item_id}.json"'


def response_headers(item_id: Any) -> dict[str, str]:
    return {"Content-Type": MEDIA_TYPE, "Content-Disposition": disposition(item_id), "Cache-Control": CACHE_CONTROL}


async def delete_results(storage: Any, batch_id: Any) -> int:
    """Remove every result document of a batch (with `expire_batch` and `purge_job`)."""
    return int(await storage.delete_prefix(results_prefix(batch_id)))


async def build_document(row: dict[str, Any], *, base_url: str, storage: Any) -> bytes:
    """The item's result JSON: what the item is, and its images as the job result lists them."""
    images = await image_views(row["job_id"], base_url=base_url, storage=storage, item_id=row["id"])
    return orjson.dumps({
        "batch_id": str(row["job_id"]), "item_id": str(row["id"]), "source": row["source_label"],
        "status": "succeeded", "image_count": row["image_count"], "failed_image_count": row["failed_image_count"],
        "images": images.stored, "failed_images": images.failed,
    })


async def _ensure_document(ctx: Context, row: dict[str, Any]) -> str:
    """The key of the item's stored result document, written now if it is not there yet."""
    storage = ctx.services.storage
    key = result_key(row["job_id"], row["id"])
    if await storage.exists(key):
        return key
    data = await build_document(row, base_url=ctx.base_url or ctx.settings.base_url, storage=storage)
    await storage.put(key, data, content_type=MEDIA_TYPE)
    if not await Batch.filter(id=row["job_id"], expired_at=None).exists():  # expired or deleted meanwhile
        with contextlib.suppress(Exception):
            await storage.delete(key)
        raise NotFound("Results of this batch have expired", details={"batch_id": str(row["job_id"])},
                       code="result_expired")
    return key


async def item_result_url(ctx: Context, batch_id: str, item_id: str) -> str:
    """Where the item's result JSON is: a presigned S3 GET, or a signed URL of this API; both expire.

    404 `not_found` for an unknown item (or one of another batch), 404 `result_expired` once the batch's
    results have gone, 202 `not_ready` while the item is pending or running, 422 `item_failed` /
    `item_cancelled` for an item that has no result."""
    job, batch = await get_batch(ctx, batch_id)
    parsed = parse_uuid(item_id)
    rows = await JobItem.filter(id=parsed, job_id=job.id).values(*_ITEM_COLUMNS) if parsed is not None else []
    if not rows:
        raise NotFound("Item not found", details={"item_id": item_id})
    if batch.expired_at is not None:
        raise NotFound("Results of this batch have expired", details={"batch_id": batch_id}, code="result_expired")
    row = rows[0]
    status = _ITEM_STATUS.get(row["status"], "pending")
    if status in ("pending", "running"):
        raise NotReady("Item still processing", details={"status": status})
    if status != "succeeded":
        raise Unprocessable(f"The item {status}; it has no result", details={"status": status}, code=f"item_{status}")
    key = await _ensure_document(ctx, row)
    ttl = ctx.settings.result_url_ttl_seconds
    presign = getattr(ctx.services.storage, "presign_get", None)
    if presign is not None:
        return str(await presign(key, expires_in=ttl, content_type=MEDIA_TYPE, disposition=disposition(parsed),
                                 cache_control=CACHE_CONTROL))
    expires = int(datetime.now(UTC).timestamp()) + ttl
    signature = sign(ctx.settings, "result", str(parsed), expires)
    return (f"{ctx.base_url or ctx.settings.base_url}/api/v1/batch-results?item={parsed}&expires={expires}"
            f"&signature={signature}")


async def signed_result(ctx: Context, item_id: Any, *, expires: Any, signature: Any) -> ResultFile:
    """The stored result document a signed result URL names (no other credential: the URL is one)."""
    if not isinstance(item_id, str) or not item_id:
        raise Forbidden("Invalid signed URL", code="invalid_signature")
    check_signature(ctx.settings, "result", item_id, expires, signature)
    parsed = parse_uuid(item_id)
    rows = await JobItem.filter(id=parsed).values("id", "job_id") if parsed is not None else []
    if not rows or not await Batch.filter(id=rows[0]["job_id"], expired_at=None).exists():
        raise NotFound("Result not found", details={"item_id": item_id})
    try:
        data = await ctx.services.storage.get(result_key(rows[0]["job_id"], rows[0]["id"]))
    except StorageNotFound:
        raise NotFound("Result not found", details={"item_id": item_id}) from None
    return ResultFile(data=data, headers=response_headers(rows[0]["id"]))
