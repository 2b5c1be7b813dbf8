"""Exports: web-ready files (converted, compressed, responsive) made from the images a job already holds.

Rules, written once for REST and GraphQL:
- only the account that owns the job may export it (another account's job, or a project key's other
  project, is 404: the caller learns nothing); exports are owner-only the same way;
- the job must be finished; the images are all of the job's stored images or the `image_ids` chosen;
- 1 credit per source image, debited at creation as one `export_debit` ledger entry, refunded per image
  that fails (`export_refund`, at most once per image through its unique ref);
- one Dramatiq message per image, sent after the commit that makes the export visible; every step is a
  conditional UPDATE on the state it expects, so redelivery and concurrent workers change nothing twice;
- output files are stored content-addressed (`exports/ab/cd/<sha256>.<ext>`), like extracted images;
- progress goes through the pub/sub on channel `export:<id>`; SSE and the GraphQL subscription follow it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import features
from tortoise.expressions import F, Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from imageextract.context import Context
from imageextract.errors import (
    Conflict,
    Forbidden,
    NotFound,
    NotReady,
    Unprocessable,
    ValidationError,
)
from imageextract.extract.convert import (
    DEFAULT_BREAKPOINTS,
    EXTENSIONS,
    FORMATS,
    MEDIA_TYPES,
    PRESETS,
    ConvertError,
    ConvertSpec,
    Variant,
    convert,
    output_format,
)
from imageextract.extract.types import ExtractError
from imageextract.models import Export, ExportFile, ExportImage, Image, Job, LedgerEntry
from imageextract.services import jobs, ledger
from imageextract.services.downloads import SAFE_SEGMENT
from imageextract.services.plans import check_daily_cap, get_plan
from imageextract.services.unit_of_work import Message, send_messages, unit_of_work
from imageextract.storage import StorageNotFound, content_key
from imageextract.zipstream import ZipEntry

log = logging.getLogger("imageextract.exports")

TERMINAL = ("done", "failed", "partial")
IMAGE_TERMINAL = ("done", "failed")
SETTINGS_FIELDS = ("format", "preset", "responsive", "responsive_sizes", "strip_metadata")
MAX_SIZES = 10
MIN_WIDTH, MAX_WIDTH = 16, 8192
MAX_BASENAME = 100
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
# A conversion child serves this many images before it is replaced (a start costs ~0.4 s of CPU, as much as
# converting a few dozen small JPEGs); its address space stays capped whatever it serves.
CHILD_MAX_TASKS = 500
ACTOR = "convert_export_image"


def channel(export_id: str) -> str:
    return f"export:{export_id}"


# Settings -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSettings:
    format: str = "webp"
    preset: str = "high"
    responsive: bool = False
    responsive_sizes: tuple[int, ...] = ()
    strip_metadata: bool = True

    @property
    def widths(self) -> tuple[int, ...]:
        if not self.responsive:
            return ()
        return self.responsive_sizes or DEFAULT_BREAKPOINTS

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "preset": self.preset, "responsive": self.responsive,
                "responsive_sizes": list(self.widths), "strip_metadata": self.strip_metadata}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportSettings:
        return cls(format=data["format"], preset=data["preset"], responsive=data["responsive"],
                   responsive_sizes=tuple(data["responsive_sizes"]), strip_metadata=data["strip_metadata"])


def _bool(raw: dict[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"settings.{name} must be true or false", details={"field": f"settings.{name}"})
    return value


def _width(value: Any, index: int) -> int:
    if isinstance(value, dict) and set(value) <= {"width", "name"}:
        value = value.get("width")
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_WIDTH <= value <= MAX_WIDTH:
        raise ValidationError(f"settings.responsive_sizes[{index}] must be a width in pixels from {MIN_WIDTH} "
                              f"to {MAX_WIDTH} (or {{\"width\": N}})",
                              details={"field": f"settings.responsive_sizes[{index}]"})
    return value


def avif_available() -> bool:
    return bool(features.check("avif"))


def parse_settings(raw: Any) -> ExportSettings:
    """Validate the `settings` object of spec 002 (every field optional, unknown fields refused)."""
    if raw is None:
        return ExportSettings()
    if not isinstance(raw, dict):
        raise ValidationError("settings must be an object", details={"field": "settings"})
    unknown = sorted(set(raw) - set(SETTINGS_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown settings: {', '.join(unknown)}",
                              details={"field": "settings", "unknown": unknown, "allowed": list(SETTINGS_FIELDS)})
    fmt = raw.get("format") if raw.get("format") is not None else "webp"
    if fmt not in FORMATS:
        raise ValidationError(f"settings.format must be one of {', '.join(FORMATS)}",
                              details={"field": "settings.format", "allowed": list(FORMATS)})
    if fmt == "avif" and not avif_available():
        raise Unprocessable("AVIF is not available on this server (its Pillow has no AVIF support)",
                            details={"field": "settings.format"}, code="format_unavailable")
    preset = raw.get("preset") if raw.get("preset") is not None else "high"
    if preset not in PRESETS:
        raise ValidationError(f"settings.preset must be one of {', '.join(PRESETS)}",
                              details={"field": "settings.preset", "allowed": list(PRESETS)})
    sizes_raw = raw.get("responsive_sizes")
    responsive = _bool(raw, "responsive", sizes_raw is not None)
    sizes: tuple[int, ...] = ()
    if sizes_raw is not None:
        if not responsive:
            raise ValidationError("settings.responsive_sizes needs settings.responsive to be true",
                                  details={"field": "settings.responsive_sizes"})
        if not isinstance(sizes_raw, list) or not 1 <= len(sizes_raw) <= MAX_SIZES:
            raise ValidationError(f"settings.responsive_sizes must be a list of 1 to {MAX_SIZES} widths",
                                  details={"field": "settings.responsive_sizes"})
        sizes = tuple(sorted({_width(v, i) for i, v in enumerate(sizes_raw)}, reverse=True))
    return ExportSettings(format=fmt, preset=preset, responsive=responsive, responsive_sizes=sizes,
                          strip_metadata=_bool(raw, "strip_metadata", True))


# Names ----------------------------------------------------------------------------------------------------

_KNOWN_EXT = re.compile(r"\.(jpe?g|png|gif|webp|avif|bmp|tiff?|ico|svg|heic|jxl|emf|wmf)$", re.IGNORECASE)


def safe_basename(name: str) -> str:
    """A file-name stem safe in a URL segment and a ZIP: ASCII letters, digits, `.`, `_`, `-`."""
    name = _KNOWN_EXT.sub("", name.strip())  # slashes are characters of a title here, never a path
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:MAX_BASENAME].rstrip(".-_")
    return name


def file_name(basename: str, variant: str, fmt: str) -> str:
    suffix = "" if variant == "full" else f"-{variant}"
    return f"{basename}{suffix}.{EXTENSIONS[fmt]}"


def _unique_basenames(wanted: list[tuple[str, str]], widths: tuple[int, ...]) -> list[str]:
    """Bases such that no two images can produce the same file name (case-insensitively), whatever
    variants their sources turn out to allow."""
    taken: set[str] = set()
    out: list[str] = []
    for base, fmt in wanted:
        candidate, n = base, 1
        while True:
            names = {file_name(candidate, v, fmt).lower() for v in ["full", *(f"{w}w" for w in widths)]}
            if not names & taken:
                break
            n += 1
            candidate = f"{base[:MAX_BASENAME - 6]}-{n}"
        taken |= names
        out.append(candidate)
    return out


# Creation -------------------------------------------------------------------------------------------------


async def job_images(job: Job) -> list[Image]:
    """The job's images that have stored bytes, in the job's order. (Kept small: the shared image view in
    services/jobs.py will replace this query.)"""
    return await Image.filter(job_id=job.id, storage_key__not_isnull=True).order_by("item__position", "position")


async def _job_for_export(ctx: Context, job_id: str) -> Job:
    ctx.require_principal()
    try:
        return await jobs.get_job(ctx, job_id)
    except Forbidden:
        raise NotFound("Job not found", details={"job_id": job_id}) from None


def _choose(images: list[Image], image_ids: Any, limit: int) -> list[Image]:
    if image_ids is None:
        chosen = images
    else:
        if not isinstance(image_ids, list) or not image_ids or not all(isinstance(i, str) for i in image_ids):
            raise ValidationError("image_ids must be a non-empty list of image ids", details={"field": "image_ids"})
        if len(set(image_ids)) != len(image_ids):
            raise ValidationError("image_ids lists the same image twice", details={"field": "image_ids"})
        by_id = {i.id: i for i in images}
        unknown = [i for i in image_ids if i not in by_id]
        if unknown:
            raise ValidationError("image_ids names images this job does not hold",
                                  details={"field": "image_ids", "unknown": unknown[:20]})
        chosen = [by_id[i] for i in image_ids]
    if not chosen:
        raise Unprocessable("The job has no stored images to export", code="no_images")
    if len(chosen) > limit:
        raise ValidationError(f"At most {limit} images per export", details={"field": "image_ids", "max": limit})
    return chosen


def _wanted_names(chosen: list[Image], filenames: Any) -> list[str]:
    if filenames is None:
        filenames = {}
    if not isinstance(filenames, dict):
        raise ValidationError("filenames must be an object of image id -> base name", details={"field": "filenames"})
    ids = {i.id for i in chosen}
    stray = sorted(k for k in filenames if k not in ids)
    if stray:
        raise ValidationError("filenames names images that are not in this export",
                              details={"field": "filenames", "unknown": stray[:20]})
    out = []
    for position, image in enumerate(chosen):
        given = filenames.get(image.id)
        if given is not None and (not isinstance(given, str) or not given.strip() or len(given) > 200):
            raise ValidationError(f"filenames[{image.id}] must be a name of 1 to 200 characters",
                                  details={"field": f"filenames.{image.id}"})
        base = safe_basename(given) if given is not None else safe_basename(image.filename or "")
        out.append(base or f"image-{position + 1}")
    return out


async def _check_daily_cap(account_id: str, plan_name: str, n: int, conn: Any) -> None:
    plan = get_plan(plan_name)
    if plan.daily_credit_cap < 0:
        return
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    jobs_spent = await ledger.net_debited(account_id=account_id, since=start, until=None, conn=conn)
    row = await LedgerEntry.filter(account_id=account_id, entry_type__in=["export_debit", "export_refund"],
                                   created_at__gte=start).using_db(conn).annotate(total=Sum("amount")).values("total")
    check_daily_cap(plan, jobs_spent - int((row[0]["total"] if row else 0) or 0), n)


async def create_export(ctx: Context, *, job_id: str, image_ids: Any = None, filenames: Any = None,
                        settings: Any = None) -> Export:
    """Validate, debit 1 credit per image, create the export and enqueue one message per image (after commit)."""
    principal = ctx.require_principal()
    job = await _job_for_export(ctx, job_id)
    options = parse_settings(settings)
    if job.status not in ("done", "failed", "cancelled"):
        raise Conflict("The job is still running: export it when it has finished",
                       details={"job_id": str(job.id), "status": job.status}, code="job_not_finished")
    chosen = _choose(await job_images(job), image_ids, ctx.settings.export_max_images)
    formats = [output_format(options.format, i.format) for i in chosen]
    bases = _unique_basenames(list(zip(_wanted_names(chosen, filenames), formats, strict=True)), options.widths)
    n = len(chosen)
    async with unit_of_work(ctx.services) as uow:
        export = await Export.create(account_id=principal.account_id, project_id=job.project_id,  # type: ignore[attr-defined]
                                     job_id=job.id, settings=options.to_json(), total_images=n,
                                     credits_debited=n, using_db=uow.conn)
        rows = [ExportImage(export_id=export.id, image_id=image.id, position=pos, basename=base, format=fmt)
                for pos, (image, base, fmt) in enumerate(zip(chosen, bases, formats, strict=True))]
        await ExportImage.bulk_create(rows, using_db=uow.conn)
        await _check_daily_cap(principal.account_id, principal.account.plan, n, uow.conn)
        await ledger.debit(account_id=principal.account_id, amount=n, entry_type="export_debit", job_id=job.id,
                           unique_ref=f"export:{export.id}", note=f"export {export.id}, {n} image(s)", conn=uow.conn)
        for row in rows:
            uow.enqueue(ACTOR, row.id)
    return export


# Reading --------------------------------------------------------------------------------------------------


async def get_export(ctx: Context, export_id: str) -> Export:
    """The export if the caller owns it; 404 for anything else (unknown, another account's, another project's)."""
    principal = ctx.require_principal()
    query = Export.filter(id=str(export_id), account_id=principal.account_id)
    if principal.project_id is not None:
        query = query.filter(project_id=principal.project_id)
    export = await query.first() if isinstance(export_id, str) and len(export_id) <= 40 else None
    if export is None:
        raise NotFound("Export not found", details={"export_id": str(export_id)[:100]})
    return export


@dataclass
class VariantView:
    name: str
    filename: str
    format: str
    width: int
    height: int
    size: int
    frames: int
    url: str


@dataclass
class ExportImageView:
    image_id: str
    filename: str
    status: str
    error: str | None
    error_code: str | None
    variants: list[VariantView] = field(default_factory=list)


@dataclass
class ExportView:
    export_id: str
    job_id: str
    status: str
    settings: dict[str, Any]
    total_images: int
    completed_images: int
    failed_images: int
    credits_used: int
    download_url: str
    created_at: datetime
    finished_at: datetime | None
    images: list[ExportImageView]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        data["finished_at"] = _iso(self.finished_at)
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def file_url(base_url: str | None, export_id: str, filename: str) -> str:
    return f"{base_url or ''}/api/v1/exports/{export_id}/files/{filename}"


async def view(ctx: Context, export: Export) -> ExportView:
    rows = await ExportImage.filter(export_id=export.id).order_by("position")
    files: dict[str, list[ExportFile]] = {}
    for f in await ExportFile.filter(export_id=export.id).order_by("id"):
        files.setdefault(f.export_image_id, []).append(f)  # type: ignore[attr-defined]
    images = [
        ExportImageView(
            image_id=row.image_id, filename=file_name(row.basename, "full", row.format), status=row.status,
            error=row.error_message, error_code=row.error_code,
            variants=[VariantView(name=f.name, filename=f.filename, format=f.format, width=f.width, height=f.height,
                                  size=f.size, frames=f.frames, url=file_url(ctx.base_url, export.id, f.filename))
                      for f in files.get(row.id, [])],
        )
        for row in rows
    ]
    return ExportView(
        export_id=export.id, job_id=str(export.job_id), status=export.status, settings=export.settings,  # type: ignore[attr-defined]
        total_images=export.total_images, completed_images=export.completed_images,
        failed_images=export.failed_images, credits_used=export.credits_debited - export.credits_refunded,
        download_url=f"{ctx.base_url or ''}/api/v1/exports/{export.id}/download", created_at=export.created_at,
        finished_at=export.finished_at, images=images,
    )


async def get_export_view(ctx: Context, export_id: str) -> ExportView:
    return await view(ctx, await get_export(ctx, export_id))


async def file_stream(ctx: Context, export_id: str, filename: str) -> tuple[ExportFile, AsyncIterator[bytes], int]:
    """One exported file (spec 001's rules): 400 for an unsafe name, 404 when unknown or not the caller's."""
    if not SAFE_SEGMENT.match(filename or "") or ".." in filename:
        raise ValidationError("The file name is not a safe name", details={"filename": (filename or "")[:100]},
                              code="invalid_request")
    export = await get_export(ctx, export_id)
    row = await ExportFile.filter(export_id=export.id, filename=filename).first()
    if row is None:
        raise NotFound("File not found in this export", details={"filename": filename})
    size = await ctx.services.storage.size(row.storage_key)
    if size is None:
        raise NotFound("The file is no longer stored", details={"filename": filename})
    return row, ctx.services.storage.stream(row.storage_key), size


def media_type(fmt: str) -> str:
    return MEDIA_TYPES.get(fmt, "application/octet-stream")


async def zip_entries(ctx: Context, export_id: str) -> tuple[Export, list[Any]]:
    """Every file of a finished export as ZIP entries (streamed one after another; memory stays flat)."""

    export = await get_export(ctx, export_id)
    if export.status not in TERMINAL:
        raise NotReady("Export still processing", details={"status": export.status,
                                                            "completed_images": export.completed_images,
                                                            "total_images": export.total_images})
    files = await ExportFile.filter(export_id=export.id).order_by("export_image__position", "id")
    if not files:
        raise NotFound("The export produced no files", details={"export_id": export.id})
    storage = ctx.services.storage

    def source(key: str) -> Any:
        return lambda: storage.stream(key)

    return export, [ZipEntry(name=f.filename, size=f.size, chunks=source(f.storage_key), modified=f.created_at)
                    for f in files]


# Processing (workers) -------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _lease(settings: Any) -> timedelta:
    return timedelta(seconds=max(settings.item_stuck_seconds, settings.export_wall_seconds + 60))


def conversion_options(settings: Any) -> Any:
    return settings.extract_options(
        sandbox_memory_bytes=settings.export_memory_mb * 1024 * 1024, sandbox_cpu_seconds=settings.export_cpu_seconds,
        sandbox_wall_seconds=settings.export_wall_seconds, max_image_bytes=MAX_OUTPUT_BYTES,
        max_image_pixels=settings.export_max_pixels, sandbox_max_tasks=CHILD_MAX_TASKS)


def _convert(data: bytes, spec: ConvertSpec, options: Any) -> list[Variant]:
    if not options.sandbox:
        return convert(data, spec)
    from imageextract.extract.sandbox import run_convert

    return run_convert(data, spec=spec, options=options)


async def _run(runtime: Any, export: Export, row: ExportImage) -> tuple[list[Variant], str | None, str | None]:
    """Convert one image: (variants, None, None) or ([], error code, message)."""

    settings = runtime.settings
    image = await Image.filter(id=row.image_id, job_id=export.job_id).first()  # type: ignore[attr-defined]
    if image is None or not image.storage_key:
        return [], "source_missing", "the source image is no longer stored"
    try:
        data = await runtime.storage.get(image.storage_key)
    except StorageNotFound:
        return [], "source_missing", "the source image is no longer stored"
    chosen = ExportSettings.from_json(export.settings)
    spec = ConvertSpec(format=row.format, preset=chosen.preset, widths=chosen.widths,
                       strip_metadata=chosen.strip_metadata, max_pixels=settings.export_max_pixels)
    try:
        return await asyncio.to_thread(_convert, data, spec, conversion_options(settings)), None, None
    except ConvertError as exc:
        return [], exc.code, exc.message
    except ExtractError as exc:  # the child was killed: time limit, memory, crash
        return [], ("timeout" if exc.code == "timeout" else "conversion_failed"), exc.message.replace(
            "document processing", "conversion").replace("the document parser", "the converter")


async def process_image(runtime: Any, export_image_id: str) -> str:
    """Convert one export image. Returns what happened (for logs and tests): done, failed, skipped."""


    row = await ExportImage.get_or_none(id=export_image_id).select_related("export")
    if row is None or row.status in IMAGE_TERMINAL:
        return "skipped"
    export: Export = row.export
    now = _now()
    claimable = Q(status="queued") | Q(status="processing", lease_expires_at__lt=now)
    claimed = await ExportImage.filter(Q(id=row.id) & claimable).update(
        status="processing", attempts=F("attempts") + 1, lease_expires_at=now + _lease(runtime.settings))
    if not claimed:
        return "skipped"
    attempt = (await ExportImage.get(id=row.id)).attempts
    await Export.filter(id=export.id, status="queued").update(status="processing", started_at=now)
    await publish_progress(runtime, export.id, row.image_id, status="processing", step="converting")

    started = time.monotonic()
    variants, code, message = await _run(runtime, export, row)
    stored: list[tuple[Variant, str]] = []
    for v in variants:
        key = content_key(v.data, namespace="exports", ext=EXTENSIONS[v.format])
        if not await runtime.storage.exists(key):
            await runtime.storage.put(key, v.data, content_type=media_type(v.format))
        stored.append((v, key))
    ok = code is None
    async with in_transaction() as conn:
        updated = await ExportImage.filter(id=row.id, status="processing", attempts=attempt).using_db(conn).update(
            status="done" if ok else "failed", error_code=code, error_message=message, finished_at=_now(),
            lease_expires_at=None, refunded=not ok)
        if not updated:
            return "skipped"  # another attempt took over after our lease expired; its result stands
        await ExportFile.filter(export_image_id=row.id).using_db(conn).delete()
        if stored:
            await ExportFile.bulk_create([
                ExportFile(export_id=export.id, export_image_id=row.id, name=v.name,
                           filename=file_name(row.basename, v.name, v.format), format=v.format, width=v.width,
                           height=v.height, size=len(v.data), frames=v.frames, storage_key=key)
                for v, key in stored], using_db=conn)
        await Export.filter(id=export.id).using_db(conn).update(
            completed_images=F("completed_images") + 1, failed_images=F("failed_images") + (0 if ok else 1),
            credits_refunded=F("credits_refunded") + (0 if ok else 1))
        if not ok:
            await ledger.credit(account_id=export.account_id, amount=1, entry_type="export_refund",  # type: ignore[attr-defined]
                                job_id=export.job_id, unique_ref=f"refund:export_image:{row.id}",  # type: ignore[attr-defined]
                                note=f"refund: export image {code}", conn=conn)
    log.info("export image %s: %s in %.0f ms%s", row.id, "done" if ok else "failed",
             (time.monotonic() - started) * 1000, "" if ok else f" ({code}: {message})")
    await publish_progress(runtime, export.id, row.image_id, status="done" if ok else "failed",
                           step="done" if ok else "failed", error=message)
    await maybe_finalize(runtime, export.id)
    return "done" if ok else "failed"


async def maybe_finalize(runtime: Any, export_id: str) -> bool:
    """Give the export its terminal status once every image is terminal. Exactly one caller wins."""
    if await ExportImage.filter(export_id=export_id, status__not_in=list(IMAGE_TERMINAL)).exists():
        return False
    done = await ExportImage.filter(export_id=export_id, status="done").count()
    failed = await ExportImage.filter(export_id=export_id, status="failed").count()
    status = "done" if failed == 0 else "failed" if done == 0 else "partial"
    updated = await Export.filter(id=export_id, status__in=["queued", "processing"]).update(
        status=status, finished_at=_now())
    if updated:
        await _publish(runtime, export_id, {"event": "export", "export_id": export_id, "status": status})
    return bool(updated)


async def reconcile(runtime: Any) -> dict[str, int]:
    """Re-send what a dead worker or a lost message left behind; finalize exports whose last step was lost."""
    now = _now()
    expired = await ExportImage.filter(status="processing", lease_expires_at__lt=now).values_list("id", flat=True)
    stale_before = now - timedelta(seconds=runtime.settings.item_stuck_seconds)
    stale = await ExportImage.filter(status="queued", updated_at__lt=stale_before).values_list("id", flat=True)
    if stale:
        await ExportImage.filter(id__in=list(stale)).update(updated_at=now)
    await send_messages(runtime, [Message(ACTOR, (str(i),)) for i in [*expired, *stale]])
    finalized = 0
    for export_id in await Export.filter(status__in=["queued", "processing"],
                                         updated_at__lt=now - timedelta(seconds=5)).values_list("id", flat=True):
        finalized += int(await maybe_finalize(runtime, str(export_id)))
    return {"requeued": len(expired) + len(stale), "finalized": finalized}


# Live progress --------------------------------------------------------------------------------------------


async def _publish(runtime: Any, export_id: str, message: dict[str, Any]) -> None:
    events = getattr(runtime, "events", None)
    if events is None:
        return
    try:
        await events.publish(channel(export_id), message)
    except Exception:  # pub/sub down must not fail the export: progress is a view of the database
        log.warning("could not publish progress for export %s", export_id, exc_info=True)


async def publish_progress(runtime: Any, export_id: str, image_id: str | None, *, status: str, step: str,
                           error: str | None = None) -> None:
    export = await Export.get(id=export_id)
    await _publish(runtime, export_id, {
        "event": "progress", "export_id": export_id, "image_id": image_id, "status": status, "step": step,
        "current": export.completed_images, "total": export.total_images, "error": error})


@dataclass
class ExportEvent:
    """One live event, named as spec 002 names them: `progress`, `complete` (with every result) or `error`."""

    kind: str
    export_id: str
    status: str
    current: int
    total: int
    image_id: str | None = None
    step: str | None = None
    error: str | None = None
    export: ExportView | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "progress":
            return {"export_id": self.export_id, "image_id": self.image_id, "status": self.status,
                    "step": self.step, "current": self.current, "total": self.total, "error": self.error}
        if self.kind == "error":
            return {"export_id": self.export_id, "status": self.status, "error": self.error,
                    "results": self.export.to_json()["images"] if self.export else []}
        assert self.export is not None
        return {"export_id": self.export_id, "status": self.status, "current": self.current, "total": self.total,
                "results": self.export.to_json()["images"]}


async def _terminal_event(ctx: Context, export_id: str) -> ExportEvent:
    export = await Export.get(id=export_id)
    snapshot = await view(ctx, export)
    if export.status == "failed":
        first = next((i for i in snapshot.images if i.error), None)
        message = f"every image failed; first: {first.error}" if first else "every image failed"
        return ExportEvent("error", export.id, export.status, export.completed_images, export.total_images,
                           error=message, export=snapshot)
    return ExportEvent("complete", export.id, export.status, export.completed_images, export.total_images,
                       export=snapshot)


async def follow(ctx: Context, export_id: str, *, heartbeat: float | None = None
                 ) -> AsyncGenerator[ExportEvent | None, None]:
    """Subscribe, then the current state, then every change; ends with `complete` or `error`. None every
    `heartbeat` seconds of silence. Access is checked before anything is sent."""
    export = await get_export(ctx, export_id)
    runtime = ctx.services
    async with runtime.events.subscribe(channel(export.id)) as subscription:
        export = await Export.get(id=export.id)
        yield ExportEvent("progress", export.id, export.status, export.completed_images, export.total_images,
                          step="snapshot")
        if export.status in TERMINAL:
            yield await _terminal_event(ctx, export.id)
            return
        last = time.monotonic()
        while True:
            timeout = None if heartbeat is None else max(0.0, heartbeat - (time.monotonic() - last))
            try:
                message = await subscription.get(timeout=timeout)
            except TimeoutError:
                last = time.monotonic()
                yield None
                continue
            if message.get("event") == "export":
                yield await _terminal_event(ctx, export.id)
                return
            yield ExportEvent("progress", export.id, str(message.get("status")), int(message.get("current") or 0),
                              int(message.get("total") or 0), image_id=message.get("image_id"),
                              step=message.get("step"), error=message.get("error"))
            if int(message.get("current") or 0) >= int(message.get("total") or 0):
                # the last image is in: if its terminal event was lost (slow subscriber), read the answer
                fresh = await Export.get(id=export.id)
                if fresh.status in TERMINAL:
                    yield await _terminal_event(ctx, export.id)
                    return
