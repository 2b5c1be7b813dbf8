"""Relay-style connections: every list that can grow is paged by an opaque cursor.

`Connection[T]` carries `edges { cursor node }`, `nodes` (the same nodes, for clients that need no
cursors), `pageInfo` and `totalCount`. Build one from a service `Page` with `Connection.of(page, map_fn)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

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
    # Edges are built only for a query that selects them, each cursor encoded then (pagination.Cursors).
    edges: list[Edge[T]] = strawberry.field(resolver=lambda root: [
        Edge(cursor=c, node=n) for c, n in zip(root.cursors, root.nodes, strict=True)])
    nodes: list[T]
    page_info: PageInfo
    total_count: int
    cursors: strawberry.Private[Sequence[str]]

    @classmethod
    def of(cls, page: Page[Any], node: Callable[[Any], T]) -> Connection[T]:
        return cls(
            nodes=[node(row) for row in page.rows],
            page_info=PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                               start_cursor=page.cursors[0] if page.cursors else None,
                               end_cursor=page.cursors[-1] if page.cursors else None),
            total_count=page.total,
            cursors=page.cursors,
        )


def asks_total(info: Info[Any, Any]) -> bool:
    """Whether the query selects `totalCount` on the connection being resolved (through fragments too): a
    connection that is only paged needs no count of everything it pages over."""

    def selects(selections: list[Selection]) -> bool:
        for selection in selections:
            if isinstance(selection, SelectedField):
                if selection.name == "totalCount":
                    return True
            elif isinstance(selection, FragmentSpread | InlineFragment):
                if selects(selection.selections):
                    return True
        return False

    return any(selects(field.selections) for field in info.selected_fields)
