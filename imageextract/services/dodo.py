"""The payment provider (Dodo Payments): checkout sessions through its official SDK, and webhook signatures.

Everything provider-specific lives here: services.billing asks for "a checkout URL for this product" and
"the verified event in these bytes", and gets domain errors back (502/504 for a provider that fails or is
slow, 400 for a webhook that does not verify, 503 when the settings are missing).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imageextract.config import Settings
from imageextract.errors import BadGateway, GatewayTimeout, ServiceUnavailable, ValidationError

if TYPE_CHECKING:
    import dodopayments

WEBHOOK_TOLERANCE_SECONDS = 300  # Standard Webhooks' own tolerance, checked here to name the failure
PREVIOUS_SECRET_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class CheckoutSession:
    session_id: str
    url: str


def not_configured(missing: list[str]) -> ServiceUnavailable:
    names = ", ".join(f"IMAGEEXTRACT_{m.upper()}" for m in missing)
    return ServiceUnavailable(f"Billing is not configured: set {names}", code="billing_not_configured",
                              details={"missing_settings": [f"IMAGEEXTRACT_{m.upper()}" for m in missing]})


def _client(settings: Settings) -> dodopayments.AsyncDodoPayments:
    import dodopayments  # imported when billing is used: the SDK's types take ~0.25 s to load

    kwargs: dict[str, Any] = {"bearer_token": settings.dodo_api_key, "timeout": settings.dodo_timeout_seconds,
                              "max_retries": settings.dodo_max_retries}
    if settings.dodo_base_url:
        kwargs["base_url"] = settings.dodo_base_url
    else:
        kwargs["environment"] = settings.dodo_environment
    return dodopayments.AsyncDodoPayments(**kwargs)


def call_budget(settings: Settings) -> float:
    """The longest a checkout call may take: every attempt's timeout plus the SDK's backoff between them."""
    attempts = settings.dodo_max_retries + 1
    return settings.dodo_timeout_seconds * attempts + 2.0 * settings.dodo_max_retries + 1.0


async def create_checkout_session(settings: Settings, *, product_id: str, email: str, name: str | None,
                                  metadata: dict[str, str | float | bool], return_url: str) -> CheckoutSession:
    """One checkout session for one unit of `product_id`. Bounded by `call_budget`, never a hang."""
    if not settings.dodo_api_key:
        raise not_configured(["dodo_api_key"])
    import dodopayments

    customer: dict[str, Any] = {"email": email}
    if name:
        customer["name"] = name
    try:
        async with _client(settings) as client:
            response = await asyncio.wait_for(
                client.checkout_sessions.create(
                    product_cart=[{"product_id": product_id, "quantity": 1}],
                    customer=customer,  # type: ignore[arg-type]
                    metadata=metadata,
                    return_url=return_url,
                ),
                timeout=call_budget(settings),
            )
    except (dodopayments.APITimeoutError, TimeoutError):
        raise GatewayTimeout("The payment provider did not answer in time; try again",
                             code="payment_provider_timeout") from None
    except dodopayments.APIStatusError as exc:
        raise BadGateway(f"The payment provider refused the checkout (HTTP {exc.status_code})",
                         code="payment_provider_error", details={"provider_status": exc.status_code}) from None
    except dodopayments.APIError as exc:  # connection refused, bad JSON from the provider...
        raise BadGateway("The payment provider could not be reached", code="payment_provider_error",
                         details={"reason": type(exc).__name__}) from None
    if not response.checkout_url:
        raise BadGateway("The payment provider answered without a checkout URL", code="payment_provider_error")
    return CheckoutSession(session_id=response.session_id, url=response.checkout_url)


def webhook_secrets(settings: Settings, *, now: datetime | None = None) -> list[str]:
    """The secrets a webhook may be signed with now: the current one, and the previous one for 24 h after
    the rotation (`dodo_webhook_secret_rotated_at`)."""
    now = now or datetime.now(UTC)
    secrets = [s for s in [settings.dodo_webhook_secret] if s]
    rotated = settings.dodo_webhook_secret_rotated_at
    if settings.dodo_webhook_secret_previous and rotated is not None and now < rotated + PREVIOUS_SECRET_GRACE:
        secrets.append(settings.dodo_webhook_secret_previous)
    return secrets


def verify_webhook(settings: Settings, *, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The event in `body` once its Standard Webhooks signature verifies; nothing is parsed before that."""
    secrets = webhook_secrets(settings)
    if not secrets:
        raise not_configured(["dodo_webhook_secret"])
    wanted = {k: headers.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    missing = [k for k, v in wanted.items() if not v]
    if missing:
        raise ValidationError("Missing webhook signature headers", code="invalid_signature",
                              details={"missing_headers": missing})
    try:
        sent_at = float(wanted["webhook-timestamp"])
    except ValueError:
        raise ValidationError("webhook-timestamp is not a Unix timestamp", code="invalid_signature") from None
    if not abs(time.time() - sent_at) <= WEBHOOK_TOLERANCE_SECONDS:
        raise ValidationError("webhook-timestamp is outside the 5-minute tolerance", code="stale_timestamp",
                              details={"tolerance_seconds": WEBHOOK_TOLERANCE_SECONDS})
    for secret in secrets:
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
        except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError):
            continue
        break
    else:
        raise ValidationError("Webhook signature does not match", code="invalid_signature")
    try:
        event = json.loads(body)
    except ValueError:
        raise ValidationError("Webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise ValidationError("Webhook body must be a JSON object")
    return event
