"""Delivering one webhook: sign, POST through the SSRF-safe fetcher, record the attempt, schedule the next.

The schedule lives in the database (`next_attempt_at`) and in the broker (a delayed message), so it survives
a worker restart; the reconciler re-sends deliveries whose time has passed without a message arriving.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from imageextract.extract.fetcher import SafeFetcher
from imageextract.extract.types import ExtractError
from imageextract.models import Project, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from imageextract.services.unit_of_work import Message, send_messages
from imageextract.services.webhook_signing import signed_headers

log = logging.getLogger("imageextract.webhooks")

EARLY_TOLERANCE = timedelta(seconds=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - _now()).total_seconds())
        except (TypeError, ValueError):
            return None


def next_delay(schedule: list[float], attempt: int, retry_after: float | None) -> float | None:
    """Seconds until attempt `attempt + 1`, or None when the schedule is used up. Jitter: up to +10 %."""
    if attempt >= len(schedule):
        return None
    base = schedule[attempt]
    delay = base + random.uniform(0, base * 0.1) if base else 0.0
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


async def _secret_for(delivery: WebhookDelivery) -> str | None:
    from imageextract.services import job_callbacks

    if job_callbacks.is_job_callback(delivery):
        return await job_callbacks.secret_for(delivery)
    if delivery.endpoint_id is not None:  # type: ignore[attr-defined]
        endpoint = await WebhookEndpoint.get_or_none(id=delivery.endpoint_id)  # type: ignore[attr-defined]
        return endpoint.secret if endpoint else None
    project = await Project.get_or_none(id=delivery.project_id)  # type: ignore[attr-defined]
    return project.webhook_secret if project else None


async def deliver(runtime: Any, delivery_id: str) -> str:
    """One attempt, if one is due. Returns the outcome (for logs and tests)."""
    delivery = await WebhookDelivery.get_or_none(id=delivery_id)
    if delivery is None or delivery.status != "pending":
        return "skipped"
    now = _now()
    if delivery.next_attempt_at and delivery.next_attempt_at > now + EARLY_TOLERANCE:
        return "not_due"  # a duplicate or early message; the scheduled one will come
    endpoint = None
    if delivery.endpoint_id is not None:  # type: ignore[attr-defined]
        endpoint = await WebhookEndpoint.get_or_none(id=delivery.endpoint_id)  # type: ignore[attr-defined]
        if endpoint is None or endpoint.status != "active":
            await WebhookDelivery.filter(id=delivery.id, status="pending").update(
                status="failed", last_error="endpoint disabled or deleted", next_attempt_at=None)
            return "failed"
    # Claim this attempt: only one worker sends attempt N even if the message was delivered twice.
    attempt = delivery.attempt + 1
    # The claim is a lease: if this worker dies mid-POST, the reconciler re-sends once the lease has passed.
    lease = now + timedelta(seconds=runtime.settings.webhook_timeout_seconds * 2 + 30)
    claimed = await WebhookDelivery.filter(id=delivery.id, status="pending", attempt=delivery.attempt).update(
        attempt=attempt, next_attempt_at=lease)
    if not claimed:
        return "skipped"
    secret = await _secret_for(delivery)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    status_code, error, retry_after, duration_ms = await _post(runtime, delivery.url, secret or "", delivery.id, body)
    return await _record(runtime, delivery, endpoint, attempt, status_code, error, retry_after, duration_ms)


async def _post(runtime: Any, url: str, secret: str, delivery_id: str, body: str) -> tuple[int | None, str | None, float | None, int]:
    settings = runtime.settings
    timeout = settings.webhook_timeout_seconds
    options = settings.extract_options(connect_timeout=timeout, read_timeout=timeout, total_timeout=timeout)
    headers = signed_headers(secret, delivery_id, int(time.time()), body)
    started = time.monotonic()
    try:
        async with SafeFetcher(options) as fetcher:
            result = await fetcher.post(url, body.encode(), headers=headers, follow_redirects=False)
    except ExtractError as exc:
        return None, f"{exc.code}: {exc.message}", None, int((time.monotonic() - started) * 1000)
    duration = int((time.monotonic() - started) * 1000)
    error = None if result.ok else f"HTTP {result.status}"
    if 300 <= result.status < 400:
        error = f"HTTP {result.status} redirect not followed"
    return result.status, error, _retry_after(result.headers.get("retry-after")), duration


async def _record(runtime: Any, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, attempt: int,
                  status_code: int | None, error: str | None, retry_after: float | None, duration_ms: int) -> str:
    settings = runtime.settings
    now = _now()
    ok = status_code is not None and 200 <= status_code < 300
    gone = status_code == 410
    delay = None if ok or gone else next_delay(settings.webhook_retry_schedule, attempt, retry_after)
    next_at = now + timedelta(seconds=delay) if delay is not None else None
    await WebhookAttempt.create(delivery_id=delivery.id, attempt=attempt, status_code=status_code,
                                duration_ms=duration_ms, error=error, next_attempt_at=next_at)
    if ok:
        await WebhookDelivery.filter(id=delivery.id).update(status="delivered", delivered_at=now,
                                                            last_status_code=status_code, last_error=None)
        if endpoint is not None:
            await WebhookEndpoint.filter(id=endpoint.id).update(failing_since=None)
        return "delivered"
    outcome = "retrying" if next_at else "failed"
    await WebhookDelivery.filter(id=delivery.id).update(
        status="pending" if next_at else "failed", next_attempt_at=next_at, last_status_code=status_code,
        last_error=error)
    if endpoint is not None:
        await _endpoint_failed(endpoint, now, gone, runtime.settings.webhook_disable_after_days)
    if gone:
        return "gone"
    if next_at is not None:
        await send_messages(runtime, [Message("deliver_webhook", (delivery.id,), int(delay * 1000) if delay else None)])
    return outcome


async def _endpoint_failed(endpoint: WebhookEndpoint, now: datetime, gone: bool, disable_after_days: float) -> None:
    if gone:
        await WebhookEndpoint.filter(id=endpoint.id).update(
            status="disabled", disabled_reason="Receiver answered 410 Gone: endpoint disabled")
        return
    await WebhookEndpoint.filter(id=endpoint.id, failing_since__isnull=True).update(failing_since=now)
    fresh = await WebhookEndpoint.get(id=endpoint.id)
    if fresh.failing_since and now - fresh.failing_since >= timedelta(days=disable_after_days):
        await WebhookEndpoint.filter(id=endpoint.id, status="active").update(
            status="disabled",
            disabled_reason=f"Every delivery failed for {disable_after_days:g} days (since "
                            f"{fresh.failing_since.isoformat()}): endpoint disabled")


async def resend_due(runtime: Any) -> int:
    """Reconciler: deliveries whose attempt is overdue (a lost message, a dead worker holding it, a restarted
    broker) are re-sent. A duplicate of a message that still arrives is harmless: attempts are claimed."""
    grace = timedelta(seconds=runtime.settings.webhook_resend_after_seconds)
    due = await WebhookDelivery.filter(status="pending", next_attempt_at__lt=_now() - grace).values_list("id", flat=True)
    await send_messages(runtime, [Message("deliver_webhook", (delivery_id,)) for delivery_id in due])
    return len(due)
