"""Billing: the provider's subscriptions as we last understood them, and every payment webhook received."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from imageextract.models.base import new_payment_event_id

if TYPE_CHECKING:
    from imageextract.models.accounts import Account

SUBSCRIPTION_STATUSES = ("active", "on_hold", "failed", "cancelled", "expired")


class Subscription(Model):
    """One provider subscription. `last_event_at` is the provider's timestamp of the newest lifecycle event
    applied, so an older event that arrives late cannot overwrite a newer state."""

    id = fields.BigIntField(primary_key=True)
    provider_subscription_id = fields.CharField(max_length=200, unique=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="subscriptions", on_delete=fields.CASCADE
    )
    product_id = fields.CharField(max_length=200)
    plan = fields.CharField(max_length=20)
    status = fields.CharField(max_length=20)
    current_period_start = fields.DatetimeField(null=True)
    current_period_end = fields.DatetimeField(null=True)
    cancel_at_period_end = fields.BooleanField(default=False)
    # When a subscription that is no longer active stops carrying its plan (its period end); the account
    # falls back to free then. `ended` is set once that has been applied to the account.
    ends_at = fields.DatetimeField(null=True, db_index=True)
    ended = fields.BooleanField(default=False)
    last_event_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "subscriptions"


class PaymentEvent(Model):
    """A verified payment webhook, stored once per `webhook-id` (`provider_event_id`)."""

    id = fields.CharField(max_length=40, primary_key=True, default=new_payment_event_id)
    provider_event_id = fields.CharField(max_length=200, unique=True)
    event_type = fields.CharField(max_length=100)
    account: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="payment_events", null=True, on_delete=fields.SET_NULL
    )
    payload: fields.JSONField[Any] = fields.JSONField()
    occurred_at = fields.DatetimeField(null=True, db_index=True)  # the provider's own timestamp
    subscription_id = fields.CharField(max_length=200, null=True, db_index=True)  # the provider's id
    payment_id = fields.CharField(max_length=200, null=True, db_index=True)
    amount = fields.BigIntField(null=True)  # minor units, as the provider sends them
    currency = fields.CharField(max_length=10, null=True)
    # What applying it did: applied | superseded (older than the state we hold) | recorded (payments,
    # refunds, disputes) | unmatched_account | unknown_product
    outcome = fields.CharField(max_length=30, default="recorded")
    processed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment_events"
