"""Staged files: a document announced with its name and size, uploaded straight to storage, used by a batch.

S3 backend: the upload URL is a real presigned PUT (aioboto3, SigV4) that signs the declared Content-Length,
so S3 itself refuses a body of any other size, and the bytes never transit the API. Local backend: an
HMAC-signed, expiring, single-use URL served by the API itself (`receive_upload`), which checks the size and
the magic bytes on arrival. Either way the worker checks both again before extracting (`arrival_problem`):
S3 tells us nothing when a presigned PUT lands, cannot check magic bytes, and S3-compatible stores (and
moto) that do not verify presigned signatures would otherwise let a wrong size through. Unused staged files
expire after `staged_file_ttl_hours`; `sweep_unused` removes them and their bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imageextract.context import Context
from imageextract.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from imageextract.models import StagedFile
from imageextract.services.filetypes import sniff_document
from imageextract.services.plans import Plan, get_plan

# Media types a staged file may announce (the filename is advisory; the magic bytes decide on arrival).
ALLOWED_CONTENT_TYPES = frozenset({
    "application/pdf", "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp", "image/svg+xml",
    "image/avif", "image/x-icon", "image/vnd.microsoft.icon", "image/emf", "image/wmf",
})
MAX_FILENAME = 255


@dataclass(frozen=True)
class UploadTarget:
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class Staged:
    file: StagedFile
    upload: UploadTarget


def _now() -> datetime:
    return datetime.now(UTC)


def storage_key(file_id: str) -> str:
    return f"staged/{file_id}"


def signing_key(settings: Any) -> bytes:
    """The HMAC key of signed URLs: the setting, else one random key kept in the data directory (shared by
    every process on this host; several hosts must set IMAGEEXTRACT_SIGNING_KEY)."""
    if settings.signing_key:
        return str(settings.signing_key).encode()
    path = Path(settings.data_dir) / "signing.key"
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32).hex().encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()  # another process made it first
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def sign(settings: Any, purpose: str, subject: str, expires: int) -> str:
    message = f"{purpose}:{subject}:{expires}".encode()
    return hmac.new(signing_key(settings), message, hashlib.sha256).hexdigest()


def check_signature(settings: Any, purpose: str, subject: str, expires: Any, signature: Any) -> None:
    """403 unless `signature` signs (purpose, subject, expires) and `expires` is still ahead."""
    if not isinstance(expires, str) or not expires.isdigit() or not isinstance(signature, str):
        raise Forbidden("Invalid signed URL", code="invalid_signature")
    if not hmac.compare_digest(sign(settings, purpose, subject, int(expires)), signature):
        raise Forbidden("Invalid signed URL", code="invalid_signature")
    if int(expires) < int(_now().timestamp()):
        raise Forbidden("This signed URL has expired", code="url_expired", details={"expired_at": int(expires)})


def _plan(ctx: Context) -> Plan:
    principal = ctx.require_principal()
    plan = get_plan(principal.account.plan)
    if not plan.api_access and principal.method == "api_key":
        raise Forbidden("API access is not part of this plan")
    return plan


def max_bytes(plan: Plan) -> int:
    return plan.document_max_mb * 1024 * 1024


def _check_announcement(filename: Any, size_bytes: Any, content_type: Any, plan: Plan) -> tuple[str, int, str | None]:
    if not isinstance(filename, str) or not filename.strip():
        raise ValidationError("filename must be a non-empty string", details={"field": "filename"})
    name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not name or len(name) > MAX_FILENAME:
        raise ValidationError(f"filename must be 1 to {MAX_FILENAME} characters", details={"field": "filename"})
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 1:
        raise ValidationError("size_bytes must be a positive integer", details={"field": "size_bytes"})
    if size_bytes > max_bytes(plan):
        raise PayloadTooLarge(f"Files are limited to {plan.document_max_mb} MB on the {plan.plan} plan",
                              details={"max_bytes": max_bytes(plan), "size_bytes": size_bytes},
                              code="document_too_large")
    if content_type is not None:
        if not isinstance(content_type, str):
            raise ValidationError("content_type must be a string", details={"field": "content_type"})
        content_type = content_type.split(";", 1)[0].strip().lower()
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise UnsupportedMediaType(
                f"{content_type!r} is not a supported document or image type",
                details={"field": "content_type", "allowed": sorted(ALLOWED_CONTENT_TYPES)}, code="unsupported_input")
    return name, size_bytes, content_type


async def stage_file(ctx: Context, *, filename: Any, size_bytes: Any, content_type: Any = None) -> Staged:
    """Announce a file: checked against the plan now, and again when its bytes arrive."""
    plan = _plan(ctx)
    name, size, media = _check_announcement(filename, size_bytes, content_type, plan)
    settings = ctx.settings
    now = _now()
    record = StagedFile(account_id=ctx.require_principal().account_id, filename=name, size_bytes=size,
                        content_type=media, storage_key="", expires_at=now + timedelta(hours=settings.staged_file_ttl_hours))
    record.storage_key = storage_key(record.id)
    await record.save()
    return Staged(file=record, upload=await upload_target(ctx, record, now=now))


async def upload_target(ctx: Context, record: StagedFile, *, now: datetime) -> UploadTarget:
    settings = ctx.settings
    ttl = settings.upload_url_ttl_seconds
    expires_at = min(now + timedelta(seconds=ttl), record.expires_at)
    storage = ctx.services.storage
    presign = getattr(storage, "presign_put", None)
    if presign is not None:
        url = await presign(record.storage_key, expires_in=max(1, int((expires_at - now).total_seconds())),
                            content_length=record.size_bytes)
    else:
        expires = int(expires_at.timestamp())
        signature = sign(settings, "upload", record.id, expires)
        url = (f"{ctx.base_url or settings.base_url}/api/v1/files/upload?file={record.id}&expires={expires}"
               f"&signature={signature}")
    # The declared size is part of the contract on both backends: S3 checks it against the signature, our
    # signed URL against the record (and the worker checks both again).
    return UploadTarget(url=url, method="PUT", expires_at=expires_at,
                        headers={"Content-Type": "application/octet-stream", "Content-Length": str(record.size_bytes)})


HEAD_BYTES = 4096  # what `arrival_problem` needs of a file's start (the magic bytes, an SVG's root element)


def arrival_problem(head: bytes, declared_size: int | None, *, size: int | None = None) -> tuple[str, str] | None:
    """(error code, message) when arrived bytes are not what was staged; None when they are fine.

    `head` is the upload's bytes, or their first HEAD_BYTES (at least) when `size` gives the whole length, so
    a file can be checked without reading it into memory."""
    size = len(head) if size is None else size
    if declared_size is not None and size > declared_size:
        return "document_too_large", f"the upload is larger than the {declared_size} bytes announced"
    if declared_size is not None and size < declared_size:
        return "upload_missing", f"the upload is incomplete: {size} of {declared_size} bytes"
    if sniff_document(head) is None:
        return "unsupported_input", "the bytes are not a supported document or image (magic bytes)"
    return None


async def receive_upload(ctx: Context, *, file_id: Any, expires: Any, signature: Any,
                         body: AsyncIterator[bytes]) -> StagedFile:
    """The local backend's signed upload URL: verify, claim the single use, check and store the bytes.

    A rejected upload (wrong size, unknown type) gives the use back, so the client may PUT again while the
    URL lasts; a stored upload consumes it."""
    if not isinstance(file_id, str) or not file_id:
        raise Forbidden("Invalid signed URL", code="invalid_signature")
    check_signature(ctx.settings, "upload", file_id, expires, signature)
    record = await StagedFile.get_or_none(id=file_id)
    if record is None:
        raise NotFound("File not found", details={"file_id": file_id})
    now = _now()
    if record.expires_at <= now:
        raise Forbidden("This staged file has expired", code="url_expired", details={"file_id": file_id})
    claimed = await StagedFile.filter(id=file_id, upload_used_at=None).update(upload_used_at=now)
    if not claimed:
        raise Conflict("This upload URL was already used", details={"file_id": file_id}, code="upload_url_used")
    try:
        data = await _read_capped(body, record.size_bytes)
        problem = arrival_problem(data, record.size_bytes)
        if problem is not None:
            code, message = problem
            if code == "document_too_large":
                raise PayloadTooLarge(message, details={"size_bytes": record.size_bytes}, code=code)
            if code == "unsupported_input":
                raise UnsupportedMediaType(message, details={"file_id": file_id}, code=code)
            raise ValidationError(message, details={"size_bytes": record.size_bytes}, code="size_mismatch")
        await ctx.services.storage.put(record.storage_key, data, content_type=record.content_type)
    except BaseException:
        await StagedFile.filter(id=file_id, status="pending").update(upload_used_at=None)
        raise
    kind = sniff_document(data)
    await StagedFile.filter(id=file_id).update(status="uploaded", uploaded_at=_now(), detected_type=kind)
    return await StagedFile.get(id=file_id)


async def _read_capped(body: AsyncIterator[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > size:
            raise PayloadTooLarge(f"the upload is larger than the {size} bytes announced",
                                  details={"size_bytes": size}, code="document_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def sweep_unused(runtime: Any, *, now: datetime | None = None) -> int:
    """Delete staged files no batch used whose window has passed, bytes first. Safe from any process."""
    now = now or _now()
    removed = 0
    for record in await StagedFile.filter(batch_id=None, expires_at__lte=now).limit(500):
        with contextlib.suppress(Exception):
            await runtime.storage.delete(record.storage_key)
        removed += await StagedFile.filter(id=record.id, batch_id=None).delete()
    return removed
