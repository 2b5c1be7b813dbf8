"""GraphQL types for the plans catalog: a plan's limits (services/plans.py), and a plan as offered."""

from __future__ import annotations

import strawberry

from imageextract.services.billing import PlanOffer
from imageextract.services.plans import Plan as PlanLimits


@strawberry.type
class Limits:
    plan: str
    credits_included: int
    daily_credit_cap: int
    api_access: bool
    ads_enabled: bool
    bulk_max_urls: int
    document_max_files: int
    document_max_mb: int
    url_worker_concurrency: int

    @classmethod
    def from_plan(cls, plan: PlanLimits) -> Limits:
        return cls(**plan.limits())  # type: ignore[arg-type]


@strawberry.type
class Plan(Limits):
    """A plan of the catalog: its limits, and whether it can be bought (checkout)."""

    purchasable: bool

    @classmethod
    def from_offer(cls, offer: PlanOffer) -> Plan:
        return cls(purchasable=offer.purchasable, **offer.plan.limits())  # type: ignore[arg-type]
