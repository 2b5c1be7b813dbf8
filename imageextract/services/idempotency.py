"""Idempotency keys: one key, one request body, one result, for 24 hours (jobs and batches alike)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imageextract.errors import Conflict
from imageextract.models import IdempotencyRecord, Job

IDEMPOTENCY_TTL = timedelta(hours=24)


async def replay(scope: str, key: str, fingerprint: str) -> Job | None:
    """The job an earlier request with this key made (None if none, or expired); 409 when that request had
    another body (`fingerprint` is the hash of what the caller sent)."""
    record = await IdempotencyRecord.filter(scope=scope, key=key, expires_at__gt=datetime.now(UTC)).first()
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request body",
                       details={"idempotency_key": key})
    return await Job.get(id=record.job_id)
