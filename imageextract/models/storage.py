"""Stored objects: one row per content-addressed storage key that some job references or is about to.

The row is a lock, not a counter: whoever commits a new reference to a key upserts its row in the same
transaction, and whoever deletes the bytes of a key holds the row (upsert, count references, delete bytes,
delete row) in one transaction. The two serialise on the row, so bytes are never deleted under a reference
committed after the count (see services/deletion.py).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class StoredObject(Model):
    key = fields.CharField(max_length=200, primary_key=True)
    touched_at = fields.DatetimeField()

    class Meta:
        table = "stored_objects"
