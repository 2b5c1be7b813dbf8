"""What a download contains: the manifest, ZIP entries (whole job or one group), single image streams.

Per-image URLs follow shared/spec/001: authenticated, 403 for another account, 400 for an unsafe file name
segment, 404 when gone, multi-use, and built on the request's own origin.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from imageextract.context import Context
from imageextract.errors import NotFound, NotReady, ValidationError
from imageextract.models import Image
from imageextract.services import jobs
from imageextract.services.job_views import OPEN, JobView, image_views, item_views, job_view
from imageextract.zipstream import ZipEntry, safe_unique_names

SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MEDIA_TYPES = {
    "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp", "svg": "image/svg+xml",
    "avif": "image/avif", "bmp": "image/bmp", "tiff": "image/tiff", "ico": "image/x-icon", "emf": "image/emf",
    "wmf": "image/wmf",
}


def media_type(image: Image) -> str:
    return MEDIA_TYPES.get((image.format or "").lower(), "application/octet-stream")


def header_safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._ -]', "_", name)[:150] or "image"


async def _finished_job(ctx: Context, job_id: str) -> JobView:
    view = job_view(await jobs.get_job(ctx, job_id))
    if view.status in OPEN:
        raise NotReady("Job not yet complete", details={"status": view.status})
    return view


async def manifest(ctx: Context, job_id: str) -> dict[str, Any]:
    """The job ZIP, one ZIP per source that has stored images, and every stored image's own URL."""
    job = await _finished_job(ctx, job_id)
    images = (await image_views(job.id, base_url=ctx.base_url or "", storage=None)).stored
    labels = {i.id: i.source_label for i in (await item_views([job.id]))[job.id]}
    base = f"{ctx.base_url}/api/v1/jobs/{job.id}"
    groups: dict[str, int] = {}
    for image in images:
        groups[image["group_id"]] = groups.get(image["group_id"], 0) + 1
    return {
        "job_id": job.id,
        "zip_url": f"{base}/downloads/zip",
        "groups": [
            {"group_id": gid, "label": labels.get(gid), "image_count": n,
             "zip_url": f"{base}/downloads/groups/{gid}.zip"}
            for gid, n in groups.items()
        ],
        "images": [
            {"image_id": i["id"], "filename": i["filename"], "group_id": i["group_id"],
             "file_size": i["file_size"], "download_url": i["url"]}
            for i in images
        ],
    }


async def zip_entries(ctx: Context, job_id: str, *, group_id: str | None) -> tuple[JobView, list[ZipEntry]]:
    job = await _finished_job(ctx, job_id)
    item_id: uuid.UUID | None = None
    if group_id is not None:
        try:
            item_id = uuid.UUID(group_id)
        except ValueError:
            raise NotFound("Group not found", details={"group_id": group_id}) from None
    images = (await image_views(job.id, base_url="", storage=None, item_id=item_id)).stored
    if not images:
        raise NotFound("No images to download", details={"job_id": job.id})
    storage = ctx.services.storage
    names = safe_unique_names(i["filename"] for i in images)

    def source(key: str) -> Any:
        return lambda: storage.stream(key)

    modified = job.finished_at or job.created_at
    entries = [ZipEntry(name=name, size=i["file_size"], chunks=source(i["storage_key"] or ""), modified=modified)
               for name, i in zip(names, images, strict=True)]
    return job, entries


async def image_stream(ctx: Context, job_id: str, segment: str) -> tuple[Image, AsyncIterator[bytes], int | None]:
    ctx.check_credentials()
    if not SAFE_SEGMENT.match(segment) or ".." in segment:
        raise ValidationError("The file name segment is not a safe name", details={"segment": segment[:100]},
                              code="invalid_request")
    job = await jobs.get_job(ctx, job_id)
    image = await Image.filter(job_id=job.id, id=segment).first()
    if image is None or not image.storage_key:
        raise NotFound("Image not found", details={"image_id": segment})
    storage = ctx.services.storage
    size = await storage.size(image.storage_key)
    if size is None:
        raise NotFound("Image is no longer stored", details={"image_id": segment})
    return image, storage.stream(image.storage_key), size
