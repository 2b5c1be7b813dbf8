"""Idempotency records, payment events and rate-limit counters."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from imageextract.models.base import new_payment_event_id


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


class PaymentEvent(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_payment_event_id)
    provider_event_id = fields.CharField(max_length=200, unique=True)
    event_type = fields.CharField(max_length=100)
    account = fields.ForeignKeyField("models.Account", related_name="payment_events", null=True, on_delete=fields.SET_NULL)
    payload = fields.JSONField()
    processed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment_events"


class RateCounter(Model):
    """A fixed-window counter (e.g. jobs per day per guest IP or per account)."""

    id = fields.BigIntField(primary_key=True)
    bucket = fields.CharField(max_length=160, unique=True)  # "<scope>:<window start>"
    count = fields.IntField(default=0)
    window_end = fields.DatetimeField(db_index=True)

    class Meta:
        table = "rate_counters"
