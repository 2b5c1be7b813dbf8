"""Webhook endpoints, deliveries (one per event and receiver) and their attempts."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from imageextract.models.base import new_delivery_id, new_webhook_id

EVENT_TYPES = ("job.completed", "job.failed", "job.partially_failed", "job.cancelled", "batch.completed",
               "batch.partially_failed", "batch.failed", "batch.cancelled", "webhook.test")


class WebhookEndpoint(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_webhook_id)
    account = fields.ForeignKeyField("models.Account", related_name="webhooks", on_delete=fields.CASCADE)
    project = fields.ForeignKeyField("models.Project", related_name="webhooks", on_delete=fields.CASCADE)
    url = fields.CharField(max_length=2048)
    secret = fields.CharField(max_length=100)
    subscribed_events = fields.JSONField()
    status = fields.CharField(max_length=20, default="active")  # active | disabled
    disabled_reason = fields.CharField(max_length=300, null=True)
    failing_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_endpoints"


class WebhookDelivery(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_delivery_id)
    account = fields.ForeignKeyField("models.Account", related_name="webhook_deliveries", on_delete=fields.CASCADE)
    project = fields.ForeignKeyField("models.Project", related_name="webhook_deliveries", on_delete=fields.CASCADE)
    endpoint = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", null=True, on_delete=fields.SET_NULL
    )
    url = fields.CharField(max_length=2048)
    event_type = fields.CharField(max_length=40)
    # One delivery per (receiver, event): "<endpoint id or project default>:<event id>".
    dedupe_key = fields.CharField(max_length=200, unique=True)
    job_id = fields.UUIDField(null=True, db_index=True)
    payload = fields.JSONField()
    status = fields.CharField(max_length=20, default="pending")  # pending | delivered | failed
    attempt = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    last_status_code = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_deliveries"


class WebhookAttempt(Model):
    id = fields.BigIntField(primary_key=True)
    delivery = fields.ForeignKeyField("models.WebhookDelivery", related_name="attempts", on_delete=fields.CASCADE)
    attempt = fields.IntField()
    status_code = fields.IntField(null=True)
    duration_ms = fields.IntField(null=True)
    error = fields.TextField(null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_attempts"
        unique_together = (("delivery", "attempt"),)
