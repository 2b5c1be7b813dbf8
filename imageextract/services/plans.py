"""The plan catalog: the one place plan limits live (served by /api/v1/account/limits)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from imageextract.errors import InsufficientCredits, ValidationError


@dataclass(frozen=True)
class Plan:
    plan: str
    credits_included: int  # credits granted when the plan starts (and each billing period)
    daily_credit_cap: int  # credits spendable per UTC day; -1 = no cap
    api_access: bool
    ads_enabled: bool
    bulk_max_urls: int
    document_max_files: int
    document_max_mb: int
    url_worker_concurrency: int
    jobs_per_day: int  # submission rate limit per UTC day; -1 = unlimited

    def limits(self) -> dict[str, object]:
        """The fields of /api/v1/account/limits, in the documented order."""
        data = asdict(self)
        data.pop("jobs_per_day")
        return data


PLANS: dict[str, Plan] = {
    p.plan: p
    for p in (
        Plan("free", 50, 10, True, True, 1, 1, 10, 2, 10),
        Plan("starter", 1000, -1, True, False, 3, 3, 25, 5, -1),
        Plan("pro", 5000, -1, True, False, 5, 5, 50, 10, -1),
        Plan("scale", 20000, -1, True, False, 25, 10, 100, 20, -1),
        Plan("agency", 50000, -1, True, False, 50, 20, 200, 40, -1),
    )
}

# Guests (no account) get the smallest limits; see Settings.guest_daily_jobs for their rate.
GUEST_PLAN = Plan("guest", 0, -1, False, True, 1, 0, 0, 1, 3)


def get_plan(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValidationError(
            f"Unknown plan {name!r}", details={"plan": name, "allowed": sorted(PLANS)}
        ) from None


def check_daily_cap(plan: Plan, spent: int, n: int) -> None:
    """The plan's daily credit cap: `n` more credits on top of `spent` today, or 402 `daily_credit_cap`."""
    if 0 <= plan.daily_credit_cap < spent + n:
        raise InsufficientCredits(
            f"Daily credit cap of {plan.daily_credit_cap} reached on the {plan.plan} plan",
            details={"daily_credit_cap": plan.daily_credit_cap, "spent_today": spent, "required": n},
            code="daily_credit_cap",
        )
