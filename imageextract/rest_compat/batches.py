"""/api/v1/files and /api/v1/batches (shared/spec/003): staged uploads, batches, cursor polling, results.

`X-API-Key` is accepted as an alias of `Authorization: Bearer` (transport.build_context)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from imageextract.rest_compat.common import build_context, int_param, iso, json_body
from imageextract.services import batch_results, batches, staged_files
from imageextract.services.batches import BatchItemView, BatchView


def batch_json(view: BatchView) -> dict[str, Any]:
    return {"id": view.id, "status": view.status, "total_items": view.total_items, "counts": view.counts,
            "created_at": iso(view.created_at), "finished_at": iso(view.finished_at),
            "expires_at": iso(view.expires_at)}


def item_json(item: BatchItemView) -> dict[str, Any]:
    return {"id": item.id, "position": item.position, "source": item.source, "status": item.status,
            "updated_at": iso(item.updated_at),
            "error": {"code": item.error_code, "message": item.error_message} if item.error_code else None,
            "image_count": item.image_count, "result_url": item.result_url}


async def stage_file(request: Request) -> JSONResponse:
    """Stage a file: its id and where to PUT its bytes (presigned S3 URL, or a signed URL of this API)."""
    ctx = await build_context(request)
    ctx.require_principal()
    body = await json_body(request, allowed={"filename", "size_bytes", "content_type"})
    staged = await staged_files.stage_file(ctx, filename=body.get("filename"), size_bytes=body.get("size_bytes"),
                                           content_type=body.get("content_type"))
    f, up = staged.file, staged.upload
    return JSONResponse({
        "id": f.id, "filename": f.filename, "size_bytes": f.size_bytes, "expires_at": iso(f.expires_at),
        "upload": {"url": up.url, "method": up.method, "headers": up.headers, "expires_at": iso(up.expires_at)},
    }, status_code=201)


async def upload(request: Request) -> JSONResponse:
    """The local backend's signed, expiring, single-use upload URL (no other credential: the URL is one)."""
    ctx = await build_context(request)
    record = await staged_files.receive_upload(
        ctx, file_id=request.query_params.get("file"), expires=request.query_params.get("expires"),
        signature=request.query_params.get("signature"), body=request.stream())
    return JSONResponse({"id": record.id, "status": record.status, "size_bytes": record.size_bytes,
                         "detected_type": record.detected_type})


async def submit(request: Request) -> JSONResponse:
    """Submit a batch of staged files or URLs (up to 10,000); honours Idempotency-Key for 24 h."""
    ctx = await build_context(request)
    ctx.require_principal()
    body = await json_body(request, allowed={"source", "metadata", "project_id"})
    submitted = await batches.submit_batch(ctx, source=body.get("source"), metadata=body.get("metadata"),
                                           project_id=body.get("project_id"),
                                           idempotency_key=request.headers.get("idempotency-key"))
    view = submitted.batch
    response = JSONResponse({"id": view.id, "status": view.status, "total_items": view.total_items},
                            status_code=201 if submitted.created else 200)
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def get_batch(request: Request) -> JSONResponse:
    """Counts by status and items in (updated_at, id) order, from `cursor` (?limit=&cursor=&status=)."""
    ctx = await build_context(request)
    page = await batches.batch_page(ctx, request.path_params["id"], limit=int_param(request, "limit", 100, lo=1,
                                                                                    hi=batches.MAX_LIMIT),
                                    cursor=request.query_params.get("cursor") or None,
                                    status=request.query_params.get("status") or None)
    return JSONResponse({**batch_json(page.batch), "items": [item_json(i) for i in page.items],
                         "next_cursor": page.next_cursor, "has_more": page.has_more})


async def cancel(request: Request) -> JSONResponse:
    """Cancel the items that have not started (refunded); running ones finish."""
    ctx = await build_context(request)
    return JSONResponse(batch_json(await batches.cancel_batch(ctx, request.path_params["id"])))


async def item_result(request: Request) -> Response:
    """302 to a signed, expiring URL of the item's result JSON (a presigned S3 GET on S3 storage)."""
    ctx = await build_context(request)
    url = await batch_results.item_result_url(ctx, request.path_params["id"], request.path_params["item_id"])
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


async def signed_result(request: Request) -> Response:
    """The item's result JSON behind a signed result URL (local storage; S3 serves its own)."""
    ctx = await build_context(request)
    result = await batch_results.signed_result(
        ctx, request.query_params.get("item"), expires=request.query_params.get("expires"),
        signature=request.query_params.get("signature"))
    return Response(result.data, headers={**result.headers, "X-Content-Type-Options": "nosniff"})


routes = [
    Route("/api/v1/files", stage_file, methods=["POST"]),
    Route("/api/v1/files/upload", upload, methods=["PUT"]),  # ?file=&expires=&signature=
    Route("/api/v1/batches", submit, methods=["POST"]),
    Route("/api/v1/batches/{id}", get_batch, methods=["GET"]),
    Route("/api/v1/batches/{id}/cancel", cancel, methods=["POST"]),
    Route("/api/v1/batches/{id}/items/{item_id}/result", item_result, methods=["GET"]),
    Route("/api/v1/batch-results", signed_result, methods=["GET"]),  # ?item=&expires=&signature=
]
