"""/api/v1/jobs (GET: list), DELETE /api/v1/jobs/:id, GET /api/v1/jobs/:id/export/{format}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imageextract.context import Context
from imageextract.rest_compat.common import authed_context, build_context
from imageextract.rest_compat.serializers import job_json
from imageextract.rest_compat.webhooks import delivery_json
from imageextract.services import deletion, job_callbacks, job_queries, result_exports
from imageextract.services.job_views import item_views
from imageextract.services.pagination import MAX_PAGE


def list_filters(ctx: Context, request: Request) -> job_queries.JobFilters:
    q = request.query_params
    return job_queries.job_filters(
        ctx,
        status=q.get("status"), type=q.get("type"), project_id=q.get("project_id"),
        created_after=q.get("created_after"), created_before=q.get("created_before"), sort=q.get("sort"),
        order=q.get("order"),
    )


async def list_jobs(request: Request) -> JSONResponse:
    """List the caller's jobs: ?page=&per_page=&status=&type=&project_id=&created_after=&created_before=
    &sort=created_at|updated_at&order=asc|desc (status and type take comma-separated lists)."""
    ctx = await authed_context(request)
    job_queries.check_list_params(request.query_params.keys())
    q = request.query_params
    page = job_queries.parse_int(q.get("page"), field="page", default=1, lo=1, hi=job_queries.MAX_PAGE_NUMBER)
    per_page = job_queries.parse_int(q.get("per_page"), field="per_page", default=job_queries.DEFAULT_PER_PAGE,
                                     lo=1, hi=MAX_PAGE)
    result = await job_queries.list_jobs(ctx, list_filters(ctx, request), page=page, per_page=per_page)
    items = await item_views([j.id for j in result.rows])
    return JSONResponse({
        "jobs": [job_json(j, items[j.id]) for j in result.rows],
        "total": result.total, "page": page, "per_page": per_page, "has_more": result.has_next,
    })


async def delete_job(request: Request) -> JSONResponse:
    """Permanently delete a job: its items, uploads, image records and the stored bytes no other job uses.
    A running job is cancelled (and refunded) first; ledger entries stay."""
    ctx = await build_context(request)
    await deletion.delete_job(ctx, request.path_params["id"])
    return JSONResponse({"deleted": True})


async def export_job(request: Request) -> Response:
    """Download the result as a file: csv, xlsx, json or xml (202 while running, 422 when failed)."""
    ctx = await build_context(request)
    export = await result_exports.export_job(ctx, request.path_params["id"], request.path_params["format"])
    return StreamingResponse(export.chunks, media_type=export.media_type, headers={
        "Content-Disposition": f'attachment; filename="{export.filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })


async def job_deliveries(request: Request) -> JSONResponse:
    """Webhook deliveries about the job (its own callback and its project's webhooks), newest first
    (?first=20&after=<cursor>)."""

    ctx = await build_context(request)
    first = job_queries.parse_int(request.query_params.get("first"), field="first", default=20, lo=1, hi=MAX_PAGE)
    page = await job_callbacks.job_deliveries(ctx, request.path_params["id"], first=first,
                                              after=request.query_params.get("after") or None)
    return JSONResponse({"job_id": request.path_params["id"], "deliveries": [delivery_json(d) for d in page.rows],
                         "has_more": page.has_next, "next_cursor": page.end_cursor if page.has_next else None})


routes = [
    Route("/api/v1/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/jobs/{id}", delete_job, methods=["DELETE"]),
    Route("/api/v1/jobs/{id}/export/{format}", export_job, methods=["GET"]),
    Route("/api/v1/jobs/{id}/webhook-deliveries", job_deliveries, methods=["GET"]),
]
