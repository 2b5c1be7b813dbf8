"""DataLoaders, built per request (a shared loader would leak data across tenants): one query per batch."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from imageextract.models import Image, JobItem


async def _items_by_job(job_ids: list[Any]) -> list[list[JobItem]]:
    rows = await JobItem.filter(job_id__in=list(job_ids)).order_by("position")
    grouped: dict[str, list[JobItem]] = defaultdict(list)
    for row in rows:
        grouped[str(row.job_id)].append(row)  # type: ignore[attr-defined]
    return [grouped.get(str(j), []) for j in job_ids]


async def _images_by_job(job_ids: list[Any]) -> list[list[Image]]:
    rows = await Image.filter(job_id__in=list(job_ids)).order_by("position")
    items = {str(i.id): i.position for i in await JobItem.filter(job_id__in=list(job_ids)).only("id", "position")}
    grouped: dict[str, list[Image]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (items.get(str(r.item_id), 0), r.position)):  # type: ignore[attr-defined]
        grouped[str(row.job_id)].append(row)  # type: ignore[attr-defined]
    return [grouped.get(str(j), []) for j in job_ids]


async def _images_by_item(item_ids: list[Any]) -> list[list[Image]]:
    rows = await Image.filter(item_id__in=list(item_ids)).order_by("position")
    grouped: dict[str, list[Image]] = defaultdict(list)
    for row in rows:
        grouped[str(row.item_id)].append(row)  # type: ignore[attr-defined]
    return [grouped.get(str(i), []) for i in item_ids]


@dataclass
class Loaders:
    items_by_job: DataLoader[Any, list[JobItem]] = field(default_factory=lambda: DataLoader(load_fn=_items_by_job))
    images_by_job: DataLoader[Any, list[Image]] = field(default_factory=lambda: DataLoader(load_fn=_images_by_job))
    images_by_item: DataLoader[Any, list[Image]] = field(default_factory=lambda: DataLoader(load_fn=_images_by_item))
