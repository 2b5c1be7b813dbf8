"""Reference-safe storage of content-addressed bytes shared between jobs.

Storage keys are content addresses: two jobs that find the same bytes share one object. Bytes may only be
deleted when no job references them, and never under a reference that is being committed. References are
counted in the database at release time (images.storage_key, job_items.upload_key: indexed), and each key's
`stored_objects` row serialises the two sides:

- a writer (pipeline, submission) upserts the rows of the keys it references inside the transaction that
  commits the references (`touch`), then, after commit, re-puts any bytes that vanished (`ensure_stored`);
- a releaser (`release`) upserts the row, counts references, deletes the bytes and the row, all in one
  transaction.

On Postgres the upsert takes the row lock, on SQLite every write transaction takes the database write lock
(BEGIN IMMEDIATE). Either the writer committed first (the releaser counts its reference and keeps the
bytes), or the releaser committed first (the writer's `ensure_stored` sees the bytes gone and puts them back).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from imageextract.models import Image, JobItem, StoredObject
from imageextract.services.sql import Step

log = logging.getLogger("imageextract.storage")


async def touch(keys: Iterable[str | None], conn: Any) -> None:
    """Inside the caller's transaction: take each key's row (sorted, so two writers never deadlock)."""
    for chunk, now in _touch_chunks(keys):  # every finished item touches its keys: plain SQL, no ORM
        await conn.execute_query(*_touch_sql(conn.capabilities.dialect, chunk, now))


def touch_steps(keys: Iterable[str | None]) -> list[Step]:
    """`touch` as steps of a `sql.transaction`."""
    return [Step(raw=functools.partial(_touch_sql, chunk=chunk, now=now)) for chunk, now in _touch_chunks(keys)]


def _touch_chunks(keys: Iterable[str | None]) -> list[tuple[list[str], datetime]]:
    wanted, now = sorted({k for k in keys if k}), datetime.now(UTC)
    return [(wanted[start:start + _TOUCH_CHUNK], now) for start in range(0, len(wanted), _TOUCH_CHUNK)]


def _touch_sql(dialect: str, chunk: list[str], now: datetime) -> tuple[str, list[Any]]:
    marks = ["?"] * (2 * len(chunk)) if dialect == "sqlite" else [f"${i + 1}" for i in range(2 * len(chunk))]
    rows = ", ".join(f"({marks[2 * i]}, {marks[2 * i + 1]})" for i in range(len(chunk)))
    return (f'INSERT INTO "stored_objects" ("key", "touched_at") VALUES {rows} '
            f'ON CONFLICT ("key") DO UPDATE SET "touched_at"=excluded."touched_at"',
            [v for key in chunk for v in (key, now)])


_TOUCH_CHUNK = 500


async def ensure_stored(storage: Any, blobs: dict[str, bytes], *, content_types: dict[str, str | None] | None = None,
                        ) -> int:
    """After the commit that referenced `blobs`: put back any whose bytes a concurrent release removed."""
    absent = await storage.missing(blobs) if blobs else set()
    for key in sorted(absent):
        await storage.put(key, blobs[key], content_type=(content_types or {}).get(key))
    return len(absent)


async def is_referenced(key: str, conn: Any = None) -> bool:
    if await Image.filter(storage_key=key).using_db(conn).exists():
        return True
    return bool(await JobItem.filter(upload_key=key).using_db(conn).exists())


async def release(storage: Any, keys: Iterable[str | None]) -> list[str]:
    """Delete the bytes of each key no job references any more. Returns the keys whose bytes were deleted.

    A storage error leaves that key's bytes in place (an orphan, never a dangling reference) and is logged.
    """
    removed: list[str] = []
    for key in sorted({k for k in keys if k}):
        try:
            async with in_transaction() as conn:
                await touch([key], conn)
                if await is_referenced(key, conn):
                    continue
                await storage.delete(key)
                await StoredObject.filter(key=key).using_db(conn).delete()
            removed.append(key)
        except Exception:
            log.exception("could not release storage key %s; its bytes stay", key)
    return removed
