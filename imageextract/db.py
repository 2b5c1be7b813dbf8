"""Database configuration and migrations (Tortoise ORM, one migration history for SQLite and Postgres)."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as migrate_api
from tortoise.migrations.autodetector import MigrationAutodetector

from imageextract.config import Settings

APP_LABEL = "models"


async def release_connection(conn: asyncpg.Connection) -> None:
    """What the asyncpg pool runs as a connection goes back. Its default runs `SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL` after every statement taken outside a transaction: a second round trip
    each, about half of a short statement's cost. We hold no advisory locks, cursors, LISTENs or SET state
    across a checkout (Redis carries pub/sub), so the one thing to undo is a transaction left open."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        connection: Any = {
            "engine": "imageextract.db_sqlite",  # BEGIN IMMEDIATE for transactions (see that module)
            "credentials": {
                "file_path": url.removeprefix("sqlite://"),
                "journal_mode": "WAL",
                "busy_timeout": 30000,
                # Tortoise's default (16 KiB) truncates the log at every checkpoint, so the commits after it
                # grow the file again and each fsync also journals the file's new size: a third slower per
                # commit here. The log stays at its checkpoint size (about 4 MiB) and is cut back past this.
                "journal_size_limit": 64 * 1024 * 1024,
            },
        }
    else:
        connection = expand_db_url(url.replace("postgresql://", "postgres://", 1))
        connection["credentials"]["reset"] = release_connection
    return {
        "connections": {"default": connection},
        "apps": {
            APP_LABEL: {
                "models": ["imageextract.models"],
                "default_connection": "default",
                "migrations": "imageextract.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings) -> None:
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def migrate(settings: Settings) -> None:
    """Apply every pending migration (idempotent)."""

    await migrate_api(config=tortoise_config(settings))
    await Tortoise.close_connections()


async def pending_model_changes(settings: Settings) -> list[str]:
    """Names of migrations `makemigrations` would write now (empty when migrations cover the models)."""

    config = tortoise_config(settings)
    ctx = await Tortoise.init(config=config)
    try:
        assert ctx.apps is not None
        detector = MigrationAutodetector(ctx.apps, config["apps"])
        writers = await detector.changes()
        return [w.name for w in writers]
    finally:
        await Tortoise.close_connections()


DB_RETRY_AFTER_SECONDS = 5


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database cannot be reached right now, as opposed to a bug
    or a bad query: the connection was refused, dropped or timed out."""

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBConnectionError | ConnectionError | TimeoutError
                      | asyncpg.exceptions.PostgresConnectionError | asyncpg.exceptions.CannotConnectNowError
                      | asyncpg.exceptions.InterfaceError):
            return True
        if isinstance(current, OSError) and current.errno is not None:
            return True
        current = current.__cause__ or current.__context__
    return False
