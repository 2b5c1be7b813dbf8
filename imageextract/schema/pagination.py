"""Relay-style connections: every list that can grow is paged by an opaque cursor.

`Connection[T]` carries `edges { cursor node }`, `nodes` (the same nodes, for clients that need no
cursors), `pageInfo` and `totalCount`. Build one from a service `Page` with `Connection.of(page, map_fn)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.types import Info

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
    connection that is only paged needs no count of everything it pages over. Read from the document's
    nodes as they are (building Strawberry's selection objects for every field of a page cost more than the
    answer is worth); a `totalCount` under `@skip`/`@include` counts as selected, which can only cost a count."""
    raw = info._raw_info
    fragments = raw.fragments
    seen: set[str] = set()

    def selects(selection_set: SelectionSetNode | None) -> bool:
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                if selection.name.value == "totalCount":
                    return True
            elif isinstance(selection, InlineFragmentNode):
                if selects(selection.selection_set):
                    return True
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None and selects(fragment.selection_set):
                    return True
        return False

    return any(selects(node.selection_set) for node in raw.field_nodes)
