"""Migrations cover the models: a model change without a migration fails here."""

from __future__ import annotations

from pathlib import Path

from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract import db
from imageextract.config import Settings


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
