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
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from tortoise.fields import DatetimeField, Field
from tortoise.models import Model
from tortoise.transactions import in_transaction
from tortoise.validators import MaxLengthValidator

from imageextract.db_sqlite import ImmediateSqliteClient
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

    def __init__(self, text: str | Callable[[], str], *, point: bool = False) -> None:
        self._text = text
        self._rendered: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.point = point  # a read of a few rows by a unique key: on SQLite, made at once (`rows`)

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
        if self.point and isinstance(conn, ImmediateSqliteClient):  # not inside a transaction of Tortoise's
            found = conn.read_now(sql, values)
            if found is not None:
                return found
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


class Insert:
    """INSERT of whole rows of `model` (every column but a generated key), its SQL written once; `row(**fields)`
    converts each value by its field's `to_db_value`, as Tortoise's own insert does (JSON as text, lengths
    validated, datetimes made aware). Fields left out take their defaults; `auto_now` and `auto_now_add`
    fields take `now`."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self.statement = Statement(self._text)

    @functools.cached_property
    def _fields(self) -> list[tuple[str, str, Any]]:
        meta = self.model._meta
        return [(name, column, meta.fields_map[name]) for name, column in meta.fields_db_projection.items()
                if column not in meta.generated_db_fields]

    @functools.cached_property
    def _plan(self) -> list[tuple[str, str, Any, bool, bool, type | None, int | None]]:
        """Per column: (name, column, field, takes `now`, a None passes as it is, the type whose values pass as
        they are, at most this long). Tortoise's base `Field.to_db_value` returns unchanged a None of a
        nullable field, and a value of exactly the field's type that its validators accept: here those skip
        the call when the only validator is a maximum length, checked in place (20 image rows were 0.8 ms of
        calls, most on such values). Every other value, and every field that converts (JSON, UUID,
        datetime), still goes through `to_db_value`, which raises what it raises."""
        plan = []
        for name, column, model_field in self._fields:
            auto = bool(getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False))
            plain = type(model_field).to_db_value is Field.to_db_value
            validators = model_field.validators
            longest = validators[0].max_length if [type(v) for v in validators] == [MaxLengthValidator] else None
            passes = model_field.field_type if plain and (not validators or longest is not None) else None
            plan.append((name, column, model_field, auto, plain and bool(model_field.null), passes, longest))
        return plan

    def _text(self) -> str:
        names = [column for _, column, _ in self._fields]
        quoted = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join(f":{c}" for c in names)
        return f'INSERT INTO "{self.model._meta.db_table}" ({quoted}) VALUES ({marks})'

    def row(self, now: datetime, **fields: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, column, model_field, auto, none_passes, passes, longest in self._plan:
            if auto:
                value = now
            elif name in fields:
                value = fields[name]
            elif model_field.default is not None:
                value = model_field.default() if callable(model_field.default) else model_field.default
            else:
                value = None
            if (value is None and none_passes
                    or value.__class__ is passes and (longest is None or len(cast(str, value)) <= longest)):
                values[column] = value
            else:
                values[column] = model_field.to_db_value(value, None)
        return values


@dataclass
class Step:
    """One statement of a `transaction`: a Statement with its parameters (or a function of the results so
    far), or `many` parameter sets for one executemany, or `raw`: SQL a function writes for a dialect.
    `fetch`: the result is the rows (SELECT, RETURNING), else the count of rows affected. `required`: when
    the step finds or changes no row, everything is rolled back and `Refused(required)` raised. `when`: run
    only if it answers true for the results so far (a skipped step's result is None). `check`: a rule on the
    results so far; what it raises (a domain error) rolls everything back and reaches the caller.
    Functions of a step run where the statements run (SQLite: aiosqlite's thread): plain Python only."""

    statement: Statement | None = None
    params: dict[str, Any] | Callable[[list[Any]], dict[str, Any]] = field(default_factory=dict)
    many: list[dict[str, Any]] | None = None
    raw: Callable[[str], tuple[str, list[Any]]] | None = None
    fetch: bool = False
    required: str | None = None
    when: Callable[[list[Any]], bool] | None = None
    check: Callable[[list[Any]], None] | None = None  # called with the results once this one is in: may raise

    def bind(self, dialect: str, results: list[Any]) -> tuple[str, Any]:
        if self.raw is not None:
            return self.raw(dialect)
        assert self.statement is not None
        sql, names = self.statement.render(dialect)
        if self.many is not None:
            return sql, [[_db_value(values[name]) for name in names] for values in self.many]
        params = self.params(results) if callable(self.params) else self.params
        return sql, [_db_value(params[name]) for name in names]


class Refused(Exception):
    """A required step of a `transaction` found no row: nothing was kept."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


async def transaction(steps: Sequence[Step]) -> list[Any]:
    """Run `steps` in one transaction; the result of each, in order.

    On SQLite the whole transaction is one trip to the connection's thread (db_sqlite: a trip holds no lock
    across the event loop). A transaction awaited statement by statement holds Tortoise's connection lock for
    one event-loop round per statement, and under load a round is long: with 200 concurrent jobs the lock
    was held 87% of the time, and every other statement queued behind it."""
    conn = default_connection()
    if isinstance(conn, ImmediateSqliteClient):  # the client itself, not one of its transactions
        return list(await conn.trip(_sqlite_transaction, list(steps), write=True))
    results: list[Any] = []
    async with in_transaction() as tx:
        for step in steps:
            if step.when is not None and not step.when(results):
                results.append(None)
                continue
            sql, values = step.bind("postgres", results)
            if step.many is not None:
                if values:
                    await tx.execute_many(sql, values)
                result: Any = len(values)
            elif step.fetch:
                result = list(await tx.execute_query_dict(sql, values))
            else:
                result = (await tx.execute_query(sql, values))[0]
            if step.required is not None and not result:
                raise Refused(step.required)  # rolls the transaction back
            results.append(result)
            if step.check is not None:
                step.check(results)
    return results


# Tortoise's query log: each statement of a transaction is logged there as Tortoise logs its own.
_query_log = logging.getLogger("tortoise.db_client")


def _sqlite_transaction(db: Any, steps: list[Step]) -> list[Any]:
    """In aiosqlite's thread, as one trip (db_sqlite): BEGIN IMMEDIATE, the steps, COMMIT; or only the
    steps, inside the savepoint of a group of writes that commit together (db_sqlite's group commit)."""
    logged = _query_log.isEnabledFor(logging.DEBUG)
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    results: list[Any] = []
    try:
        cursor = db.cursor()
        cursor.row_factory = None
        try:
            for step in steps:
                if step.when is not None and not step.when(results):
                    results.append(None)
                    continue
                sql, values = step.bind("sqlite", results)
                if logged:
                    _query_log.debug("%s: %s", sql, values)
                if step.many is not None:
                    if values:
                        cursor.executemany(sql, values)
                    result: Any = len(values)
                elif step.fetch:
                    cursor.execute(sql, values)
                    names = tuple(column[0] for column in cursor.description)
                    result = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                else:
                    cursor.execute(sql, values)
                    result = cursor.rowcount
                if step.required is not None and not result:
                    raise Refused(step.required)
                results.append(result)
                if step.check is not None:
                    step.check(results)
        finally:
            cursor.close()
        if own:
            db.commit()
    except BaseException:
        if own:
            db.rollback()
        raise
    return results

