"""Job submission: validation, SSRF check, rate limits, idempotency, one debit, items, enqueue after commit."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from imageextract.context import Context
from imageextract.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationError,
)
from imageextract.models import IdempotencyRecord, Job, JobItem, Project, RateCounter
from imageextract.services import idempotency, ledger, ratelimit, stored_objects
from imageextract.services.filetypes import sniff_document
from imageextract.services.guests import ensure_guest
from imageextract.services.plans import GUEST_PLAN, Plan, check_daily_cap, get_plan
from imageextract.services.security import sha256_hex
from imageextract.services.sql import Insert, Refused, Statement, Step, load, transaction
from imageextract.services.unit_of_work import Message, send_messages
from imageextract.services.urls import check_public_url, validate_http_url
from imageextract.services.webhook_signing import new_secret
from imageextract.storage import content_key

MAX_METADATA_BYTES = 16 * 1024


@dataclass
class Upload:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class Submitted:
    job: Job
    created: bool  # False when an idempotent replay returned an existing job
    rate: ratelimit.RateInfo | None = None
    item_ids: list[str] = field(default_factory=list)
    webhook_secret: str | None = None  # the job's own callback secret: in the first response only


def _fingerprint(kind: str, urls: list[str], uploads: list[Upload], metadata: Any, project_id: str | None,
                 webhook_url: str | None = None) -> str:
    body = {
        "type": kind, "input": urls, "project_id": project_id, "metadata": metadata,
        **({"webhook_url": webhook_url} if webhook_url else {}),
        "files": [[u.filename, hashlib.sha256(u.data).hexdigest()] for u in uploads],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _clean_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValidationError("metadata must be a JSON object", details={"field": "metadata"})
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON",
                              details={"field": "metadata"})
    return metadata


def parse_url_input(kind: Any, raw: Any, plan: Plan) -> list[str]:
    if kind == "url":
        if not isinstance(raw, str):
            raise ValidationError("input must be a URL string for type 'url'", details={"field": "input"})
        return [validate_http_url(raw, field="input")]
    if kind == "bulk":
        if not isinstance(raw, list) or not raw:
            raise ValidationError("input must be a non-empty list of URLs for type 'bulk'",
                                  details={"field": "input"})
        if len(raw) > plan.bulk_max_urls:
            raise ValidationError(
                f"At most {plan.bulk_max_urls} URLs per bulk job on the {plan.plan} plan",
                details={"field": "input", "max": plan.bulk_max_urls, "got": len(raw)},
            )
        urls = [validate_http_url(u, field=f"input[{i}]") for i, u in enumerate(raw)]
        if len(set(urls)) != len(urls):
            raise ValidationError("input contains the same URL twice", details={"field": "input"})
        return urls
    raise ValidationError("type must be 'url' or 'bulk' (or upload files as multipart)", details={"field": "type"})


def check_uploads(uploads: list[Upload], plan: Plan) -> None:
    if not uploads:
        raise ValidationError("At least one file is required in the 'files' field", details={"field": "files"})
    if len(uploads) > plan.document_max_files:
        raise PayloadTooLarge(
            f"At most {plan.document_max_files} files per job on the {plan.plan} plan",
            details={"max_files": plan.document_max_files, "got": len(uploads)},
        )
    total = sum(len(u.data) for u in uploads)
    if total > plan.document_max_mb * 1024 * 1024:
        raise PayloadTooLarge(
            f"Uploads total more than {plan.document_max_mb} MB",
            details={"max_mb": plan.document_max_mb, "bytes": total},
        )
    for u in uploads:
        if not u.data:
            raise ValidationError(f"{u.filename or 'file'} is empty", details={"field": "files", "filename": u.filename})
        if sniff_document(u.data) is None:
            raise UnsupportedMediaType(
                f"{u.filename or 'file'} is not a supported document or image (PDF, PPTX, DOCX, XLSX, images)",
                details={"filename": u.filename},
            )


async def _resolve_project(ctx: Context, project_id: Any) -> str | None:
    principal = ctx.principal
    if principal is None:
        if project_id is not None:
            raise Unauthenticated("Choosing a project needs an account: send an API key or sign in")
        return None
    bound = principal.project_id
    if project_id is not None:
        if not isinstance(project_id, str):
            raise ValidationError("project_id must be a string", details={"field": "project_id"})
        if bound is not None and project_id != bound:
            raise Forbidden("This API key is scoped to another project", details={"project_id": project_id})
        project = await Project.filter(id=project_id, account_id=principal.account_id).first()
        if project is None:
            raise NotFound("Project not found", details={"project_id": project_id})
        if project.status != "active":
            raise ValidationError("The project is archived", details={"field": "project_id"})
        return project.id
    if bound is not None:
        return bound
    if principal.default_project_id is not None:  # read with the key
        return principal.default_project_id
    default = await Project.filter(account_id=principal.account_id, is_default=True).first()
    return default.id if default else None


async def _rate_scope(ctx: Context, plan: Plan) -> tuple[str, int] | None:
    if ctx.principal is None:
        return f"guest:{ctx.client_ip or 'unknown'}", ctx.settings.guest_daily_jobs
    if plan.jobs_per_day < 0:
        return None
    return f"account:{ctx.principal.account_id}", plan.jobs_per_day




async def submit_job(
    ctx: Context, *, kind: Any, raw_input: Any = None, uploads: list[Upload] | None = None,
    metadata: Any = None, project_id: Any = None, idempotency_key: str | None = None,
    webhook_url: Any = None, webhook_url_field: str = "webhook_url",
) -> Submitted:
    ctx.check_credentials()
    principal = ctx.principal
    uploads = uploads or []
    if principal is None:
        if uploads:
            raise Unauthenticated("Document uploads need an account: send an API key or sign in")

        plan = GUEST_PLAN
        if kind != "url":
            raise Unauthenticated("Without an account only single-URL jobs are allowed: send an API key or sign in")
    else:
        plan = get_plan(principal.account.plan)
        if not plan.api_access and principal.method == "api_key":
            raise Forbidden("API access is not part of this plan")
    project = await _resolve_project(ctx, project_id)  # someone else's project: 404 before anything else
    if idempotency_key is not None and (not idempotency_key.strip() or len(idempotency_key) > 255):
        raise ValidationError("Idempotency-Key must be 1 to 255 characters", details={"field": "Idempotency-Key"})
    meta = _clean_metadata(metadata)
    from imageextract.services.job_callbacks import clean_callback

    callback = await clean_callback(ctx, webhook_url, field=webhook_url_field)
    if uploads:
        check_uploads(uploads, plan)
        kind = "document"
        urls: list[str] = []
    else:
        urls = parse_url_input(kind, raw_input, plan)
    for i, url in enumerate(urls):
        await check_public_url(ctx, url, field="input" if kind == "url" else f"input[{i}]")

    # Idempotency keys belong to the caller: the account, or the guest identity (never an IP that other
    # guests share). A guest without one gets one now, whichever door it came through.
    guest_token = ensure_guest(ctx)
    scope = principal.account_id if principal is not None else f"guest:{sha256_hex(guest_token or '')}"
    fingerprint = _fingerprint(kind, urls, uploads, meta, project, callback)
    if idempotency_key:
        existing = await idempotency.replay(scope, idempotency_key, fingerprint)
        if existing is not None:
            return Submitted(job=existing, created=False)

    # Store upload bytes first (content-addressed, so a retry or a replay stores nothing new).
    upload_keys: list[str] = []
    if uploads:
        storage = ctx.services.storage
        for u in uploads:
            key = content_key(u.data, namespace="uploads", ext=None)
            if not await storage.exists(key):
                await storage.put(key, u.data)
            upload_keys.append(key)

    rate_scope = await _rate_scope(ctx, plan)
    rate: ratelimit.RateInfo | None = None
    if rate_scope is not None:
        rate = await ratelimit.hit(*rate_scope)
    try:
        job, item_ids = await _create(ctx, kind=kind, urls=urls, uploads=uploads, upload_keys=upload_keys,
                                      meta=meta, project=project, plan=plan, scope=scope,
                                      idempotency_key=idempotency_key, fingerprint=fingerprint, callback=callback)
    except IntegrityError:
        if rate_scope is not None:
            await _unhit(rate_scope[0])
        if idempotency_key:
            # Lost a race with the same key: the winner's job is the answer (or a 409 if bodies differ).
            existing = await idempotency.replay(scope, idempotency_key, fingerprint)
            if existing is not None:
                return Submitted(job=existing, created=False)
        raise
    except BaseException:
        if rate_scope is not None:
            await _unhit(rate_scope[0])
        raise
    if uploads:  # a job deleted meanwhile may have released the same bytes: put them back
        await stored_objects.ensure_stored(ctx.services.storage, dict(zip(upload_keys, (u.data for u in uploads),
                                                                          strict=True)))
    return Submitted(job=job, created=True, rate=rate, item_ids=item_ids, webhook_secret=job.webhook_secret)


async def _unhit(scope: str) -> None:
    day = datetime.now(UTC).strftime("%Y%m%d")
    await RateCounter.filter(bucket=f"{scope}:{day}", count__gt=0).update(count=F("count") - 1)


_INSERT_IDEMPOTENCY = Insert(IdempotencyRecord)
_INSERT_JOB = Insert(Job)
_INSERT_ITEM = Insert(JobItem)


async def _create(ctx: Context, *, kind: str, urls: list[str], uploads: list[Upload], upload_keys: list[str],
                  meta: Any, project: str | None, plan: Plan, scope: str, idempotency_key: str | None,
                  fingerprint: str, callback: str | None = None) -> tuple[Job, list[str]]:
    """The job, its items, the idempotency record, the debit and its ledger entry, and the uploads' stored-object
    rows, in one transaction (one trip on SQLite: sql.transaction); one message per item, sent after COMMIT
    (never for a rolled-back job; retried while the broker blinks)."""
    principal = ctx.principal
    n = len(urls) or len(uploads)
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    steps: list[Step] = []
    if idempotency_key:
        steps.append(Step(_INSERT_IDEMPOTENCY.statement, _INSERT_IDEMPOTENCY.row(
            now, scope=scope, key=idempotency_key, request_hash=fingerprint, job_id=job_id,
            expires_at=now + idempotency.IDEMPOTENCY_TTL)))
    job_input: Any = urls[0] if kind == "url" else urls if kind == "bulk" else [
        {"filename": u.filename, "size": len(u.data), "storage_key": k} for u, k in zip(uploads, upload_keys, strict=True)
    ]
    job_row = _INSERT_JOB.row(
        now, id=job_id, account_id=principal.account_id if principal else None, project_id=project,
        created_by_id=principal.user.id if principal and principal.user else None,
        api_key_id=principal.api_key.id if principal and principal.api_key else None,
        guest_token_hash=sha256_hex(ctx.guest_token) if principal is None and ctx.guest_token else None,
        client_ip=ctx.client_ip, type=kind, status="queued", input={"value": job_input}, metadata=meta,
        credits_reserved=n if principal else 0, total_items=n, webhook_url=callback,
        webhook_secret=new_secret() if callback else None,
    )
    steps.append(Step(_INSERT_JOB.statement, job_row))
    item_ids = [uuid.uuid4() for _ in range(n)]
    if urls:
        items = [_INSERT_ITEM.row(now, id=item_id, job_id=job_id, position=pos, kind="url", source_label=urls[pos],
                                  source_url=urls[pos], status="queued") for pos, item_id in enumerate(item_ids)]
    else:
        items = [_INSERT_ITEM.row(now, id=item_id, job_id=job_id, position=pos, kind="document",
                                  source_label=(uploads[pos].filename or f"document-{pos + 1}")[:2048],
                                  upload_key=upload_keys[pos], upload_size=len(uploads[pos].data), status="queued")
                 for pos, item_id in enumerate(item_ids)]
    steps.append(Step(_INSERT_ITEM.statement, many=items))
    if principal is not None:
        steps += _daily_cap_steps(principal.account_id, plan, n)
        steps += ledger.debit_steps(account_id=principal.account_id, amount=n, entry_type="job_debit",
                                    job_id=job_id, note=f"{kind} job, {n} source(s)")
    steps += stored_objects.touch_steps(upload_keys)  # serialise against deletion of the same bytes
    try:
        await transaction(steps)
    except Refused as refused:
        if refused.outcome == "insufficient_credits" and principal is not None:
            raise await ledger.insufficient(principal.account_id, n) from None
        raise
    await send_messages(ctx.services, [Message("process_item", (str(item_id),)) for item_id in item_ids])
    job = load(Job, job_row)
    assert job is not None
    return job, [str(item_id) for item_id in item_ids]


_SPENT_SINCE = Statement('SELECT COALESCE(SUM("amount"), 0) AS "total" FROM "ledger_entries" WHERE "account_id"=:id '
                         'AND "entry_type" IN (\'job_debit\', \'job_refund\') AND "created_at">=:since')


def _daily_cap_steps(account_id: str, plan: Plan, n: int) -> list[Step]:
    """The plan's daily credit cap, checked in the job's transaction (credits spent today: debits minus
    refunds, as ledger.net_debited counts them)."""
    if plan.daily_credit_cap < 0:
        return []
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def within_cap(done: list[Any]) -> None:
        check_daily_cap(plan, -int(done[-1][0]["total"]), n)

    return [Step(_SPENT_SINCE, {"id": account_id, "since": start}, fetch=True, check=within_cap)]


async def _check_daily_cap(account_id: str, plan: Plan, n: int, conn: Any) -> None:
    """The same rule inside a caller's own transaction (batches)."""
    if plan.daily_credit_cap < 0:
        return
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    check_daily_cap(plan, await ledger.net_debited(account_id=account_id, since=start, until=None, conn=conn), n)
