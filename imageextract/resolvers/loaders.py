"""DataLoaders, built per request (a shared loader would leak data across tenants). They read through the
same service views as REST, so both doors apply the same rules and order rows the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from imageextract.context import Context
from imageextract.services import jobs
from imageextract.services.job_views import ItemView, JobView, item_views
from imageextract.services.pagination import Page


async def _items_by_job(job_ids: list[Any]) -> list[list[ItemView]]:
    grouped = await item_views(list(job_ids))  # one query for every job in the batch
    return [grouped[str(j)] for j in job_ids]


@dataclass
class Loaders:
    ctx: Context
    items_by_job: DataLoader[Any, list[ItemView]] = field(init=False)
    first_image_pages: DataLoader[tuple[str, bool, int, bool], Page[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.items_by_job = DataLoader(load_fn=_items_by_job)
        self.first_image_pages = DataLoader(load_fn=self._first_image_pages)

    async def image_page(self, job: JobView, *, failed: bool, first: int, after: str | None,
                         count: bool = True) -> Page[Any]:
        """`Job.images` / `Job.failedImages`: a first page is batched with the other jobs' of this request
        (a list of jobs with their images is one image query), a later page read on its own. `count`: the
        query asks for `totalCount`."""
        if after is not None:
            return await jobs.images_page(self.ctx, job, failed=failed, first=first, after=after, count=count)
        jobs.check_readable(job)
        return await self.first_image_pages.load((job.id, failed, first, count))

    async def _first_image_pages(self, keys: list[tuple[str, bool, int, bool]]) -> list[Page[Any]]:
        return await jobs.first_image_pages(self.ctx, keys)
