"""/api/v1/jobs/{id}/exports and /api/v1/exports/*: create, status, ZIP and per-file downloads, SSE progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imageextract.rest_compat.common import build_context, json_body
from imageextract.services import exports
from imageextract.services.downloads import header_safe
from imageextract.zipstream import zip_stream


async def create(request: Request) -> JSONResponse:
    """Export a job's images converted, compressed and resized (1 credit per image)."""
    ctx = await build_context(request)
    body = await json_body(request, allowed={"image_ids", "filenames", "settings"}, optional=True)
    export = await exports.create_export(ctx, job_id=request.path_params["id"], image_ids=body.get("image_ids"),
                                         filenames=body.get("filenames"), settings=body.get("settings"))
    return JSONResponse({"export_id": export.id}, status_code=202,
                        headers={"Location": f"/api/v1/exports/{export.id}"})


async def get_export(request: Request) -> JSONResponse:
    """Fetch an export: status, and per image its files (variants) with download URLs."""
    ctx = await build_context(request)
    return JSONResponse((await exports.get_export_view(ctx, request.path_params["id"])).to_json())


async def _file(request: Request, filename: str) -> Response:
    ctx = await build_context(request)
    row, chunks, size = await exports.file_stream(ctx, request.path_params["id"], filename)
    headers = {"Content-Disposition": f'attachment; filename="{header_safe(row.filename)}"',
               "Content-Length": str(size), "Cache-Control": "private, max-age=3600",
               "X-Content-Type-Options": "nosniff"}
    return StreamingResponse(chunks, media_type=exports.media_type(row.format), headers=headers)


async def download(request: Request) -> Response:
    """Download every exported file as one streaming ZIP (or one file with ?filename=)."""
    filename = request.query_params.get("filename")
    if filename is not None:
        return await _file(request, filename)

    ctx = await build_context(request)
    export, entries = await exports.zip_entries(ctx, request.path_params["id"])
    return StreamingResponse(zip_stream(entries), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="imageextract-export-{export.id[4:12]}.zip"',
        "Cache-Control": "no-store"})


async def file(request: Request) -> Response:
    """Download one exported file."""
    return await _file(request, request.path_params["filename"])


async def stream(request: Request) -> Response:
    """Server-Sent Events of the export's progress: `progress`, then `complete` or `error`."""
    ctx = await build_context(request)
    events = exports.follow(ctx, request.path_params["id"], heartbeat=15.0)
    first = await anext(events)  # access is checked here, before the 200 goes out

    async def body() -> AsyncIterator[str]:
        event: exports.ExportEvent | None = first
        try:
            while True:
                if event is None:
                    yield ": keepalive\n\n"
                else:
                    yield f"event: {event.kind}\ndata: {json.dumps(event.to_json(), separators=(',', ':'))}\n\n"
                event = await anext(events)
        except StopAsyncIteration:
            return
        finally:
            await events.aclose()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


routes = [
    Route("/api/v1/jobs/{id}/exports", create, methods=["POST"]),
    Route("/api/v1/exports/{id}", get_export, methods=["GET"]),
    Route("/api/v1/exports/{id}/download", download, methods=["GET"]),
    Route("/api/v1/exports/{id}/files/{filename}", file, methods=["GET"]),
    Route("/api/v1/exports/{id}/stream", stream, methods=["GET"]),
]
