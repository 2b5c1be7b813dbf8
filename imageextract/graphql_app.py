"""The GraphQL door: the schema merged from each domain's root fields, and its ASGI app and routes.

Each `resolvers/<domain>.py` declares `Query`, `Mutation` and (where it has live data) `Subscription`;
`DOMAINS` lists them, and `build_schema` merges them into one schema. Adding a domain is one line here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionResult
from strawberry.utils.await_maybe import await_maybe

from imageextract import transport
from imageextract.db import DB_RETRY_AFTER_SECONDS, is_unavailable
from imageextract.errors import DomainError, PayloadTooLarge, ServiceUnavailable
from imageextract.fastjson import dumps_text
from imageextract.graphql_fanout import SharedEventExecutor, view_attr
from imageextract.resolvers import accounts, batches, billing, exports, jobs, projects, results, webhooks
from imageextract.resolvers.loaders import Loaders
from imageextract.schema.context import GQLContext
from imageextract.services import auth
from imageextract.services.plans import get_plan

if TYPE_CHECKING:
    from imageextract.config import Settings
    from imageextract.runtime import Runtime

DOMAINS: list[ModuleType] = [accounts, projects, jobs, webhooks, billing, results, exports, batches]

LIMIT_RULES = [max_depth_rule(10, None), max_aliases_rule(30)]  # query depth, aliases per document
MAX_JSON_BODY = 1024 * 1024  # a GraphQL document with its variables; uploads travel as multipart
MULTIPART_OVERHEAD = 64 * 1024
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def _roots(name: str) -> Iterator[type]:
    for module in DOMAINS:
        root = getattr(module, name, None)
        if root is not None:
            yield root


class HideSuggestions(SchemaExtension):
    """With introspection off, 'Did you mean ...?' would leak the schema's field names one typo at a time."""

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or []:
            error.message = _SUGGESTION.sub("", error.message)


class GuestCookie(SchemaExtension):
    """Send the guest cookie a service minted (guests.ensure_guest) with this operation's response."""

    def on_execute(self) -> Iterator[None]:
        yield
        gctx = self.execution_context.context
        if isinstance(gctx, GQLContext) and isinstance(gctx.request, Request):
            transport.apply_cookies(gctx.request, gctx.response, gctx.ctx)


class DatabaseUnavailable(SchemaExtension):
    """A field that failed because the database cannot be reached says so with REST's code."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in (result.errors if result is not None else None) or []:
            if error.original_error is not None and is_unavailable(error.original_error):
                error.message = "The service is temporarily unavailable; retry shortly"
                error.extensions = {"code": "service_unavailable", "details": None}


class ExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner, minus the calls that do nothing: per subscription event it asks every extension
    for results and opens an `on_stream_result` context for each, though none of ours has either hook (a
    fifth of a subscriber's CPU per event at 1,000 subscribers). Only the extensions that override a hook
    are called for it, in order, as Strawberry would."""

    def __init__(self, execution_context: Any, extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self._with_results = [e for e in self.extensions if type(e).get_results is not SchemaExtension.get_results]
        self._on_stream = any(type(e).on_stream_result is not SchemaExtension.on_stream_result
                              for e in self.extensions)

    def on_stream_result(self, result: Any) -> Any:
        return super().on_stream_result(result) if self._on_stream else _NOTHING

    async def get_extensions_results(self, ctx: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._with_results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data


_NOTHING = contextlib.nullcontext()


class Schema(strawberry.Schema):
    def create_extensions_runner(self, execution_context: Any,
                                 extensions: list[SchemaExtension]) -> SchemaExtensionsRunner:
        return ExtensionsRunner(execution_context, extensions)

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only what is our fault: a DomainError (404, 403, validation...) is an answer, not an incident."""
        unexpected = [e for e in errors if not isinstance(e.original_error, DomainError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def introspection_enabled(settings: Settings | None) -> bool:
    if settings is None:
        return True
    if settings.graphql_introspection is not None:
        return settings.graphql_introspection
    return settings.graphiql


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    extensions: list[Any] = [
        # Parsing and validating the same document again for every request or subscriber is pure cost
        # (a thousand subscribers send one query text): cache both, keyed by the document.
        # The limit rules are built once: the validation cache keys on the rule classes too.
        lambda: ParserCache(maxsize=256),
        lambda: AddValidationRules(LIMIT_RULES),  # type: ignore[arg-type]
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=2000),
        GuestCookie,
        DatabaseUnavailable,
    ]
    if not introspection_enabled(settings):
        extensions += [DisableIntrospection, HideSuggestions]
    mutation = merge_types("Mutation", tuple(_roots("Mutation")))
    subscription = merge_types("Subscription", tuple(_roots("Subscription")))
    return Schema(query=merge_types("Query", tuple(_roots("Query"))), mutation=mutation,
                  subscription=subscription, extensions=extensions,
                  config=StrawberryConfig(default_resolver=view_attr),  # plain dict views served as they are
                  execution_context_class=SharedEventExecutor)  # flat lists; one execution per event and audience


def sdl() -> str:
    """The schema in SDL, as committed in `schema.graphql` (a test fails when the two drift)."""
    return build_schema().as_str().rstrip("\n") + "\n"


def _too_large(limit: int) -> JSONResponse:
    err = PayloadTooLarge("Request body too large", details={"max_bytes": limit})
    return JSONResponse({"data": None, "errors": [{"message": err.message, "extensions": err.extensions}]},
                        status_code=413)


def _unavailable() -> JSONResponse:
    err = ServiceUnavailable("The service is temporarily unavailable; retry shortly",
                             retry_after=DB_RETRY_AFTER_SECONDS)
    return JSONResponse({"data": None, "errors": [{"message": err.message, "extensions": err.extensions}]},
                        status_code=503, headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)})


class _BodyTooLarge(Exception):
    pass


class TransportWSHandler(BaseGraphQLTransportWSHandler[GQLContext, None]):
    """graphql-transport-ws with per-operation failures: a subscription that fails before its first event
    (an unknown or foreign job) gets an `error` message for its id; the socket and its other operations go on."""

    async def _send_result_stream(self, operation: Any, result_source: Any) -> None:
        first = await anext(result_source, None)
        if first is None:
            return
        if isinstance(first, ExecutionResult) and first.data is None and first.errors:
            await operation.send_initial_errors(first.errors)
            return

        async def replay() -> AsyncGenerator[Any, None]:
            yield first
            async for result in result_source:
                yield result

        await super()._send_result_stream(operation, replay())


class GraphQLApp(GraphQL[GQLContext, None]):
    """Strawberry's ASGI app with our context (the same authentication as REST) and a body cap: a JSON
    document may be at most MAX_JSON_BODY; a multipart upload at most the caller's plan allows."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def encode_json(self, data: object) -> str:
        return dumps_text(data)  # orjson: large results encode ~10x faster (text: websockets send text frames)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope)
        try:
            ctx = await transport.build_context(request, check_csrf=True, keep_auth_error=True)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await _unavailable()(scope, receive, send)
            return
        scope.setdefault("state", {})["ie_context"] = ctx
        limit = MAX_JSON_BODY
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            plan = get_plan(ctx.principal.account.plan) if ctx.principal else None
            limit = (plan.document_max_mb * 1024 * 1024 + MULTIPART_OVERHEAD) if plan else MAX_JSON_BODY
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
            return message

        try:
            await super().__call__(scope, capped, send)
        except _BodyTooLarge:
            await _too_large(limit)(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> GQLContext:
        ctx = request.scope.get("state", {}).get("ie_context")
        if ctx is None:
            ctx = await transport.build_context(request, check_csrf=True, keep_auth_error=True)
        return GQLContext(ctx=ctx, request=request, response=response if isinstance(response, Response) else None,
                          loaders=Loaders(ctx))

    async def on_ws_connect(self, context: GQLContext) -> Any:
        """Authenticate a websocket: `connection_init` payload {"Authorization": "Bearer ..."} or the handshake's
        header or session cookie. No credentials, or bad ones: closed with 4403 (after accept)."""

        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if header is not None:
            try:
                context.ctx.principal = await auth.authenticate(authorization=str(header), session_token=None)
                context.ctx.auth_error = None
            except DomainError as exc:
                raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from exc
        if context.ctx.principal is None:
            error = context.ctx.auth_error
            raise ConnectionRejectionError({"code": error.code if isinstance(error, DomainError) else "unauthorized",
                                            "message": error.message if isinstance(error, DomainError)
                                            else "Authentication required"})
        return None


def graphql_routes(runtime: Runtime) -> list[BaseRoute]:
    settings = runtime.settings
    app = GraphQLApp(build_schema(settings), subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
                     multipart_uploads_enabled=True, graphql_ide="graphiql" if settings.graphiql else None,
                     allowed_origins=list(settings.allowed_origins))
    return [Route("/graphql", app, methods=["GET", "POST"]), WebSocketRoute("/graphql", app)]

