from __future__ import annotations

from typing import Any

import httpx


async def gql(client: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None,
              variables: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()
