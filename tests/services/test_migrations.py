"""Migrations cover the models: a model change without a migration fails here."""

from __future__ import annotations

from pathlib import Path

from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract import db
from imageextract.config import Settings
from tests.support import Backend


async def test_no_model_changes_without_migration(tmp_path: Path) -> None:
    EXECUTOR_CACHE.clear()
    settings = Settings(data_dir=tmp_path, create_demo_account=False)
    await db.migrate(settings)
    assert await db.pending_model_changes(settings) == []


async def test_migrate_is_idempotent(tmp_path: Path) -> None:
    EXECUTOR_CACHE.clear()
    settings = Settings(data_dir=tmp_path, create_demo_account=False)
    await db.migrate(settings)
    await db.migrate(settings)
    assert (tmp_path / "imageextract.sqlite3").exists()



async def test_every_declared_index_exists(db: Backend) -> None:
    """Each index, unique field and unique-together the models declare is in the migrated database, on both
    backends (imageextract/db_indexes.py: how Tortoise's migrations lost some; a later migration that loses
    one again fails here)."""
    from tortoise import Tortoise, connections
    from tortoise.migrations.schema_editor.base import BaseSchemaEditor

    from imageextract.db_indexes import declared_indexes, table_indexes

    conn = connections.get("default")
    editor = BaseSchemaEditor(conn)
    missing: list[str] = []
    checked = 0
    for model in Tortoise.apps["models"].values():
        have = await table_indexes(conn, model._meta.db_table)
        for unique, columns, _ in declared_indexes(editor, model):
            checked += 1
            if (unique, columns) not in have and (True, columns) not in have:
                missing.append(f"{model._meta.db_table} {'unique ' if unique else ''}{columns}")
    assert checked > 40, checked
    assert missing == [], missing
