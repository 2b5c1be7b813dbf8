"""Migrations cover the models: a model change without a migration fails here."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tortoise import Tortoise
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


async def test_restoring_indexes_survives_rows_that_break_uniqueness(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """An embedded database that ran without the lost `(item_id, position)` uniqueness may hold rows that
    repeat it: migration 0008 then indexes those columns without uniqueness, warns, keeps every row, and the
    service starts."""
    import sqlite3

    from tortoise.migrations.api.migrate import migrate as migrate_api

    EXECUTOR_CACHE.clear()
    settings = Settings(data_dir=tmp_path, create_demo_account=False)
    await migrate_api(config=db.tortoise_config(settings), target="models.0007_batches")
    await Tortoise.close_connections()
    raw = sqlite3.connect(tmp_path / "imageextract.sqlite3")
    for image_id in ("img_a", "img_b"):
        raw.execute('INSERT INTO "images" ("id", "job_id", "item_id", "position", "filename", "source_kind", '
                    '"is_lazy_loaded", "created_at") VALUES (?, ?, ?, 0, ?, ?, 0, ?)',
                    (image_id, "j1", "i1", "a.png", "img", "2026-01-01 00:00:00+00:00"))
    raw.commit()
    with caplog.at_level(logging.WARNING, logger="imageextract.db"):
        await db.migrate(settings)
    assert "rows of images repeat item_id, position: indexed without uniqueness" in caplog.text
    indexes = {row[1]: row[2] for row in raw.execute('PRAGMA index_list("images")')}
    plain = [name for name, unique in indexes.items() if not unique and
             [r[2] for r in raw.execute(f'PRAGMA index_info("{name}")')] == ["item_id", "position"]]
    assert plain and raw.execute('SELECT COUNT(*) FROM "images"').fetchone()[0] == 2
    raw.close()
