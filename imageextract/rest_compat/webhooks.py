"""/api/v1/projects/:id/webhooks* and webhook deliveries."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imageextract.rest_compat.common import authed_context, int_param, iso, json_body
from imageextract.services import projects, webhooks


def endpoint_json(e: Any) -> dict[str, Any]:
    return {
        "id": e.id, "url": e.url, "subscribed_events": e.subscribed_events, "status": e.status,
        "disabled_reason": e.disabled_reason, "failing_since": iso(e.failing_since),
        "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
    }


def delivery_json(d: Any) -> dict[str, Any]:
    return {
        "id": d.id, "event_type": d.event_type, "status": d.status, "attempt": d.attempt, "url": d.url,
        "webhook_id": d.endpoint_id, "job_id": str(d.job_id) if d.job_id else None,
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "created_at": iso(d.created_at), "delivered_at": iso(d.delivered_at),
    }


async def list_endpoints(request: Request) -> JSONResponse:
    """List webhook endpoints for a project."""
    ctx = await authed_context(request)
    pid = request.path_params["id"]
    rows = await webhooks.list_endpoints(ctx, pid)
    return JSONResponse({"project_id": pid, "webhooks": [endpoint_json(e) for e in rows]})


async def create_endpoint(request: Request) -> JSONResponse:
    """Create a new project webhook endpoint; the signing secret is returned once."""
    ctx = await authed_context(request)
    await projects.get_project(ctx, request.path_params["id"])  # someone else's project: 404 whatever the body
    body = await json_body(request, allowed={"url", "subscribed_events"})
    e = await webhooks.create_endpoint(ctx, request.path_params["id"], url=body.get("url"),
                                       subscribed_events=body.get("subscribed_events"))
    return JSONResponse(endpoint_json(e) | {"secret": e.secret}, status_code=201)


async def update_endpoint(request: Request) -> JSONResponse:
    """Update a webhook endpoint's URL, subscriptions or status."""
    ctx = await authed_context(request)
    body = await json_body(request)
    e = await webhooks.update_endpoint(ctx, request.path_params["id"], request.path_params["webhook_id"], changes=body)
    return JSONResponse(endpoint_json(e))


async def delete_endpoint(request: Request) -> JSONResponse:
    """Delete a webhook endpoint."""
    ctx = await authed_context(request)
    await webhooks.delete_endpoint(ctx, request.path_params["id"], request.path_params["webhook_id"])
    return JSONResponse({"deleted": True})


async def test_endpoint(request: Request) -> JSONResponse:
    """Enqueue a test webhook delivery."""
    ctx = await authed_context(request)
    d = await webhooks.send_test(ctx, request.path_params["id"], request.path_params["webhook_id"])
    return JSONResponse({"delivery_id": d.id}, status_code=202)


async def list_deliveries(request: Request) -> JSONResponse:
    """List webhook deliveries for a project (?limit=50)."""
    ctx = await authed_context(request)
    pid = request.path_params["id"]
    limit = int_param(request, "limit", 50, lo=1, hi=500)
    rows = await webhooks.list_deliveries(ctx, pid, limit=limit)
    return JSONResponse({"project_id": pid, "deliveries": [delivery_json(d) for d in rows]})


async def get_delivery(request: Request) -> JSONResponse:
    """Fetch a single webhook delivery's payload and status."""
    ctx = await authed_context(request)
    d, attempts = await webhooks.get_delivery(ctx, request.path_params["id"], request.path_params["delivery_id"])
    return JSONResponse(delivery_json(d) | {
        "payload": d.payload,
        "attempts": [{"attempt": a.attempt, "status_code": a.status_code, "duration_ms": a.duration_ms,
                      "error": a.error, "next_attempt_at": iso(a.next_attempt_at), "created_at": iso(a.created_at)}
                     for a in attempts],
    })


routes = [
    Route("/api/v1/projects/{id}/webhooks", list_endpoints, methods=["GET"]),
    Route("/api/v1/projects/{id}/webhooks", create_endpoint, methods=["POST"]),
    Route("/api/v1/projects/{id}/webhooks/{webhook_id}", update_endpoint, methods=["PATCH"]),
    Route("/api/v1/projects/{id}/webhooks/{webhook_id}", delete_endpoint, methods=["DELETE"]),
    Route("/api/v1/projects/{id}/webhooks/{webhook_id}/test", test_endpoint, methods=["POST"]),
    Route("/api/v1/projects/{id}/webhook-deliveries", list_deliveries, methods=["GET"]),
    Route("/api/v1/projects/{id}/webhook-deliveries/{delivery_id}", get_delivery, methods=["GET"]),
]
