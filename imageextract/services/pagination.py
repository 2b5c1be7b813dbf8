"""Paging for every list that can grow: keyset (cursor) pages and offset pages, one `Page` shape for both.

Cursors are opaque to clients: URL-safe base64 of a JSON array of the sort values of a row. A keyset page
orders by `(sort_field, tiebreak)` so rows that share a sort value are neither skipped nor repeated, and a
row inserted while a client walks the list never shifts what the client has not yet seen.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import orjson
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from imageextract.errors import ValidationError

T = TypeVar("T")

MAX_PAGE = 100


@dataclass
class Page(Generic[T]):
    rows: list[T]
    total: int
    has_next: bool
    has_previous: bool = False
    cursors: Sequence[str] = field(default_factory=list)

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"t"}:
        return datetime.fromisoformat(value["t"])
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = orjson.dumps([_plain(v) for v in values])  # a page of 100 makes 100 cursors: orjson, not json
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Cursors(Sequence[str]):
    """The cursors of a page's rows from their sort keys, each encoded when it is read: a client that asks
    only for `pageInfo { endCursor }` costs one encoding a page, not one per row."""

    def __init__(self, keys: list[Sequence[Any]] | None = None) -> None:
        self.keys: list[Sequence[Any]] = keys if keys is not None else []

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [encode_cursor(key) for key in self.keys[index]]
        return encode_cursor(self.keys[index])


def decode_cursor(cursor: str, *, size: int, field: str = "after") -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(values, list) or len(values) != size:
            raise ValueError
        return [_unplain(v) for v in values]
    except (ValueError, UnicodeDecodeError, TypeError):
        raise ValidationError("Invalid cursor", details={"field": field}) from None


def check_first(first: int, *, field: str = "first", hi: int = MAX_PAGE) -> None:
    if not 1 <= first <= hi:
        raise ValidationError(f"{field} must be between 1 and {hi}", details={"field": field})


def _value(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


async def keyset_page(query: QuerySet[Any], *, first: int, after: str | None, sort: str, descending: bool,
                      tiebreak: str = "id", values: Sequence[str] | None = None,
                      count: bool = True) -> Page[Any]:
    """One page of `query` ordered by (sort, tiebreak), after the row `after` names.

    With `values` the rows are dicts of those columns (one query, no model objects); else models.
    """
    check_first(first)
    total = await query.count() if count else -1
    if after:
        sort_value, tie_value = decode_cursor(after, size=2)
        op = "lt" if descending else "gt"
        query = query.filter(Q(**{f"{sort}__{op}": sort_value})
                             | (Q(**{sort: sort_value}) & Q(**{f"{tiebreak}__{op}": tie_value})))
    prefix = "-" if descending else ""
    ordered = query.order_by(f"{prefix}{sort}", f"{prefix}{tiebreak}").limit(first + 1)
    if values is not None:
        columns = list(dict.fromkeys([*values, sort, tiebreak]))
        rows: list[Any] = list(await ordered.values(*columns))
    else:
        rows = list(await ordered)
    has_next = len(rows) > first
    rows = rows[:first]
    cursors = Cursors([(_value(r, sort), _value(r, tiebreak)) for r in rows])
    return Page(rows=rows, total=total, has_next=has_next, has_previous=after is not None, cursors=cursors)


async def offset_page(query: QuerySet[Any], *, page: int, per_page: int, order: Sequence[str],
                      values: Sequence[str] | None = None) -> Page[Any]:
    """Page `page` (1-based) of `per_page` rows of `query` in `order`."""
    total = await query.count()
    ordered = query.order_by(*order).offset((page - 1) * per_page).limit(per_page)
    rows: list[Any] = list(await ordered.values(*values)) if values is not None else list(await ordered)
    return Page(rows=rows, total=total, has_next=page * per_page < total, has_previous=page > 1)
