"""Projects and API keys."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from imageextract.models.base import new_key_id, new_project_id


class Project(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_project_id)
    account = fields.ForeignKeyField("models.Account", related_name="projects", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200)
    slug = fields.CharField(max_length=100)
    site_url = fields.CharField(max_length=2048, null=True)
    default_webhook_url = fields.CharField(max_length=2048, null=True)
    # Signs deliveries to default_webhook_url (endpoints have their own secrets).
    webhook_secret = fields.CharField(max_length=100, null=True)
    status = fields.CharField(max_length=20, default="active")  # active | archived
    is_default = fields.BooleanField(default=False)
    retention_days = fields.IntField(null=True)  # finished jobs older than this are deleted; null keeps forever
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        table = "projects"
        unique_together = (("account", "slug"),)


class ApiKey(Model):
    """An API key: only the SHA-256 of the full key and a short prefix are stored."""

    id = fields.CharField(max_length=40, primary_key=True, default=new_key_id)
    account = fields.ForeignKeyField("models.Account", related_name="api_keys", on_delete=fields.CASCADE)
    project = fields.ForeignKeyField(
        "models.Project", related_name="api_keys", null=True, on_delete=fields.CASCADE
    )
    user = fields.ForeignKeyField("models.User", related_name="api_keys", null=True, on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=20)  # project | dashboard
    label = fields.CharField(max_length=200, null=True)
    key_prefix = fields.CharField(max_length=32)
    key_hash = fields.CharField(max_length=64, unique=True)
    status = fields.CharField(max_length=20, default="active")  # active | revoked
    last_used = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)
    replaced_by_id = fields.CharField(max_length=40, null=True)

    class Meta:
        table = "api_keys"
