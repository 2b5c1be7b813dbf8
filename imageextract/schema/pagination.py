"""Relay-style connections: every list that can grow is paged by an opaque cursor.

`Connection[T]` carries `edges { cursor node }`, `nodes` (the same nodes, for clients that need no
cursors), `pageInfo` and `totalCount`. Build one from a service `Page` with `Connection.of(page, map_fn)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from imageextract.services.pagination import Page

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[Any], node: Callable[[Any], T]) -> Connection[T]:
        nodes = [node(row) for row in page.rows]
        return cls(
            edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)],
            nodes=nodes,
            page_info=PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                               start_cursor=page.cursors[0] if page.cursors else None,
                               end_cursor=page.cursors[-1] if page.cursors else None),
            total_count=page.total,
        )
