"""Exports: converted, compressed, responsive files made from the images a job already holds.

An `Export` belongs to an account (and the job's project); each source image is one `ExportImage` (the unit
of work, of credit and of refund); each file it produced is one `ExportFile` (stored content-addressed).
"""

from __future__ import annotations

import secrets

from tortoise import fields
from tortoise.models import Model

EXPORT_STATUSES = ("queued", "processing", "done", "failed", "partial")
EXPORT_IMAGE_STATUSES = ("queued", "processing", "done", "failed")


def new_export_id() -> str:
    return f"exp_{secrets.token_hex(12)}"


def new_export_image_id() -> str:
    return f"exi_{secrets.token_hex(12)}"


class Export(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_export_id)
    account = fields.ForeignKeyField("models.Account", related_name="exports", on_delete=fields.CASCADE)
    project = fields.ForeignKeyField("models.Project", related_name="exports", null=True, on_delete=fields.SET_NULL)
    job = fields.ForeignKeyField("models.Job", related_name="exports", on_delete=fields.CASCADE)
    status = fields.CharField(max_length=20, default="queued", db_index=True)
    settings = fields.JSONField()  # the normalised settings: format, preset, responsive, responsive_sizes, ...
    total_images = fields.IntField(default=0)
    completed_images = fields.IntField(default=0)  # done or failed
    failed_images = fields.IntField(default=0)
    credits_debited = fields.IntField(default=0)
    credits_refunded = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "exports"


class ExportImage(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_export_image_id)
    export = fields.ForeignKeyField("models.Export", related_name="images", on_delete=fields.CASCADE)
    image_id = fields.CharField(max_length=40)  # the source models.Image
    position = fields.IntField()
    basename = fields.CharField(max_length=120)  # safe and unique in the export; files add -<w>w and the extension
    format = fields.CharField(max_length=10)  # the concrete output format (webp, avif, jpeg, png, gif)
    status = fields.CharField(max_length=20, default="queued", db_index=True)
    attempts = fields.IntField(default=0)
    error_code = fields.CharField(max_length=40, null=True)
    error_message = fields.TextField(null=True)
    refunded = fields.BooleanField(default=False)
    lease_expires_at = fields.DatetimeField(null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "export_images"
        unique_together = (("export", "position"),)


class ExportFile(Model):
    id = fields.BigIntField(primary_key=True)
    export = fields.ForeignKeyField("models.Export", related_name="files", on_delete=fields.CASCADE)
    export_image = fields.ForeignKeyField("models.ExportImage", related_name="files", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=20)  # the variant: full, 1024w, ...
    filename = fields.CharField(max_length=160)
    format = fields.CharField(max_length=10)
    width = fields.IntField()
    height = fields.IntField()
    size = fields.BigIntField()
    frames = fields.IntField(default=1)
    storage_key = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "export_files"
        unique_together = (("export", "filename"),)
