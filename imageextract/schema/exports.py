"""GraphQL types for exports: converted, compressed, responsive files made from a job's images."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON


@strawberry.type
class ExportVariant:
    """One exported file: `name` is `full` or `<width>w`; `url` downloads it (authenticated)."""

    name: str
    filename: str
    format: str
    width: int
    height: int
    size: int
    frames: int
    url: str


@strawberry.type
class ExportImage:
    image_id: strawberry.ID
    filename: str
    status: str
    error: str | None
    error_code: str | None
    variants: list[ExportVariant]


@strawberry.type
class Export:
    id: strawberry.ID
    job_id: strawberry.ID
    status: str
    settings: JSON
    total_images: int
    completed_images: int
    failed_images: int
    credits_used: int
    download_url: str
    created_at: datetime
    finished_at: datetime | None
    images: list[ExportImage]

    @classmethod
    def from_view(cls, v: Any) -> Export:
        return cls(
            id=strawberry.ID(v.export_id), job_id=strawberry.ID(v.job_id), status=v.status, settings=v.settings,
            total_images=v.total_images, completed_images=v.completed_images, failed_images=v.failed_images,
            credits_used=v.credits_used, download_url=v.download_url, created_at=v.created_at,
            finished_at=v.finished_at,
            images=[ExportImage(image_id=strawberry.ID(i.image_id), filename=i.filename, status=i.status,
                                error=i.error, error_code=i.error_code,
                                variants=[ExportVariant(name=f.name, filename=f.filename, format=f.format,
                                                        width=f.width, height=f.height, size=f.size,
                                                        frames=f.frames, url=f.url) for f in i.variants])
                    for i in v.images],
        )


@strawberry.input
class ExportSettingsInput:
    """Every field optional: format webp, preset high, responsive false, stripMetadata true."""

    format: str | None = strawberry.UNSET
    preset: str | None = strawberry.UNSET
    responsive: bool | None = strawberry.UNSET
    responsive_sizes: list[int] | None = strawberry.UNSET
    strip_metadata: bool | None = strawberry.UNSET


@strawberry.type
class CreateExportPayload:
    export_id: strawberry.ID


@strawberry.type
class ExportProgressEvent:
    """`kind` is `progress` (one image moved: imageId, status, step, current, total), `complete` (with `export`)
    or `error` (every image failed: `error`, and `export`)."""

    kind: str
    export_id: strawberry.ID
    status: str
    current: int
    total: int
    image_id: strawberry.ID | None = None
    step: str | None = None
    error: str | None = None
    export: Export | None = None
