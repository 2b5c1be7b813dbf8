"""Jobs, their items (one per source) and the images they produced."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from imageextract.models.base import new_image_id

JOB_TYPES = ("url", "bulk", "document", "batch")
JOB_STATUSES = ("pending", "queued", "processing", "done", "failed", "cancelled")
ITEM_STATUSES = ("pending", "queued", "processing", "done", "failed", "cancelled")


class Job(Model):
    id = fields.UUIDField(primary_key=True)
    account = fields.ForeignKeyField("models.Account", related_name="jobs", null=True, on_delete=fields.CASCADE)
    project = fields.ForeignKeyField("models.Project", related_name="jobs", null=True, on_delete=fields.SET_NULL)
    created_by = fields.ForeignKeyField("models.User", related_name="jobs", null=True, on_delete=fields.SET_NULL)
    api_key_id = fields.CharField(max_length=40, null=True)
    guest_token_hash = fields.CharField(max_length=64, null=True, db_index=True)
    client_ip = fields.CharField(max_length=64, null=True)
    type = fields.CharField(max_length=20)
    status = fields.CharField(max_length=20, default="pending", db_index=True)
    partial = fields.BooleanField(default=False)
    input = fields.JSONField()  # {"value": URL | [URL] | [{filename, size, storage_key}]}; see source_input
    metadata = fields.JSONField(null=True)
    webhook_url = fields.CharField(max_length=2048, null=True)  # this job's own callback (services/job_callbacks.py)
    webhook_secret = fields.CharField(max_length=100, null=True)
    credits_reserved = fields.IntField(default=0)
    credits_used = fields.IntField(default=0)
    image_count = fields.IntField(default=0)  # images stored (downloadable)
    failed_image_count = fields.IntField(default=0)  # images found whose bytes could not be stored
    total_items = fields.IntField(default=0)
    completed_items = fields.IntField(default=0)
    error_code = fields.CharField(max_length=40, null=True)
    error_message = fields.TextField(null=True)
    retry_of_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"


class JobItem(Model):
    id = fields.UUIDField(primary_key=True)
    job = fields.ForeignKeyField("models.Job", related_name="items", on_delete=fields.CASCADE)
    position = fields.IntField()
    kind = fields.CharField(max_length=20)  # url | document
    source_label = fields.CharField(max_length=2048)
    source_url = fields.CharField(max_length=2048, null=True)
    upload_key = fields.CharField(max_length=200, null=True, db_index=True)  # storage key of the uploaded bytes
    upload_size = fields.BigIntField(null=True)
    status = fields.CharField(max_length=20, default="pending", db_index=True)
    attempts = fields.IntField(default=0)
    image_count = fields.IntField(default=0)  # images stored (downloadable)
    failed_image_count = fields.IntField(default=0)
    duration_ms = fields.IntField(null=True)
    error_code = fields.CharField(max_length=40, null=True)
    error_message = fields.TextField(null=True)
    refunded = fields.BooleanField(default=False)
    warnings = fields.JSONField(null=True)  # engine warnings on a done item, e.g. ["document_repaired"]
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    lease_expires_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "job_items"
        unique_together = (("job", "position"),)
        # The batch cursor walk: a batch's items in (updated_at, id) order (services/batches.py).
        indexes = (Index(fields=("job_id", "updated_at", "id"), name="job_items_job_updated_id"),)


class Image(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_image_id)
    job = fields.ForeignKeyField("models.Job", related_name="images", on_delete=fields.CASCADE)
    item = fields.ForeignKeyField("models.JobItem", related_name="images", on_delete=fields.CASCADE)
    account_id_ref = fields.CharField(max_length=40, null=True, db_index=True)
    position = fields.IntField()
    filename = fields.CharField(max_length=255)
    source_url = fields.TextField(null=True)
    source_kind = fields.CharField(max_length=20)
    storage_key = fields.CharField(max_length=200, null=True, db_index=True)  # counted when bytes are released
    content_hash = fields.CharField(max_length=64, null=True, db_index=True)
    width = fields.IntField(null=True)
    height = fields.IntField(null=True)
    aspect_ratio = fields.FloatField(null=True)
    format = fields.CharField(max_length=20, null=True)
    file_size = fields.BigIntField(null=True)
    color_space = fields.CharField(max_length=20, null=True)
    has_alpha = fields.BooleanField(null=True)
    alt_text = fields.TextField(null=True)
    title = fields.TextField(null=True)
    aria_label = fields.TextField(null=True)
    is_lazy_loaded = fields.BooleanField(default=False)
    document_page = fields.IntField(null=True)
    document_slide = fields.IntField(null=True)
    document_asset_hash = fields.CharField(max_length=64, null=True)
    document_occurrence_count = fields.IntField(null=True)
    provenance = fields.CharField(max_length=20, null=True)  # the construct it was found in
    page_url = fields.TextField(null=True)
    variants = fields.JSONField(null=True)
    sheet = fields.CharField(max_length=200, null=True)
    anchor_cell = fields.CharField(max_length=20, null=True)
    media_type = fields.CharField(max_length=100, null=True)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "images"
        unique_together = (("item", "position"),)
        # A job's images, stored or not (results, pages, exports): migration 0008.
        indexes = (Index(fields=("job_id", "storage_key"), name="images_job_stored"),)
