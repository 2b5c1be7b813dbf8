"""Usage rollups over a time window."""

from __future__ import annotations

from datetime import datetime

from imageextract.context import Context
from imageextract.errors import ValidationError
from imageextract.models import Image, Job
from imageextract.services import ledger


def parse_instant(value: str | None, *, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} must be an ISO 8601 timestamp", details={"field": field}) from None
    if parsed.tzinfo is None:
        raise ValidationError(f"{field} must carry a timezone (e.g. Z)", details={"field": field})
    return parsed


async def account_usage(ctx: Context, *, since: str | None, until: str | None) -> dict[str, object]:
    """Jobs, credits and images over [since, until] (ISO 8601 instants, either end open)."""
    principal = ctx.require_principal()
    return await _usage(principal.account_id, since=parse_instant(since, field="since"),
                        until=parse_instant(until, field="until"))


async def _usage(account_id: str, *, since: datetime | None, until: datetime | None) -> dict[str, object]:
    if since and until and since > until:
        raise ValidationError("since must not be after until", details={"since": since.isoformat()})
    jobs = Job.filter(account_id=account_id)
    images = Image.filter(account_id_ref=account_id, storage_key__isnull=False)  # stored, downloadable
    if since is not None:
        jobs = jobs.filter(created_at__gte=since)
        images = images.filter(created_at__gte=since)
    if until is not None:
        jobs = jobs.filter(created_at__lte=until)
        images = images.filter(created_at__lte=until)
    return {
        "account_id": account_id,
        "jobs_total": await jobs.count(),
        "credits_debited": await ledger.net_debited(account_id=account_id, since=since, until=until),
        "images_extracted": await images.count(),
    }
