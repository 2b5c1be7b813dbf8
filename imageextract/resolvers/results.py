"""Resolvers for the results API: deleting a job (listing lives on `Query.jobs`, export URLs on `Job`)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from imageextract.schema.context import GQLContext
from imageextract.services import deletion

GInfo = Info[GQLContext, None]


@strawberry.type
class DeleteJobPayload:
    deleted: bool
    job_id: strawberry.ID


async def delete_job(info: GInfo, id: strawberry.ID) -> DeleteJobPayload:
    """DELETE /api/v1/jobs/:id: the job, its items, uploads and image records, and the stored bytes no
    other job references. A running job is cancelled (and refunded) first; ledger entries stay."""
    purged = await deletion.delete_job(info.context.ctx, str(id))
    return DeleteJobPayload(deleted=True, job_id=strawberry.ID(purged.job_id))


@strawberry.type
class Mutation:
    delete_job: DeleteJobPayload = strawberry.mutation(resolver=delete_job)
