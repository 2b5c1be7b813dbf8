"""Batches (shared/spec/003): a Job of type "batch" whose items can number 10,000, on the same item table,
actors and ledger as every job.

- Submission validates every entry, then in one transaction: the idempotency record, the job, its `Batch`
  row, all items (bulk inserts) and ONE ledger debit for the whole batch (402 and nothing written if the
  balance cannot cover it). Items start `pending`; `batch_runs.pump` feeds them to the workers a window at a
  time, so a 10,000-item batch never puts 10,000 messages in front of another account's job.
- Reading a batch gives counts by status and items in (updated_at, id) order from an opaque cursor. The walk
  stops `batch_cursor_settle_seconds` behind now: an update whose timestamp was taken before a slow commit
  still lands after the client's cursor, so every change is seen exactly once.
- Cancel flips items that have not started (pending or queued) to cancelled and refunds them in one entry.
- Item results (the 302 to a stored result document) are services/batch_results.py.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import (
    Conflict,
    Forbidden,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ValidationError,
)
from imageextract.models import Batch, IdempotencyRecord, Job, JobItem, RateCounter, StagedFile
from imageextract.services import idempotency, ledger
from imageextract.services.job_views import parse_uuid
from imageextract.services.pagination import decode_cursor, encode_cursor
from imageextract.services.plans import get_plan
from imageextract.services.submission import _check_daily_cap, _clean_metadata, _resolve_project
from imageextract.services.unit_of_work import Message, send_messages
from imageextract.services.urls import validate_http_url

MAX_LIMIT = 1000
BATCH_STATUSES = ("pending", "running", "completed", "partially_failed", "failed", "cancelled", "expired")
ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
TERMINAL_BATCH = frozenset({"completed", "partially_failed", "failed", "cancelled", "expired"})
# Item status as a client sees it, from the pipeline's item status (one table for jobs and batches).
_ITEM_STATUS = {"pending": "pending", "queued": "pending", "processing": "running", "done": "succeeded",
                "failed": "failed", "cancelled": "cancelled"}
_DB_STATUSES = {s: [db for db, shown in _ITEM_STATUS.items() if shown == s] for s in ITEM_STATUSES}
_ITEM_COLUMNS = ("id", "position", "kind", "source_label", "status", "error_code", "error_message",
                 "image_count", "updated_at")


@dataclass(frozen=True, slots=True)
class BatchItemView:
    id: str
    position: int
    source: str
    status: str
    updated_at: datetime
    error_code: str | None
    error_message: str | None
    image_count: int
    result_url: str | None


@dataclass(frozen=True, slots=True)
class BatchView:
    id: str
    status: str
    total_items: int
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None  # when results go (set once the batch has ended)


@dataclass(frozen=True)
class BatchPage:
    batch: BatchView
    items: list[BatchItemView]
    next_cursor: str | None
    has_more: bool
    cursors: list[str]  # one per item: where a walk resumes after it
    total: int  # items matching the status filter


@dataclass(frozen=True)
class Submitted:
    batch: BatchView
    created: bool


def _now() -> datetime:
    return datetime.now(UTC)


# Views ------------------------------------------------------------------------------------------------


def batch_status(job: Job, batch: Batch, counts: dict[str, int]) -> str:
    if batch.expired_at is not None:
        return "expired"
    if job.status in ("pending", "queued"):
        return "pending"
    if job.status == "processing":
        return "running"
    succeeded, failed = counts.get("succeeded", 0), counts.get("failed", 0)
    if succeeded and failed:
        return "partially_failed"
    if succeeded:
        return "completed"
    if batch.cancel_requested_at is not None or not failed:
        return "cancelled"
    return "failed"


async def counts_of(job_id: Any) -> dict[str, int]:
    rows = await JobItem.filter(job_id=job_id).annotate(n=Count("id")).group_by("status").values("status", "n")
    counts = dict.fromkeys(ITEM_STATUSES, 0)
    for row in rows:
        counts[_ITEM_STATUS.get(row["status"], "pending")] += row["n"]
    return counts


def result_path(batch_id: Any, item_id: Any) -> str:
    return f"/api/v1/batches/{batch_id}/items/{item_id}/result"


def item_view(batch_id: str, row: dict[str, Any], *, expired: bool) -> BatchItemView:
    status = _ITEM_STATUS.get(row["status"], "pending")
    failed = status == "failed"
    return BatchItemView(
        id=str(row["id"]), position=row["position"], source=row["source_label"], status=status,
        updated_at=row["updated_at"], error_code=row["error_code"] if failed else None,
        error_message=row["error_message"] if failed else None, image_count=row["image_count"],
        result_url=result_path(batch_id, row["id"]) if status == "succeeded" and not expired else None,
    )


async def _view(job: Job, batch: Batch, ctx: Context) -> BatchView:
    counts = await counts_of(job.id)
    ends = job.finished_at + timedelta(hours=ctx.settings.batch_retention_hours) if job.finished_at else None
    return BatchView(id=str(job.id), status=batch_status(job, batch, counts), total_items=job.total_items,
                     counts=counts, created_at=job.created_at, finished_at=job.finished_at, expires_at=ends)


async def get_batch(ctx: Context, batch_id: str) -> tuple[Job, Batch]:
    """The caller's batch: 404 when unknown or someone else's (owner-only, like every other resource)."""
    principal = ctx.require_principal()
    parsed = parse_uuid(batch_id)
    batch = await Batch.get_or_none(id=parsed).select_related("job") if parsed is not None else None
    if batch is None or str(batch.account_id) != principal.account_id:  # type: ignore[attr-defined]
        raise NotFound("Batch not found", details={"batch_id": batch_id})
    job: Job = batch.job
    bound = principal.project_id
    if bound is not None and job.project_id != bound:  # type: ignore[attr-defined]
        raise NotFound("Batch not found", details={"batch_id": batch_id})
    return job, batch


async def read_batch(ctx: Context, batch_id: str) -> BatchView:
    job, batch = await get_batch(ctx, batch_id)
    return await _view(job, batch, ctx)


async def batch_page(ctx: Context, batch_id: str, *, limit: int = 100, cursor: str | None = None,
                     status: str | None = None, fields: tuple[str, str] = ("limit", "cursor")) -> BatchPage:
    """Counts, and the items changed after `cursor` in (updated_at, id) order (all items without one).
    `fields` names the two parameters in errors (GraphQL calls them first and after)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"{fields[0]} must be between 1 and {MAX_LIMIT}", details={"field": fields[0]})
    if status is not None and status not in ITEM_STATUSES:
        raise ValidationError("status must be one of " + ", ".join(ITEM_STATUSES),
                              details={"field": "status", "allowed": list(ITEM_STATUSES)})
    after = decode_cursor(cursor, size=2, field=fields[1]) if cursor else None
    if after is not None and not isinstance(after[0], datetime):
        raise ValidationError("Invalid cursor", details={"field": fields[1]})
    job, batch = await get_batch(ctx, batch_id)
    view = await _view(job, batch, ctx)
    horizon = _now() - timedelta(seconds=ctx.settings.batch_cursor_settle_seconds)
    query = JobItem.filter(job_id=job.id, updated_at__lte=horizon)
    if status is not None:
        query = query.filter(status__in=_DB_STATUSES[status])
    if after is not None:
        query = query.filter(Q(updated_at__gt=after[0]) | (Q(updated_at=after[0]) & Q(id__gt=after[1])))
    rows = list(await query.order_by("updated_at", "id").limit(limit + 1).values(*_ITEM_COLUMNS))
    has_more = len(rows) > limit
    rows = rows[:limit]
    expired = batch.expired_at is not None
    items = [item_view(view.id, r, expired=expired) for r in rows]
    cursors = [encode_cursor([r["updated_at"], r["id"]]) for r in rows]
    return BatchPage(batch=view, items=items, next_cursor=cursors[-1] if cursors else cursor, has_more=has_more,
                     cursors=cursors, total=view.counts[status] if status else view.total_items)


# Submission -------------------------------------------------------------------------------------------


def _parse_source(source: Any, max_items: int) -> tuple[str, list[str]]:
    if not isinstance(source, dict):
        raise ValidationError("source must be an object: {\"type\": \"files\"|\"urls\", ...}",
                              details={"field": "source"})
    kind = source.get("type")
    field = {"files": "file_ids", "urls": "urls"}.get(kind) if isinstance(kind, str) else None
    if field is None:
        raise ValidationError("source.type must be 'files' or 'urls'", details={"field": "source.type"})
    unknown = sorted(set(source) - {"type", field})
    if unknown:
        raise ValidationError(f"Unknown fields in source: {', '.join(unknown)}", details={"fields": unknown})
    entries = source.get(field)
    if not isinstance(entries, list) or not entries:
        raise ValidationError(f"source.{field} must be a non-empty list", details={"field": f"source.{field}"})
    if len(entries) > max_items:
        raise ValidationError(f"At most {max_items} entries per batch",
                              details={"field": f"source.{field}", "max": max_items, "got": len(entries)})
    if kind == "files":
        for i, value in enumerate(entries):
            if not isinstance(value, str) or not value or len(value) > 40:
                raise ValidationError("file ids must be strings", details={"field": f"source.file_ids[{i}]"})
        values = entries
    else:
        values = [validate_http_url(u, field=f"source.urls[{i}]") for i, u in enumerate(entries)]
    if len(set(values)) != len(values):
        raise ValidationError(f"source.{field} lists the same entry twice", details={"field": f"source.{field}"})
    return str(kind), [str(v) for v in values]


def _fingerprint(kind: str, values: list[str], metadata: Any, project: str | None) -> str:
    body = {"type": kind, "values": values, "metadata": metadata, "project_id": project}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()




async def _hit_minute(account_id: str, limit: int) -> str:
    """Count one submission in this UTC minute, or 429 with Retry-After (correct across processes)."""
    now = _now()
    start = now.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    bucket = f"batches:{account_id}:{start.strftime('%Y%m%d%H%M')}"
    for _ in range(3):
        if await RateCounter.filter(bucket=bucket, count__lt=limit).update(count=F("count") + 1):
            return bucket
        if await RateCounter.filter(bucket=bucket).exists() or limit <= 0:
            retry_after = max(1, int((end - now).total_seconds() + 0.999))
            raise RateLimited(f"Rate limit exceeded: {limit} batches per minute. Try again in {retry_after} s.",
                              retry_after=retry_after, limit=limit, reset_at=int(end.timestamp()),
                              details={"limit": limit, "window": "minute"})
        try:
            await RateCounter.create(bucket=bucket, count=1, window_end=end)
            return bucket
        except IntegrityError:
            continue
    raise RateLimited("Rate limit exceeded", retry_after=1, limit=limit, reset_at=int(end.timestamp()))


async def submit_batch(ctx: Context, *, source: Any, metadata: Any = None, project_id: Any = None,
                       idempotency_key: str | None = None) -> Submitted:

    principal = ctx.require_principal()
    plan = get_plan(principal.account.plan)
    if not plan.api_access and principal.method == "api_key":
        raise Forbidden("API access is not part of this plan")
    if idempotency_key is not None and (not idempotency_key.strip() or len(idempotency_key) > 255):
        raise ValidationError("Idempotency-Key must be 1 to 255 characters", details={"field": "Idempotency-Key"})
    kind, values = _parse_source(source, ctx.settings.batch_max_items)
    meta = _clean_metadata(metadata)
    project = await _resolve_project(ctx, project_id)
    scope = f"batch:{principal.account_id}"
    fingerprint = _fingerprint(kind, values, meta, project)
    if idempotency_key:
        existing = await idempotency.replay(scope, idempotency_key, fingerprint)
        if existing is not None:
            return Submitted(batch=await read_batch(ctx, str(existing.id)), created=False)
    balance = await ledger.balance_of(principal.account_id)
    if balance < len(values):  # cheap early answer; the debit inside the transaction is the authority
        raise InsufficientCredits(f"Insufficient credits: {len(values)} needed, {balance} available",
                                  details={"required": len(values), "available": balance})
    bucket = await _hit_minute(principal.account_id, ctx.settings.batch_submissions_per_minute)
    try:
        job_id = await _create(ctx, kind=kind, values=values, meta=meta, project=project, plan=plan, scope=scope,
                               idempotency_key=idempotency_key, fingerprint=fingerprint)
    except BaseException as exc:
        await RateCounter.filter(bucket=bucket, count__gt=0).update(count=F("count") - 1)
        if isinstance(exc, IntegrityError) and idempotency_key:
            existing = await idempotency.replay(scope, idempotency_key, fingerprint)  # lost a race with the same key
            if existing is not None:
                return Submitted(batch=await read_batch(ctx, str(existing.id)), created=False)
        raise
    # The sweep pumps every open batch: a message lost for good only delays the start.
    await send_messages(ctx.services, [Message("pump_batch", (str(job_id),))])
    return Submitted(batch=await read_batch(ctx, str(job_id)), created=True)


async def _claim_files(conn: Any, account_id: str, job_id: uuid.UUID, file_ids: list[str],
                       now: datetime) -> dict[str, dict[str, Any]]:
    claimed = 0
    for start in range(0, len(file_ids), 1000):
        chunk = file_ids[start:start + 1000]
        claimed += await StagedFile.filter(id__in=chunk, account_id=account_id, batch_id=None,
                                           expires_at__gt=now).using_db(conn).update(batch_id=job_id)
    if claimed != len(file_ids):
        rows = {r["id"]: r for start in range(0, len(file_ids), 1000) for r in await StagedFile.filter(
            id__in=file_ids[start:start + 1000], account_id=account_id).using_db(conn)
            .values("id", "batch_id", "expires_at")}
        missing = [f for f in file_ids if f not in rows]
        if missing:
            raise NotFound("File not found", details={"file_ids": missing[:20], "count": len(missing)})
        used = [f for f in file_ids if rows[f]["batch_id"] not in (None, job_id)]
        if used:
            raise Conflict("A file can be used by one batch only", details={"file_ids": used[:20]},
                           code="file_already_used")
        expired = [f for f in file_ids if rows[f]["expires_at"] <= now]
        raise ValidationError("Staged files expired before the batch was submitted",
                              details={"file_ids": expired[:20]}, code="file_expired")
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(file_ids), 1000):
        for r in await StagedFile.filter(id__in=file_ids[start:start + 1000]).using_db(conn) \
                .values("id", "filename", "storage_key", "size_bytes"):
            found[r["id"]] = r
    return found


async def _create(ctx: Context, *, kind: str, values: list[str], meta: Any, project: str | None, plan: Any,
                  scope: str, idempotency_key: str | None, fingerprint: str) -> uuid.UUID:

    principal = ctx.require_principal()
    n = len(values)
    job_id = uuid.uuid4()
    now = _now()
    async with in_transaction() as conn:
        if idempotency_key:
            await IdempotencyRecord.create(scope=scope, key=idempotency_key, request_hash=fingerprint, job_id=job_id,
                                           expires_at=now + idempotency.IDEMPOTENCY_TTL, using_db=conn)
        files = await _claim_files(conn, principal.account_id, job_id, values, now) if kind == "files" else {}
        job = await Job.create(
            id=job_id, account_id=principal.account_id, project_id=project,
            created_by_id=principal.user.id if principal.user else None,
            api_key_id=principal.api_key.id if principal.api_key else None, client_ip=ctx.client_ip,
            type="batch", status="queued", input={"value": {"source": kind, "count": n}}, metadata=meta,
            credits_reserved=n, total_items=n, using_db=conn,
        )
        await Batch.create(id=job_id, job=job, account_id=principal.account_id,
                           window=max(1, plan.url_worker_concurrency), using_db=conn)
        items: list[JobItem] = []
        for pos, value in enumerate(values):
            if kind == "urls":
                items.append(JobItem(id=uuid.uuid4(), job_id=job_id, position=pos, kind="url", source_label=value,
                                     source_url=value, status="pending", created_at=now, updated_at=now))
            else:
                f = files[value]
                items.append(JobItem(id=uuid.uuid4(), job_id=job_id, position=pos, kind="document",
                                     source_label=f["filename"], upload_key=f["storage_key"],
                                     upload_size=f["size_bytes"], status="pending", created_at=now, updated_at=now))
        await JobItem.bulk_create(items, batch_size=1000, using_db=conn)
        await _check_daily_cap(principal.account_id, plan, n, conn)
        await ledger.debit(account_id=principal.account_id, amount=n, entry_type="job_debit", job_id=job_id,
                           note=f"batch, {n} item(s)", conn=conn)
    return job_id


# Cancel -----------------------------------------------------------------------------------------------


async def cancel_batch(ctx: Context, batch_id: str) -> BatchView:
    """Flip the items that have not started to cancelled and refund them (one ledger entry); running items
    finish on their own. 409 once the batch has ended."""
    job, batch = await get_batch(ctx, batch_id)
    if job.status in ("done", "failed", "cancelled") or batch.expired_at is not None:
        raise Conflict("The batch has already ended", details={"status": (await _view(job, batch, ctx)).status})
    now = _now()
    async with in_transaction() as conn:
        # The job's row first, as a claim (pipeline._claim) and a job's cancellation lock it: job, then items.
        await Job.filter(id=job.id).using_db(conn).select_for_update().only("id").first()
        await Batch.filter(id=batch.id, cancel_requested_at=None).using_db(conn).update(cancel_requested_at=now)
        moved = await JobItem.filter(job_id=job.id, status__in=["pending", "queued"]).using_db(conn).update(
            status="cancelled", finished_at=now, updated_at=now, refunded=True)
        if moved:
            await Job.filter(id=job.id).using_db(conn).update(completed_items=F("completed_items") + moved)
            await ledger.credit(account_id=str(job.account_id), amount=moved, entry_type="job_refund",  # type: ignore[attr-defined]
                                job_id=job.id, unique_ref=f"refund:batch-cancel:{job.id}:{uuid.uuid4().hex}",
                                note=f"refund: {moved} cancelled batch item(s)", conn=conn)
    from imageextract.services.pipeline import maybe_finalize

    await maybe_finalize(ctx.services, job.id)
    return await read_batch(ctx, batch_id)
