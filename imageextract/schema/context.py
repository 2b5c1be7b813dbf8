"""The typed GraphQL context: the service Context plus the transport objects a resolver may need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from imageextract.context import Context


@dataclass
class GQLContext:
    ctx: Context
    request: Request | WebSocket
    response: Response | None = None
    loaders: Any = None  # resolvers.loaders.Loaders, built per request
    connection_params: dict[str, Any] | None = None  # graphql-transport-ws connection_init payload
