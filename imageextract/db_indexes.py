"""The indexes the models declare, made sure of in the database (migration 0008's `RunPython`).

Tortoise's migrations lose declared indexes in two ways, and a model can look indexed while its table is not:

- On SQLite, changing a column (`AlterField`) rebuilds the table (`_remake_table`: create, copy, drop,
  rename) and the rebuilt table keeps no index and no unique-together. Migration 0004 left `job_items` and
  `images` without their `(job, position)` / `(item, position)` uniqueness and without any `db_index`
  index, so every read of a job's images scanned the whole table.
- On both databases, `AddField` of a `db_index=True` field adds the column without its index
  (`payment_events`' provider ids and timestamp, migration 0002).

`restore_indexes` creates each declared index, unique field and unique-together that the table lacks, under
the name Tortoise gives it at table creation; an index already there with the same columns (whatever its
name) counts. tests/services/test_migrations.py checks every declared index is present on both backends.
"""

from __future__ import annotations

import logging
from typing import Any

from tortoise.exceptions import IntegrityError

log = logging.getLogger("imageextract.db")

_PG_INDEXES = """
SELECT ix.indisunique AS "unique", array_agg(a.attname ORDER BY k.n) AS columns
FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid
CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace GROUP BY ix.indexrelid, ix.indisunique
"""

Key = tuple[bool, tuple[str, ...]]


async def restore_indexes(apps: Any, editor: Any) -> None:
    """A unique index that rows already in the table break (rows a lost constraint let in) is made a plain
    index instead, with a warning naming it: the database still starts, and reads are still indexed."""
    client = editor.client
    for models in apps.apps.values():
        for model in models.values():
            table = model._meta.db_table
            have = await table_indexes(client, table)
            for unique, columns, sql in declared_indexes(editor, model):
                if (unique, columns) in have or (True, columns) in have:
                    continue
                try:
                    await client.execute_script(sql)
                except IntegrityError:
                    if not unique:
                        raise
                    log.warning("rows of %s repeat %s: indexed without uniqueness", table, ", ".join(columns))
                    await client.execute_script(editor._get_index_sql(model, list(columns)))
                have.add((unique, columns))


async def table_indexes(client: Any, table: str) -> set[Key]:
    """(unique, columns) of each index the table has."""
    found: set[Key] = set()
    if client.capabilities.dialect == "sqlite":
        for index in await client.execute_query_dict(f'PRAGMA index_list("{table}")'):
            info = await client.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
            found.add((bool(index["unique"]), tuple(r["name"] for r in sorted(info, key=lambda r: r["seqno"]))))
    else:
        for row in await client.execute_query_dict(_PG_INDEXES, [table]):
            found.add((bool(row["unique"]), tuple(row["columns"])))
    return found


def declared_indexes(editor: Any, model: Any) -> list[tuple[bool, tuple[str, ...], str]]:
    """(unique, columns, CREATE statement) for each index the model declares, as `create_model` names them:
    `db_index` fields, unique fields, `unique_together` and `Meta.indexes`."""
    from tortoise.indexes import Index

    meta = model._meta
    table = meta.db_table
    declared: list[tuple[bool, tuple[str, ...], str]] = []

    def unique(columns: list[str]) -> tuple[bool, tuple[str, ...], str]:
        quoted = ", ".join(f'"{c}"' for c in columns)
        name = editor._get_unique_constraint_name(model, columns)
        return True, tuple(columns), f'CREATE UNIQUE INDEX "{name}" ON "{table}" ({quoted});'

    for name, db_field in meta.fields_db_projection.items():
        field = meta.fields_map[name]
        if field.pk:
            continue
        if field.unique:
            declared.append(unique([db_field]))
        elif field.index:
            declared.append((False, (db_field,), editor._get_index_sql(model, [db_field])))
    for together in meta.unique_together or ():
        declared.append(unique([meta.fields_map[f].source_field or f for f in together]))
    for index in meta.indexes or ():
        if isinstance(index, Index):
            declared.append((False, tuple(index.field_names), editor._get_index_sql(
                model, index.field_names, index_name=index.name, index_type=index.INDEX_TYPE, extra=index.extra)))
        else:
            columns = [meta.fields_map[f].source_field or f for f in index]
            declared.append((False, tuple(columns), editor._get_index_sql(model, columns)))
    return declared
