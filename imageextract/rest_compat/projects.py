"""/api/v1/projects*, project keys, and /api/dashboard/keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imageextract.context import Context
from imageextract.rest_compat.common import authed_context, json_body
from imageextract.rest_compat.serializers import key_json, project_json
from imageextract.services import keys, projects


async def list_projects(request: Request) -> JSONResponse:
    """List projects for the authenticated account."""
    ctx = await authed_context(request)
    rows = await projects.list_projects(ctx)
    return JSONResponse({"projects": [project_json(p) for p in rows]})


async def create_project(request: Request) -> JSONResponse:
    """Create a new project within the authenticated account."""
    ctx = await authed_context(request)
    body = await json_body(request, allowed={"name", "slug", "site_url", "default_webhook_url", "retention_days"})
    project = await projects.create_project(
        ctx, name=body.get("name"), slug=body.get("slug"), site_url=body.get("site_url"),
        default_webhook_url=body.get("default_webhook_url"),
        **({"retention_days": body["retention_days"]} if "retention_days" in body else {}),
    )
    # The secret that signs deliveries to default_webhook_url, shown this once (rotate to get a new one).
    return JSONResponse(project_json(project) | {"default_webhook_secret": project.webhook_secret}, status_code=201)


async def get_project(request: Request) -> JSONResponse:
    """Fetch a single project."""
    ctx = await authed_context(request)
    return JSONResponse(project_json(await projects.get_project(ctx, request.path_params["id"])))


async def update_project(request: Request) -> JSONResponse:
    """Update a project."""
    ctx = await authed_context(request)
    body = await json_body(request)
    project = await projects.update_project(ctx, request.path_params["id"], changes=body)
    return JSONResponse(project_json(project))


async def archive_project(request: Request) -> JSONResponse:
    """Archive a project."""
    ctx = await authed_context(request)
    project = await projects.archive_project(ctx, request.path_params["id"])
    return JSONResponse(project_json(project))


async def rotate_webhook_secret(request: Request) -> JSONResponse:
    """Replace the secret that signs deliveries to the project's default_webhook_url; shown this once."""
    ctx = await authed_context(request)
    project = await projects.rotate_webhook_secret(ctx, request.path_params["id"])
    return JSONResponse(project_json(project) | {"default_webhook_secret": project.webhook_secret})


async def list_keys(request: Request) -> JSONResponse:
    """List project API keys."""
    ctx = await authed_context(request)
    project_id = request.path_params["id"]
    rows = await keys.list_project_keys(ctx, project_id)
    return JSONResponse({"project_id": project_id, "keys": [key_json(k) for k in rows]})


async def _optional_body(request: Request) -> dict[str, object]:
    return await json_body(request, allowed={"label"}, optional=True)


async def _visible_project(ctx: Context, request: Request) -> None:
    """Someone else's project is 404 whatever the body says: check access before judging the body."""
    await projects.get_project(ctx, request.path_params["id"])


async def create_key(request: Request) -> JSONResponse:
    """Create a new project API key; the full key is returned once."""
    ctx = await authed_context(request)
    await _visible_project(ctx, request)
    body = await _optional_body(request)
    issued = await keys.create_project_key(ctx, request.path_params["id"], label=body.get("label"))
    return JSONResponse({"key": issued.key, "row": key_json(issued.row)}, status_code=201)


async def revoke_key(request: Request) -> JSONResponse:
    """Revoke an existing project API key."""
    ctx = await authed_context(request)
    await keys.revoke_project_key(ctx, request.path_params["id"], request.path_params["key_id"])
    return JSONResponse({"revoked": True})


async def rotate_key(request: Request) -> JSONResponse:
    """Rotate a project API key: create a replacement and revoke the previous key."""
    ctx = await authed_context(request)
    issued = await keys.rotate_project_key(ctx, request.path_params["id"], request.path_params["key_id"])
    return JSONResponse({"key": issued.key, "previous_key_id": issued.previous_key_id, "row": key_json(issued.row)})


async def list_dashboard_keys(request: Request) -> JSONResponse:
    """List the caller's dashboard API keys (prefixes only)."""
    ctx = await authed_context(request)
    return JSONResponse({"keys": [key_json(k) for k in await keys.list_dashboard_keys(ctx)]})


async def create_dashboard_key(request: Request) -> JSONResponse:
    """Create a new API key; the full key is returned once."""
    ctx = await authed_context(request)
    body = await _optional_body(request)
    issued = await keys.create_dashboard_key(ctx, label=body.get("label"))
    return JSONResponse({"key": issued.key, "row": key_json(issued.row)})


async def revoke_dashboard_key(request: Request) -> JSONResponse:
    """Revoke an API key, with immediate effect."""
    ctx = await authed_context(request)
    await keys.revoke_dashboard_key(ctx, request.path_params["id"])
    return JSONResponse({"deleted": True})


routes = [
    Route("/api/v1/projects", list_projects, methods=["GET"]),
    Route("/api/v1/projects", create_project, methods=["POST"]),
    Route("/api/v1/projects/{id}", get_project, methods=["GET"]),
    Route("/api/v1/projects/{id}", update_project, methods=["PATCH"]),
    Route("/api/v1/projects/{id}", archive_project, methods=["DELETE"]),
    Route("/api/v1/projects/{id}/webhook-secret/rotate", rotate_webhook_secret, methods=["POST"]),
    Route("/api/v1/projects/{id}/keys", list_keys, methods=["GET"]),
    Route("/api/v1/projects/{id}/keys", create_key, methods=["POST"]),
    Route("/api/v1/projects/{id}/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    Route("/api/v1/projects/{id}/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
    Route("/api/dashboard/keys", list_dashboard_keys, methods=["GET"]),
    Route("/api/dashboard/keys", create_dashboard_key, methods=["POST"]),
    Route("/api/dashboard/keys/{id}", revoke_dashboard_key, methods=["DELETE"]),
]
