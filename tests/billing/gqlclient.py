"""GraphQL through the `gql` client over HTTP: (data, errors) for one operation."""

from __future__ import annotations

from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport


async def run_gql(base_url: str, query: str, *, variables: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> tuple[Any, list[dict[str, Any]] | None]:
    transport = HTTPXAsyncTransport(url=f"{base_url}/graphql", headers=headers or {}, timeout=30)
    async with Client(transport=transport) as session:
        try:
            return await session.execute(GraphQLRequest(query, variable_values=variables)), None
        except TransportQueryError as exc:
            return exc.data, exc.errors
