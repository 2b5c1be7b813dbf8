"""The GraphQL schema (Query / Mutation / Subscription) and its ASGI routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from imageextract.errors import DomainError
from imageextract.resolvers import jobs as j
from imageextract.resolvers import platform as p
from imageextract.resolvers import webhooks as w
from imageextract.schema.context import GQLContext
from imageextract.schema.job_types import (
    CreatedWebhook,
    Job,
    JobConnection,
    JobProgressEvent,
    SubmitJobPayload,
    WebhookDelivery,
    WebhookEndpoint,
)
from imageextract.schema.types import (
    Account,
    ApiKey,
    IssuedKey,
    LedgerEntry,
    Limits,
    LoginPayload,
    Project,
    Usage,
    Viewer,
)

if TYPE_CHECKING:
    from imageextract.app import Runtime


@strawberry.type
class Query:
    viewer: Viewer = strawberry.field(resolver=p.viewer)
    account: Account = strawberry.field(resolver=p.account)
    limits: Limits = strawberry.field(resolver=p.limits)
    ledger: list[LedgerEntry] = strawberry.field(resolver=p.ledger_entries)
    usage: Usage = strawberry.field(resolver=p.account_usage)
    projects: list[Project] = strawberry.field(resolver=p.project_list)
    project: Project = strawberry.field(resolver=p.project)
    api_keys: list[ApiKey] = strawberry.field(resolver=p.project_keys)
    dashboard_keys: list[ApiKey] = strawberry.field(resolver=p.dashboard_keys)
    job: Job = strawberry.field(resolver=j.job)
    jobs: JobConnection = strawberry.field(resolver=j.job_list)
    webhooks: list[WebhookEndpoint] = strawberry.field(resolver=w.webhook_endpoints)
    webhook_deliveries: list[WebhookDelivery] = strawberry.field(resolver=w.webhook_deliveries)
    webhook_delivery: WebhookDelivery = strawberry.field(resolver=w.webhook_delivery)


@strawberry.type
class Mutation:
    sign_up: LoginPayload = strawberry.mutation(resolver=p.sign_up)
    log_in: LoginPayload = strawberry.mutation(resolver=p.login)
    log_out: bool = strawberry.mutation(resolver=p.logout)
    create_project: Project = strawberry.mutation(resolver=p.create_project)
    update_project: Project = strawberry.mutation(resolver=p.update_project)
    archive_project: Project = strawberry.mutation(resolver=p.archive_project)
    create_api_key: IssuedKey = strawberry.mutation(resolver=p.create_project_key)
    revoke_api_key: ApiKey = strawberry.mutation(resolver=p.revoke_project_key)
    rotate_api_key: IssuedKey = strawberry.mutation(resolver=p.rotate_project_key)
    create_dashboard_key: IssuedKey = strawberry.mutation(resolver=p.create_dashboard_key)
    revoke_dashboard_key: ApiKey = strawberry.mutation(resolver=p.revoke_dashboard_key)
    submit_job: SubmitJobPayload = strawberry.mutation(resolver=j.submit_job)
    upload_documents: SubmitJobPayload = strawberry.mutation(resolver=j.upload_documents)
    cancel_job: Job = strawberry.mutation(resolver=j.cancel_job)
    retry_job: SubmitJobPayload = strawberry.mutation(resolver=j.retry_job)
    create_webhook: CreatedWebhook = strawberry.mutation(resolver=w.create_webhook)
    update_webhook: WebhookEndpoint = strawberry.mutation(resolver=w.update_webhook)
    delete_webhook: bool = strawberry.mutation(resolver=w.delete_webhook)
    test_webhook: strawberry.ID = strawberry.mutation(resolver=w.test_webhook)


@strawberry.type
class Subscription:
    job_progress: JobProgressEvent = strawberry.subscription(resolver=j.job_progress)


LIMIT_RULES = [max_depth_rule(10, None), max_aliases_rule(30)]  # query depth, aliases per document


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only what is our fault: a DomainError (404, 403, validation...) is an answer, not an incident."""
        unexpected = [e for e in errors if not isinstance(e.original_error, DomainError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            # Parsing and validating the same document again for every request or subscriber is pure cost
            # (a thousand subscribers send one query text): cache both, keyed by the document.
            # The limit rules are built once: the validation cache keys on the rule classes too.
            lambda: ParserCache(maxsize=256),
            lambda: AddValidationRules(LIMIT_RULES),
            lambda: ValidationCache(maxsize=256),
            lambda: MaxTokensLimiter(max_token_count=2000),
        ],
    )


def sdl() -> str:
    """The schema in SDL, as committed in `schema.graphql` (a test fails when the two drift)."""
    return build_schema().as_str().rstrip("\n") + "\n"


class GraphQLApp(GraphQL):  # type: ignore[type-arg]
    """Strawberry's ASGI app with our context: the same authentication as REST."""

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Any:
        from imageextract.context import Context
        from imageextract.rest_compat.common import build_context, client_ip, request_origin

        try:
            ctx = await build_context(request, check_csrf=True)
        except DomainError as exc:
            runtime = request.app.state.runtime
            ctx = Context(
                settings=runtime.settings, client_ip=client_ip(request), base_url=request_origin(request),
                services=runtime, enqueue=runtime.enqueue, auth_error=exc,
            )
        from imageextract.resolvers.loaders import Loaders

        return GQLContext(ctx=ctx, request=request, response=response if isinstance(response, Response) else None,
                          loaders=Loaders())

    async def on_ws_connect(self, context: GQLContext) -> Any:
        """Authenticate a websocket: `connection_init` payload {"Authorization": "Bearer ..."} or the handshake's
        header or session cookie. No credentials, or bad ones: closed with 4403 (after accept)."""
        from strawberry.exceptions import ConnectionRejectionError

        from imageextract.services import auth

        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if header is not None:
            try:
                context.ctx.principal = await auth.authenticate(authorization=str(header), session_token=None)
                context.ctx.auth_error = None
            except DomainError as exc:
                raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from exc
        if context.ctx.principal is None:
            raise ConnectionRejectionError({"code": "unauthorized", "message": "Authentication required"})
        return None


def graphql_routes(runtime: Runtime) -> list[BaseRoute]:
    app = GraphQLApp(build_schema(), subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
                     multipart_uploads_enabled=True, graphql_ide="graphiql" if runtime.settings.graphiql else None)
    return [Route("/graphql", app, methods=["GET", "POST"]), WebSocketRoute("/graphql", app)]
