"""/api/v1/jobs*: submission, status, items, result, cancel, retry, SSE; /api/dashboard/jobs."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imageextract.errors import PayloadTooLarge, Unauthenticated, ValidationError
from imageextract.fastjson import FastJSONResponse
from imageextract.rest_compat.common import authed_context, build_context, int_param, iso, json_body
from imageextract.rest_compat.results import list_filters
from imageextract.rest_compat.serializers import items_json, job_json
from imageextract.services import job_callbacks, job_queries, jobs, live, submission
from imageextract.services.plans import GUEST_PLAN, get_plan
from imageextract.transport import apply_cookies

MULTIPART_OVERHEAD = 64 * 1024


FORM_FIELDS = ("metadata", "webhook_url", "callback_url")  # text parts a multipart submission may carry


async def _read_uploads(request: Request, max_files: int, max_bytes: int,
                        fields: dict[str, str] | None = None) -> list[submission.Upload]:
    """The `files` parts; text parts named in FORM_FIELDS go to `fields`, any other part is a 400."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"Uploads total more than {max_bytes // (1024 * 1024)} MB",
                              details={"max_mb": max_bytes // (1024 * 1024)})
    try:
        form = await request.form(max_files=max_files + 1, max_fields=20)
    except Exception as exc:  # malformed multipart bodies are the caller's error
        raise ValidationError(f"Malformed multipart body: {exc}") from None
    uploads: list[submission.Upload] = []
    total = 0
    try:
        unknown = sorted(set(form.keys()) - {"files", *FORM_FIELDS})
        if unknown:
            raise ValidationError(f"Unknown form fields: {', '.join(unknown)}",
                                  details={"fields": unknown, "allowed": ["files", *FORM_FIELDS]})
        for name in FORM_FIELDS:
            values = form.getlist(name)
            if len(values) > 1 or (values and not isinstance(values[0], str)):
                raise ValidationError(f"'{name}' must be one text field", details={"field": name})
            if values and fields is not None:
                fields[name] = str(values[0])
        for value in form.getlist("files"):
            if isinstance(value, str):
                raise ValidationError("'files' must be file parts", details={"field": "files"})
            data = await value.read(max_bytes - total + 1)
            total += len(data)
            if total > max_bytes:
                raise PayloadTooLarge(f"Uploads total more than {max_bytes // (1024 * 1024)} MB",
                                      details={"max_mb": max_bytes // (1024 * 1024)})
            uploads.append(submission.Upload(filename=value.filename or "", data=data, content_type=value.content_type))
    finally:
        await form.close()
    return uploads


async def submit(request: Request) -> Response:
    """Submit a URL or bulk job (JSON) or upload documents (multipart form data); honours Idempotency-Key."""
    ctx = await build_context(request)
    idem = request.headers.get("idempotency-key")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        plan = get_plan(ctx.principal.account.plan) if ctx.principal else GUEST_PLAN
        if ctx.principal is None:
            raise Unauthenticated("Document uploads need an account: send an API key or sign in")
        fields: dict[str, str] = {}
        uploads = await _read_uploads(request, plan.document_max_files, plan.document_max_mb * 1024 * 1024, fields)
        hook, hook_field = job_callbacks.callback_url(fields.get("webhook_url"), fields.get("callback_url"))
        submitted = await submission.submit_job(
            ctx, kind="document", uploads=uploads, metadata=job_callbacks.parse_form_metadata(fields.get("metadata")),
            idempotency_key=idem, project_id=request.query_params.get("project_id"), webhook_url=hook,
            webhook_url_field=hook_field)
    else:
        body = await json_body(request, allowed={"type", "input", "metadata", "project_id", "webhook_url",
                                                 "callback_url"})
        hook, hook_field = job_callbacks.callback_url(body.get("webhook_url"), body.get("callback_url"))
        submitted = await submission.submit_job(
            ctx, kind=body.get("type"), raw_input=body.get("input"), metadata=body.get("metadata"),
            project_id=body.get("project_id"), idempotency_key=idem, webhook_url=hook, webhook_url_field=hook_field,
        )
    answer: dict[str, Any] = {"job_id": str(submitted.job.id)}
    if submitted.created and submitted.webhook_secret:
        answer["webhook_secret"] = submitted.webhook_secret  # shown this once
    response = JSONResponse(answer, status_code=202)
    if submitted.rate is not None:
        response.headers.update(submitted.rate.headers())
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    apply_cookies(request, response, ctx)
    return response


async def get_job(request: Request) -> JSONResponse:
    """Fetch job status and grouped progress summary."""
    ctx = await build_context(request)
    job, items = await jobs.job_detail(ctx, request.path_params["id"])
    return FastJSONResponse(job_json(job, items))


async def get_items(request: Request) -> JSONResponse:
    """Fetch the job's items (one per source) with status, timing, errors and image counts."""
    ctx = await build_context(request)
    job, items = await jobs.job_detail(ctx, request.path_params["id"])
    return FastJSONResponse({"job_id": job.id, "items": items_json(items)})


async def get_result(request: Request) -> JSONResponse:
    """Fetch the full extraction result (images) of a completed job."""
    ctx = await build_context(request)
    job, images = await jobs.result_of(ctx, request.path_params["id"])
    return FastJSONResponse({
        "job_id": job.id, "type": job.type, "status": job.status, "partial": job.partial,
        "image_count": job.image_count, "failed_image_count": job.failed_image_count,
        "credits_used": job.credits_used, "images": images.stored, "failed_images": images.failed,
        "extracted_at": iso(job.finished_at),
    })


async def cancel(request: Request) -> JSONResponse:
    """Cancel a pending or queued job; reserved credits are refunded."""
    ctx = await build_context(request)
    await jobs.cancel_job(ctx, request.path_params["id"])
    return JSONResponse({"cancelled": True})


async def retry(request: Request) -> JSONResponse:
    """Create a fresh retry job from the original input (consumes credits again)."""
    ctx = await build_context(request)
    submitted = await jobs.retry_job(ctx, request.path_params["id"])
    return JSONResponse({"job_id": str(submitted.job.id)}, status_code=202)


async def stream(request: Request) -> Response:
    """Server-Sent Events stream of the job's progress."""

    ctx = await build_context(request)
    job = await jobs.get_job(ctx, request.path_params["id"])
    runtime = request.app.state.runtime

    async def events() -> Any:
        async for batch in live.follow_batches(runtime, job.id, heartbeat=15.0):
            if batch is None:
                yield ": keepalive\n\n"
                continue
            yield "".join(f"data: {json.dumps(live.sse_shape(m), separators=(',', ':'))}\n\n" for m in batch)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def dashboard_jobs(request: Request) -> JSONResponse:
    """Paginated job history for the authenticated user (?page=1&limit=20), with the filters and sorts of
    GET /api/v1/jobs."""

    ctx = await authed_context(request)
    job_queries.check_list_params(request.query_params.keys(), (job_queries.LIST_PARAMS - {"per_page"}) | {"limit"})
    page = int_param(request, "page", 1, lo=1, hi=100_000)
    limit = int_param(request, "limit", 20, lo=1, hi=100)
    result = await job_queries.list_jobs(ctx, list_filters(ctx, request), page=page, per_page=limit)
    return JSONResponse({
        "jobs": [job_json(j, None) for j in result.rows],
        "total": result.total, "page": page, "limit": limit, "has_more": result.has_next,
    })


routes = [
    Route("/api/v1/jobs", submit, methods=["POST"]),
    Route("/api/v1/jobs/{id}", get_job, methods=["GET"]),
    Route("/api/v1/jobs/{id}/items", get_items, methods=["GET"]),
    Route("/api/v1/jobs/{id}/result", get_result, methods=["GET"]),
    Route("/api/v1/jobs/{id}/cancel", cancel, methods=["POST"]),
    Route("/api/v1/jobs/{id}/retry", retry, methods=["POST"]),
    Route("/api/v1/jobs/{id}/stream", stream, methods=["GET"]),
    Route("/api/dashboard/jobs", dashboard_jobs, methods=["GET"]),
]
