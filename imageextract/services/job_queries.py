"""Finding jobs: the one place list filters and sorts are parsed, validated and applied.

Both doors (REST `GET /api/v1/jobs` and `/api/dashboard/jobs`, GraphQL `jobs(...)`) hand their raw arguments to
`job_filters`; an unknown value is a 400 (`validation_error`) naming the field, never silently ignored. Lists are
owner-only: the caller's account (and, for a project key, its project).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imageextract.context import Context
from imageextract.errors import ValidationError
from imageextract.models import Job
from imageextract.services.job_views import JOB_TYPES, JobStatus, JobView, job_view
from imageextract.services.pagination import MAX_PAGE, Page, keyset_page, offset_page
from imageextract.services.projects import get_project

SORTS = ("created_at", "updated_at")
ORDERS = ("asc", "desc")
STATUSES = tuple(s.value for s in JobStatus)
DEFAULT_PER_PAGE = 20
MAX_PAGE_NUMBER = 100_000
# REST query parameters `GET /api/v1/jobs` understands (anything else is a 400).
LIST_PARAMS = frozenset({"page", "per_page", "status", "type", "project_id", "created_after", "created_before",
                         "sort", "order"})


@dataclass(frozen=True)
class JobFilters:
    statuses: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    project_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = "created_at"
    descending: bool = True


def _choices(value: Any, allowed: tuple[str, ...], field: str) -> tuple[str, ...]:
    """One value or a comma-separated list of them; each must be one of `allowed`."""
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        parts = [str(v).strip() for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise ValidationError(f"{field} must be a string", details={"field": field})
    bad = [p for p in parts if p not in allowed]
    if bad or not parts:
        raise ValidationError(f"{field} must be one of: {', '.join(allowed)}",
                              details={"field": field, "allowed": list(allowed), "got": bad})
    return tuple(dict.fromkeys(parts))


def _one_of(value: Any, allowed: tuple[str, ...], default: str, field: str) -> str:
    if value is None or value == "":
        return default
    if value not in allowed:
        raise ValidationError(f"{field} must be one of: {', '.join(allowed)}",
                              details={"field": field, "allowed": list(allowed)})
    return str(value)


def _instant(value: Any, field: str) -> datetime | None:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            raise ValidationError(f"{field} must be an ISO 8601 date or date-time",
                                  details={"field": field}) from None
    else:
        raise ValidationError(f"{field} must be an ISO 8601 date or date-time", details={"field": field})
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def job_filters(ctx: Context, *, status: Any = None, type: Any = None, project_id: Any = None,
                created_after: Any = None, created_before: Any = None, sort: Any = None,
                order: Any = None) -> JobFilters:
    """Validate list arguments as either door received them (strings, lists, datetimes), after the caller's
    credentials (who you are comes before what you asked, on both doors)."""
    ctx.require_principal()
    if project_id is not None and (not isinstance(project_id, str) or not project_id.strip()):
        raise ValidationError("project_id must be a non-empty string", details={"field": "project_id"})
    after = _instant(created_after, "created_after")
    before = _instant(created_before, "created_before")
    if after is not None and before is not None and after >= before:
        raise ValidationError("created_after must be earlier than created_before",
                              details={"field": "created_after"})
    return JobFilters(
        statuses=_choices(status, STATUSES, "status"), types=_choices(type, JOB_TYPES, "type"),
        project_id=project_id.strip() if isinstance(project_id, str) else None, created_after=after,
        created_before=before, sort=_one_of(sort, SORTS, "created_at", "sort"),
        descending=_one_of(order, ORDERS, "desc", "order") == "desc",
    )


def check_list_params(names: Any, allowed: frozenset[str] = LIST_PARAMS) -> None:
    """A REST query parameter nobody reads is a typo the caller must hear about."""
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValidationError(f"Unknown query parameters: {', '.join(unknown)}",
                              details={"fields": unknown, "allowed": sorted(allowed)})


def parse_int(value: Any, *, field: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be an integer", details={"field": field}) from None
    if not lo <= number <= hi:
        raise ValidationError(f"{field} must be between {lo} and {hi}", details={"field": field})
    return number


async def _query(ctx: Context, filters: JobFilters) -> Any:
    principal = ctx.require_principal()
    query = Job.filter(account_id=principal.account_id)
    if principal.project_id is not None:
        query = query.filter(project_id=principal.project_id)
    if filters.project_id is not None:
        await get_project(ctx, filters.project_id)  # someone else's project is 404, as everywhere else
        query = query.filter(project_id=filters.project_id)
    if filters.statuses:
        query = query.filter(status__in=list(filters.statuses))
    if filters.types:
        query = query.filter(type__in=list(filters.types))
    if filters.created_after is not None:
        query = query.filter(created_at__gte=filters.created_after)
    if filters.created_before is not None:
        query = query.filter(created_at__lt=filters.created_before)
    return query


async def list_jobs(ctx: Context, filters: JobFilters, *, page: int, per_page: int) -> Page[JobView]:
    """Page `page` (1-based) of the caller's jobs: REST's numbered pages."""
    parse_int(page, field="page", default=1, lo=1, hi=MAX_PAGE_NUMBER)
    parse_int(per_page, field="per_page", default=DEFAULT_PER_PAGE, lo=1, hi=MAX_PAGE)
    prefix = "-" if filters.descending else ""
    rows = await offset_page(await _query(ctx, filters), page=page, per_page=per_page,
                             order=[f"{prefix}{filters.sort}", f"{prefix}id"])
    return _views(rows)


async def list_jobs_cursor(ctx: Context, filters: JobFilters, *, first: int, after: str | None) -> Page[JobView]:
    """The same list as `list_jobs`, by cursor: GraphQL's connection."""
    query = await _query(ctx, filters)
    return _views(await keyset_page(query, first=first, after=after, sort=filters.sort,
                                    descending=filters.descending))


def _views(page: Page[Job]) -> Page[JobView]:
    return Page(rows=[job_view(j) for j in page.rows], total=page.total, has_next=page.has_next,
                has_previous=page.has_previous, cursors=page.cursors)
