"""Idempotency records and rate-limit counters."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IdempotencyRecord(Model):
    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=80)  # account id, or "guest:<ip>"
    key = fields.CharField(max_length=255)
    request_hash = fields.CharField(max_length=64)
    job_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_records"
        unique_together = (("scope", "key"),)


class RateCounter(Model):
    """A fixed-window counter (e.g. jobs per day per guest IP or per account)."""

    id = fields.BigIntField(primary_key=True)
    bucket = fields.CharField(max_length=160, unique=True)  # "<scope>:<window start>"
    count = fields.IntField(default=0)
    window_end = fields.DatetimeField(db_index=True)

    class Meta:
        table = "rate_counters"
