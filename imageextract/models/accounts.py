"""Users, accounts, memberships and browser sessions."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from imageextract.models.base import new_account_id, new_membership_id, new_session_id, new_user_id

ROLES = ("owner", "admin", "member")


class User(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_user_id)
    email = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200, default="")
    password_hash = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class Account(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_account_id)
    name = fields.CharField(max_length=200)
    slug = fields.CharField(max_length=100, unique=True)
    plan = fields.CharField(max_length=20, default="free")
    status = fields.CharField(max_length=20, default="active")
    # The cached balance. Only services.ledger changes it, always together with a ledger entry.
    credits = fields.BigIntField(default=0)
    # Items of this account being extracted right now: a slot counter for url_worker_concurrency, taken and
    # given back with conditional UPDATEs; the reconciler recounts it from the items after a crash.
    active_items = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "accounts"


class Membership(Model):
    id = fields.CharField(max_length=40, primary_key=True, default=new_membership_id)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memberships", on_delete=fields.CASCADE
    )
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="memberships", on_delete=fields.CASCADE
    )
    role = fields.CharField(max_length=20, default="member")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "memberships"
        unique_together = (("user", "account"),)


class Session(Model):
    """A browser session: the cookie holds a random token, the row holds its SHA-256."""

    id = fields.CharField(max_length=40, primary_key=True, default=new_session_id)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=300, default="")
    ip = fields.CharField(max_length=64, default="")

    class Meta:
        table = "sessions"
