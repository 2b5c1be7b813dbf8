"""Model -> documented JSON shapes. One function per resource, used by every route that returns it."""

from __future__ import annotations

from typing import Any

from imageextract.models import ApiKey, LedgerEntry, Project
from imageextract.rest_compat.common import iso


def project_json(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "account_id": p.account_id,  # type: ignore[attr-defined]
        "name": p.name,
        "slug": p.slug,
        "site_url": p.site_url,
        "default_webhook_url": p.default_webhook_url,
        "status": p.status,
        "is_default": p.is_default,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def key_json(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "key_prefix": k.key_prefix,
        "label": k.label,
        "status": k.status,
        "project_id": k.project_id,  # type: ignore[attr-defined]
        "last_used": iso(k.last_used),
        "created_at": iso(k.created_at),
        "revoked_at": iso(k.revoked_at),
    }


def ledger_json(e: LedgerEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "entry_type": e.entry_type,
        "amount": e.amount,
        "balance_after": e.balance_after,
        "job_id": str(e.job_id) if e.job_id else None,
        "note": e.note,
        "created_at": iso(e.created_at),
    }


def job_group_json(item: Any) -> dict[str, Any]:
    return {
        "id": str(item.id), "label": item.source_label, "kind": item.kind, "status": item.status,
        "image_count": item.image_count, "duration_ms": item.duration_ms,
        "error_code": item.error_code, "error_message": item.error_message,
    }


def job_json(job: Any, items: list[Any]) -> dict[str, Any]:
    from imageextract.services.progress import progress_percent

    terminal = ("done", "failed", "cancelled")
    return {
        "id": str(job.id),
        "type": job.type,
        "status": job.status,
        "progress": progress_percent(job),
        "credits_used": job.credits_used if job.status in terminal else job.credits_reserved,
        "image_count": job.image_count,
        "partial": job.partial,
        "completed_groups": sum(1 for i in items if i.status in terminal),
        "total_groups": len(items),
        "groups": [job_group_json(i) for i in items],
        "project_id": job.project_id,
        "metadata": job.metadata,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "retry_of": str(job.retry_of_id) if job.retry_of_id else None,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


def item_json(item: Any) -> dict[str, Any]:
    return {
        "id": str(item.id), "kind": item.kind, "position": item.position, "source_label": item.source_label,
        "status": item.status, "image_count": item.image_count, "duration_ms": item.duration_ms,
        "error_code": item.error_code, "error_message": item.error_message, "attempts": item.attempts,
        "warnings": list(item.warnings or []),
    }


def image_json(image: Any, *, base_url: str, storage: Any) -> dict[str, Any]:
    """The documented ImageResult, plus provenance fields."""
    return {
        "id": image.id,
        "url": f"{base_url}/api/v1/jobs/{image.job_id}/downloads/images/{image.id}",
        "source_url": image.source_url,
        "source_kind": image.source_kind,
        "filename": image.filename,
        "width": image.width,
        "height": image.height,
        "aspect_ratio": image.aspect_ratio,
        "format": image.format,
        "file_size": image.file_size,
        "color_space": image.color_space,
        "has_alpha": image.has_alpha,
        "alt_text": image.alt_text,
        "title": image.title,
        "aria_label": image.aria_label,
        "is_lazy_loaded": image.is_lazy_loaded,
        "storage_url": storage.describe(image.storage_key) if image.storage_key and storage else None,
        "storage_key": image.storage_key,
        "document_page": image.document_page,
        "document_slide": image.document_slide,
        "document_asset_hash": image.document_asset_hash,
        "document_occurrence_count": image.document_occurrence_count,
        "content_hash": image.content_hash,
        "group_id": str(image.item_id),
        "provenance": image.provenance,
        "page_url": image.page_url,
        "variants": image.variants or [],
        "sheet": image.sheet,
        "anchor_cell": image.anchor_cell,
        "error": image.error,
    }
