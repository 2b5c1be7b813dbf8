"""Downloads: the whole-job ZIP, per-group ZIPs, per-image files, and the manifest that lists them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imageextract.rest_compat.common import build_context
from imageextract.services import downloads
from imageextract.zipstream import zip_stream


def _zip_response(name: str, entries: Any) -> StreamingResponse:
    return StreamingResponse(
        zip_stream(entries), media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


async def job_zip(request: Request) -> Response:
    """Download all extracted images of the job as a ZIP archive."""
    ctx = await build_context(request)
    job, entries = await downloads.zip_entries(ctx, request.path_params["id"], group_id=None)
    return _zip_response(f"imageextract-{str(job.id)[:8]}.zip", entries)


async def group_zip(request: Request) -> Response:
    """Download one group's (source's) images as a ZIP archive."""
    ctx = await build_context(request)
    job, entries = await downloads.zip_entries(ctx, request.path_params["id"], group_id=request.path_params["group"])
    return _zip_response(f"imageextract-{str(job.id)[:8]}-{request.path_params['group'][:8]}.zip", entries)


async def manifest(request: Request) -> JSONResponse:
    """Fetch a download manifest: job ZIP, per-group ZIP and per-image download URLs."""
    ctx = await build_context(request)
    return JSONResponse(await downloads.manifest(ctx, request.path_params["id"]))


async def image_file(request: Request) -> Response:
    """Download one extracted image."""
    ctx = await build_context(request)
    image, chunks, size = await downloads.image_stream(ctx, request.path_params["id"], request.path_params["name"])
    headers = {"Content-Disposition": f'inline; filename="{downloads.header_safe(image.filename)}"',
               "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=downloads.media_type(image), headers=headers)


routes = [
    Route("/api/v1/jobs/{id}/download", job_zip, methods=["GET"]),
    Route("/api/v1/jobs/{id}/downloads", manifest, methods=["GET"]),
    Route("/api/v1/jobs/{id}/downloads/zip", job_zip, methods=["GET"]),
    Route("/api/v1/jobs/{id}/downloads/groups/{group}.zip", group_zip, methods=["GET"]),
    Route("/api/v1/jobs/{id}/downloads/images/{name}", image_file, methods=["GET"]),
]
