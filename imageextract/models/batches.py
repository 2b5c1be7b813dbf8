"""The batch lane: a batch is a Job (type "batch") whose items can number 10,000; `Batch` holds what only a
batch has (the cancel request, expiry). `StagedFile` is a document staged for a batch through a presigned
(S3) or signed (local) upload URL."""

from __future__ import annotations

import secrets

from tortoise import fields
from tortoise.models import Model


def new_file_id() -> str:
    return f"file_{secrets.token_hex(12)}"


STAGED_STATUSES = ("pending", "uploaded", "rejected")


class Batch(Model):
    id = fields.UUIDField(primary_key=True)  # the same id as its job
    job = fields.OneToOneField("models.Job", related_name="batch", on_delete=fields.CASCADE)
    account = fields.ForeignKeyField("models.Account", related_name="batches", on_delete=fields.CASCADE)
    window = fields.IntField(default=1)  # items queued or running at once: the plan's url_worker_concurrency
    next_position = fields.IntField(default=0)  # items before it have left `pending` (the pump starts here)
    cancel_requested_at = fields.DatetimeField(null=True)
    expired_at = fields.DatetimeField(null=True)  # results (and inputs) deleted after the retention window
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "batches"


class StagedFile(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_file_id)
    account = fields.ForeignKeyField("models.Account", related_name="staged_files", on_delete=fields.CASCADE)
    filename = fields.CharField(max_length=255)
    size_bytes = fields.BigIntField()  # declared at staging; the upload must match it
    content_type = fields.CharField(max_length=100, null=True)
    storage_key = fields.CharField(max_length=200)
    status = fields.CharField(max_length=20, default="pending")  # pending | uploaded | rejected
    detected_type = fields.CharField(max_length=20, null=True)  # by magic bytes, on arrival
    batch_id = fields.UUIDField(null=True, db_index=True)  # the batch that consumed it (one batch per file)
    upload_used_at = fields.DatetimeField(null=True)  # the signed local upload URL is single-use
    uploaded_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(db_index=True)  # unused files (and their bytes) are swept after this
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "staged_files"
