"""Billing: checkout for a paid plan, the provider's signed webhooks, and what each event does to an account.

Rules (README "Billing" says the same for operators):
- Checkout: owners and admins buy one of the paid plans of services.plans; the session carries
  `{"account_id": ...}` as metadata, so every later event of that subscription names the account.
- A webhook is verified (services.dodo) before anything is parsed, then stored once by its `webhook-id`
  (unique `PaymentEvent.provider_event_id`) and applied in the same transaction; a replay changes nothing.
- Per subscription, the state (plan, status, period) follows the provider's own event timestamps: an event
  older than the state we hold is recorded as `superseded` and changes nothing but its own grant.
- `subscription.active` / `subscription.renewed` grant the plan's `credits_included` once per billing
  period (ledger `unique_ref` keyed by subscription and period start). `plan_changed` changes the plan
  (limits) and grants nothing. `on_hold` / `failed` / `cancelled` / `expired` keep the plan until the period
  end, then the account is back on free; credits already granted stay.
- The account's plan is always derived from its subscriptions: the newest one that still carries its plan
  (active, or ended with a period end still ahead), else free. `settle_ended` applies period ends.
- Each event takes the account row's lock (a no-op UPDATE) before reading the subscription, so two events
  of one account apply one after the other on Postgres as they do on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from imageextract.config import Settings
from imageextract.context import Context
from imageextract.errors import ValidationError
from imageextract.models import Account, Membership, PaymentEvent, Subscription
from imageextract.services import dodo, ledger
from imageextract.services.pagination import Page, keyset_page
from imageextract.services.permissions import require_role
from imageextract.services.plans import PLANS, Plan, get_plan

PURCHASABLE = ("starter", "pro", "scale", "agency")

SUBSCRIPTION_STARTS = frozenset({"subscription.active", "subscription.renewed"})
SUBSCRIPTION_CHANGES = frozenset({"subscription.plan_changed"})
SUBSCRIPTION_ENDS = frozenset({"subscription.on_hold", "subscription.failed", "subscription.cancelled",
                               "subscription.expired"})
RECORDED_ONLY = frozenset({"payment.succeeded", "payment.failed", "refund.succeeded", "dispute.opened"})
EVENT_TYPES = SUBSCRIPTION_STARTS | SUBSCRIPTION_CHANGES | SUBSCRIPTION_ENDS | RECORDED_ONLY


@dataclass(frozen=True)
class BillingState:
    plan: str
    status: str  # the subscription's status: active | on_hold | failed | cancelled | expired, or none
    current_period_end: datetime | None
    cancel_at_period_end: bool
    subscription_id: str | None


@dataclass(frozen=True)
class PlanOffer:
    plan: Plan
    purchasable: bool


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    duplicate: bool
    outcome: str


# Plans and checkout ----------------------------------------------------------------------------------


def plan_catalog() -> list[PlanOffer]:
    return [PlanOffer(plan=p, purchasable=p.plan in PURCHASABLE) for p in PLANS.values()]


def plan_for_product(settings: Settings, product_id: str | None) -> str | None:
    for plan, configured in settings.dodo_products().items():
        if configured and configured == product_id:
            return plan
    return None


async def _buyer_email(principal: Any) -> tuple[str, str | None]:
    if principal.user is not None:
        return principal.user.email, principal.user.name or None
    owner = await Membership.filter(account_id=principal.account_id, role="owner").prefetch_related("user").first()
    if owner is None:
        raise ValidationError("The account has no owner to bill")
    return owner.user.email, owner.user.name or None


async def start_checkout(ctx: Context, *, plan: str | None) -> dodo.CheckoutSession:
    """A provider checkout session for `plan`; the caller sends the buyer to its URL."""
    principal = require_role(ctx, "admin")
    if not plan or plan not in PURCHASABLE:
        raise ValidationError(f"Unknown plan {plan!r}: choose one of {', '.join(PURCHASABLE)}",
                              details={"field": "plan", "allowed": list(PURCHASABLE)})
    account = await Account.get(id=principal.account_id)
    if account.plan == plan:
        raise ValidationError(f"The account is already on the {plan} plan",
                              details={"field": "plan", "current_plan": account.plan})
    settings = ctx.settings
    product_id = settings.dodo_products()[plan]
    missing = [name for name, value in (("dodo_api_key", settings.dodo_api_key),
                                        (f"dodo_product_{plan}", product_id)) if not value]
    if missing:
        raise dodo.not_configured(missing)
    assert product_id is not None
    email, name = await _buyer_email(principal)
    return_url = settings.dodo_return_url or f"{(ctx.base_url or settings.base_url).rstrip('/')}/"
    return await dodo.create_checkout_session(
        settings, product_id=product_id, email=email, name=name,
        metadata={"account_id": principal.account_id}, return_url=return_url,
    )


# Reading the state -----------------------------------------------------------------------------------


async def billing_state(*, account_id: str) -> BillingState:
    account = await Account.get(id=account_id)
    sub = await Subscription.filter(account_id=account_id).order_by("-last_event_at", "-id").first()
    if sub is None:
        return BillingState(plan=account.plan, status="none", current_period_end=None,
                            cancel_at_period_end=False, subscription_id=None)
    return BillingState(plan=account.plan, status=sub.status, current_period_end=sub.current_period_end,
                        cancel_at_period_end=sub.cancel_at_period_end,
                        subscription_id=sub.provider_subscription_id)


async def get_billing(ctx: Context) -> BillingState:
    return await billing_state(account_id=ctx.require_principal().account_id)


async def payment_events(ctx: Context, *, first: int = 20, after: str | None = None) -> Page[PaymentEvent]:
    """The account's payment events, newest first."""
    principal = ctx.require_principal()
    query = PaymentEvent.filter(account_id=principal.account_id)
    return await keyset_page(query, first=first, after=after, sort="created_at", descending=True)


# Webhooks --------------------------------------------------------------------------------------------


def _instant(value: Any, *, field: str, required: bool = False) -> datetime | None:
    if value is None or value == "":
        if required:
            raise ValidationError(f"Webhook event has no {field}", details={"field": field})
        return None
    if not isinstance(value, str):
        raise ValidationError(f"Webhook event {field} is not a timestamp", details={"field": field})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"Webhook event {field} is not a timestamp", details={"field": field}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class _Event:
    type: str
    occurred_at: datetime
    data: dict[str, Any]


def _parse_event(event: dict[str, Any]) -> _Event:
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise ValidationError(f"Unknown event type {kind!r}", code="unknown_event_type",
                              details={"type": kind if isinstance(kind, str) else None,
                                       "allowed": sorted(EVENT_TYPES)})
    data = event.get("data")
    if not isinstance(data, dict):
        raise ValidationError("Webhook event has no data object", details={"field": "data"})
    occurred_at = _instant(event.get("timestamp"), field="timestamp", required=True)
    assert occurred_at is not None
    if kind not in RECORDED_ONLY:
        if not _str(data, "subscription_id"):
            raise ValidationError("Subscription event has no data.subscription_id",
                                  details={"field": "data.subscription_id"})
        _instant(data.get("previous_billing_date"), field="data.previous_billing_date")
        _instant(data.get("next_billing_date"), field="data.next_billing_date")
    return _Event(type=kind, occurred_at=occurred_at, data=data)


async def handle_webhook(settings: Settings, *, body: bytes, headers: dict[str, str]) -> WebhookResult:
    """Verify, store once by `webhook-id`, apply. Raises (400/503) with nothing written, or returns."""
    raw = dodo.verify_webhook(settings, body=body, headers=headers)
    event = _parse_event(raw)
    webhook_id = headers["webhook-id"][:200]
    existing = await PaymentEvent.filter(provider_event_id=webhook_id).first()
    if existing is not None:
        return WebhookResult(event_id=existing.id, duplicate=True, outcome=existing.outcome)
    try:
        async with in_transaction() as conn:
            row = await PaymentEvent.create(provider_event_id=webhook_id, event_type=event.type, payload=raw,
                                            occurred_at=event.occurred_at, using_db=conn)
            account_id, outcome = await _apply(settings, event, conn)
            data = event.data
            amount = data.get("total_amount", data.get("amount"))
            await PaymentEvent.filter(id=row.id).using_db(conn).update(
                account_id=account_id, outcome=outcome, processed_at=datetime.now(UTC),
                subscription_id=_str(data, "subscription_id"), payment_id=_str(data, "payment_id"),
                amount=int(amount) if isinstance(amount, int | str) and str(amount).lstrip("-").isdigit()
                else None,
                currency=(_str(data, "currency") or "")[:10] or None,
            )
    except IntegrityError:
        # The same webhook-id raced us and committed first: its copy stands, ours rolled back whole.
        winner = await PaymentEvent.filter(provider_event_id=webhook_id).first()
        if winner is None:
            raise
        return WebhookResult(event_id=winner.id, duplicate=True, outcome=winner.outcome)
    return WebhookResult(event_id=row.id, duplicate=False, outcome=outcome)


async def _account_for(data: dict[str, Any], conn: Any) -> str | None:
    """The account an event is about: its subscription's, else the checkout metadata's, else (payments,
    refunds, disputes) the account of an earlier event about the same payment."""
    sub_ids = [s for s in [_str(data, "subscription_id")] if s]
    sub_ids += [s for s in data.get("subscription_ids") or [] if isinstance(s, str)]
    if sub_ids:
        sub = await Subscription.filter(provider_subscription_id__in=sub_ids).using_db(conn).first()
        if sub is not None:
            return str(sub.account_id)  # type: ignore[attr-defined]
    metadata = data.get("metadata")
    account_id = metadata.get("account_id") if isinstance(metadata, dict) else None
    if isinstance(account_id, str) and await Account.filter(id=account_id).using_db(conn).exists():
        return account_id
    payment_id = _str(data, "payment_id")
    if payment_id:
        earlier = await PaymentEvent.filter(payment_id=payment_id, account_id__isnull=False).using_db(conn) \
            .first()
        if earlier is not None:
            return str(earlier.account_id)  # type: ignore[attr-defined]
    return None


async def _lock_account(account_id: str, conn: Any) -> None:
    await Account.filter(id=account_id).using_db(conn).update(plan=F("plan"))


async def _apply(settings: Settings, event: _Event, conn: Any) -> tuple[str | None, str]:
    account_id = await _account_for(event.data, conn)
    if account_id is None:
        return None, "unmatched_account"
    if event.type in RECORDED_ONLY:
        return account_id, "recorded"
    await _lock_account(account_id, conn)
    data = event.data
    sub_id = str(data["subscription_id"])
    sub = await Subscription.filter(provider_subscription_id=sub_id).using_db(conn).first()
    product_id = _str(data, "product_id") or (sub.product_id if sub else "")
    plan = plan_for_product(settings, product_id)
    if plan is None:
        if sub is None or event.type not in SUBSCRIPTION_ENDS:
            return account_id, "unknown_product"
        plan = sub.plan
    period_start = _instant(data.get("previous_billing_date"), field="data.previous_billing_date")
    period_end = _instant(data.get("next_billing_date"), field="data.next_billing_date")
    newer = sub is None or event.occurred_at >= sub.last_event_at
    if newer:
        ending = event.type in SUBSCRIPTION_ENDS
        status = event.type.split(".", 1)[1] if ending else "active"
        values: dict[str, Any] = {
            "account_id": sub.account_id if sub else account_id,  # type: ignore[attr-defined]
            "product_id": product_id, "plan": plan, "status": status,
            "current_period_start": period_start, "current_period_end": period_end,
            "cancel_at_period_end": ending or bool(data.get("cancel_at_next_billing_date")),
            "ends_at": (period_end or event.occurred_at) if ending else None, "ended": False,
            "last_event_at": event.occurred_at,
        }
        if sub is None:
            await Subscription.create(provider_subscription_id=sub_id, using_db=conn, **values)
        else:
            await Subscription.filter(id=sub.id).using_db(conn).update(**values)
    if event.type in SUBSCRIPTION_STARTS:
        credits = get_plan(plan).credits_included
        period_key = int(period_start.timestamp()) if period_start else int(event.occurred_at.timestamp())
        if credits > 0:
            await ledger.credit(
                account_id=account_id, amount=credits, entry_type="plan_grant",
                unique_ref=f"plan_grant:{sub_id[:80]}:{period_key}",
                note=f"{plan} plan credits for the period from {(period_start or event.occurred_at).date()}",
                conn=conn,
            )
    await _recompute_plan(account_id, conn)
    return account_id, "applied" if newer else "superseded"


async def _recompute_plan(account_id: str, conn: Any) -> str:
    now = datetime.now(UTC)
    plan = "free"
    for sub in await Subscription.filter(account_id=account_id).using_db(conn).order_by("-last_event_at", "-id"):
        if sub.status == "active" or (sub.ends_at is not None and sub.ends_at > now):
            plan = sub.plan
            break
    await Account.filter(id=account_id).using_db(conn).update(plan=plan)
    await Subscription.filter(account_id=account_id, ended=False, ends_at__lte=now) \
        .exclude(status="active").using_db(conn).update(ended=True)
    return plan


async def settle_ended(*, now: datetime | None = None) -> int:
    """Put accounts whose subscription's period has run out back on free (run by the reconciler)."""
    now = now or datetime.now(UTC)
    account_ids = await Subscription.filter(ended=False, ends_at__lte=now).exclude(status="active") \
        .distinct().values_list("account_id", flat=True)
    for account_id in account_ids:
        async with in_transaction() as conn:
            await _lock_account(str(account_id), conn)
            await _recompute_plan(str(account_id), conn)
    return len(account_ids)
