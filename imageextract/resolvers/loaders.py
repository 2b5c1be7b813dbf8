"""DataLoaders, built per request (a shared loader would leak data across tenants). They read through the
same service views as REST, so both doors apply the same rules and order rows the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from imageextract.context import Context
from imageextract.services import jobs
from imageextract.services.job_views import ImageSet, ItemView, item_views


async def _items_by_job(job_ids: list[Any]) -> list[list[ItemView]]:
    grouped = await item_views(list(job_ids))  # one query for every job in the batch
    return [grouped[str(j)] for j in job_ids]


@dataclass
class Loaders:
    ctx: Context
    items_by_job: DataLoader[Any, list[ItemView]] = field(init=False)
    images_by_job: DataLoader[Any, ImageSet] = field(init=False)

    def __post_init__(self) -> None:
        self.items_by_job = DataLoader(load_fn=_items_by_job)
        self.images_by_job = DataLoader(load_fn=self._images_by_job)

    async def _images_by_job(self, job_ids: list[Any]) -> list[ImageSet | BaseException]:
        """Each job's result under the REST rule (result_of): an error for a job that is not readable."""
        return list(await jobs.results_of(self.ctx, [str(j) for j in job_ids]))
