"""Hot statements written once as SQL, for what runs per job and per item (issues 10 and 14).

Tortoise builds a query's SQL anew on every call: pypika builder objects copied at each chained step, filters
resolved against the model, joins assembled for `select_related`. On the job pipeline that was about half of
the event loop's CPU per item, more than the statements themselves cost the database. Here a statement is
written once with `:name` parameters and rendered per dialect on first use (`?` for SQLite, `$n` for
Postgres, a name used twice bound once); reads give back the model objects Tortoise would have built
(`Model._init_from_db`, related objects attached where `select_related` would put them), so callers see the
same objects as before.

Parameters go as the drivers take them for our columns: UUIDs as text (SQLite stores them as text; asyncpg
accepts text for uuid), JSON as text, datetimes as they are (Tortoise registers the SQLite adapter that writes
them exactly as the ORM does, so comparisons on text timestamps keep working).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from tortoise.fields import DatetimeField
from tortoise.models import Model

from imageextract.services.projection import connection as default_connection

M = TypeVar("M", bound=Model)

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _db_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


class Statement:
    """One statement with `:name` parameters. `await st.execute(conn, name=value)` answers the rows affected;
    `await st.rows(...)` the rows (for SELECT and `... RETURNING`). `conn`: a transaction, else the default.
    `text` may be a function, called on first use: column lists come from the models, complete only once
    Tortoise is initialised. A parameter is `:name` not preceded by a word character or a colon (so `::cast`
    and `"a:b"` are left alone); do not put ` :word` inside a string literal, pass it as a parameter."""

    def __init__(self, text: str | Callable[[], str]) -> None:
        self._text = text
        self._rendered: dict[str, tuple[str, tuple[str, ...]]] = {}

    @property
    def text(self) -> str:
        return " ".join((self._text() if callable(self._text) else self._text).split())

    def render(self, dialect: str) -> tuple[str, tuple[str, ...]]:
        hit = self._rendered.get(dialect)
        if hit is None:
            names: list[str] = []

            def mark(match: re.Match[str]) -> str:
                name = match.group(1)
                if dialect == "sqlite":
                    names.append(name)
                    return "?"
                if name not in names:
                    names.append(name)
                return f"${names.index(name) + 1}"

            hit = self._rendered[dialect] = (_PARAM.sub(mark, self.text), tuple(names))  # (a benign race)
        return hit

    def _bind(self, conn: Any, params: dict[str, Any]) -> tuple[str, list[Any]]:
        sql, names = self.render(conn.capabilities.dialect)
        return sql, [_db_value(params[name]) for name in names]

    async def execute(self, conn: Any = None, **params: Any) -> int:
        conn = conn or default_connection()
        sql, values = self._bind(conn, params)
        count, _ = await conn.execute_query(sql, values)
        return int(count)

    async def rows(self, conn: Any = None, **params: Any) -> list[dict[str, Any]]:
        conn = conn or default_connection()
        sql, values = self._bind(conn, params)
        return list(await conn.execute_query_dict(sql, values))


def columns(model: type[Model], alias: str, prefix: str = "") -> str:
    """Every column of `model` as `alias."col"`, named `prefix + col` in the result."""
    return ", ".join(f'{alias}."{col}" AS "{prefix}{col}"' for col in sorted(model._meta.db_fields))


def returning(model: type[Model]) -> str:
    return ", ".join(f'"{col}"' for col in sorted(model._meta.db_fields))


@functools.cache
def _datetime_columns(model: type[Model]) -> tuple[str, ...]:
    meta = model._meta
    return tuple(meta.fields_db_projection[name] for name, field in meta.fields_map.items()
                 if isinstance(field, DatetimeField) and name in meta.fields_db_projection)


def load(model: type[M], row: dict[str, Any], prefix: str = "") -> M | None:
    """The model object for the `prefix`ed columns of `row` (None when its primary key is null: an outer
    join that found nothing), built as Tortoise builds query results. SQLite's text timestamps are parsed
    here by `datetime.fromisoformat` (C) first: Tortoise parses them with the iso8601 package (regular
    expressions in Python), which was most of the cost of loading a key, its account and a job per request."""
    values = dict(row) if not prefix else {col: row[prefix + col] for col in model._meta.db_fields}
    if prefix and values.get(model._meta.db_pk_column) is None:
        return None
    for col in _datetime_columns(model):
        text = values.get(col)
        if isinstance(text, str):
            with contextlib.suppress(ValueError):  # what fromisoformat refuses, Tortoise still parses
                values[col] = datetime.fromisoformat(text)
    return model._init_from_db(**values)


def attach(obj: Model, relation: str, related: Model | None) -> None:
    """Put `related` where `select_related(relation)` would have: `obj.<relation>` then answers it, unqueried."""
    object.__setattr__(obj, f"_{relation}", related)


def refresh(obj: M, row: dict[str, Any]) -> M:
    """Copy a full row of `obj`'s table (e.g. from `RETURNING`) onto `obj`, keeping its attached relations."""
    fresh = load(type(obj), row)
    for model_field in type(obj)._meta.fields_db_projection:
        object.__setattr__(obj, model_field, getattr(fresh, model_field))
    return obj
