"""The append-only credit ledger."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

ENTRY_TYPES = ("grant", "plan_grant", "purchase", "adjustment", "job_debit", "job_refund")


class LedgerEntry(Model):
    id = fields.BigIntField(primary_key=True)
    account = fields.ForeignKeyField("models.Account", related_name="ledger", on_delete=fields.CASCADE)
    entry_type = fields.CharField(max_length=20)
    amount = fields.BigIntField()  # negative for debits
    balance_after = fields.BigIntField()
    job_id = fields.UUIDField(null=True, db_index=True)
    item_id = fields.UUIDField(null=True)
    # A natural key for entries that must happen at most once (e.g. "refund:item:<id>").
    unique_ref = fields.CharField(max_length=120, null=True, unique=True)
    note = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "ledger_entries"
