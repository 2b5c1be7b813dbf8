"""Billing fixtures: the loopback provider, a server configured for it, and signed webhook deliveries."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.billing.fakedodo import API_KEY, FakeDodo, run_fake_dodo
from tests.support import Backend, ServerProcess


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


SECRET = new_secret()
PREVIOUS_SECRET = new_secret()  # rotated an hour before the server started: still accepted
PRODUCTS = {"starter": "prod_starter_1", "pro": "prod_pro_1", "scale": "prod_scale_1", "agency": "prod_agency_1"}
RETURN_URL = "https://app.example.test/billing/done"


@pytest.fixture(scope="session")
def fake_dodo() -> Iterator[FakeDodo]:
    with run_fake_dodo() as fake:
        yield fake


@pytest.fixture(scope="session")
def billing_server(backend: Backend, fake_dodo: FakeDodo) -> Iterator[ServerProcess]:
    env = {
        "IMAGEEXTRACT_DODO_API_KEY": API_KEY,
        "IMAGEEXTRACT_DODO_BASE_URL": fake_dodo.url,
        "IMAGEEXTRACT_DODO_ENVIRONMENT": "test_mode",
        "IMAGEEXTRACT_DODO_RETURN_URL": RETURN_URL,
        "IMAGEEXTRACT_DODO_TIMEOUT_SECONDS": "1",
        "IMAGEEXTRACT_DODO_MAX_RETRIES": "1",
        "IMAGEEXTRACT_DODO_WEBHOOK_SECRET": SECRET,
        "IMAGEEXTRACT_DODO_WEBHOOK_SECRET_PREVIOUS": PREVIOUS_SECRET,
        "IMAGEEXTRACT_DODO_WEBHOOK_SECRET_ROTATED_AT": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    env.update({f"IMAGEEXTRACT_DODO_PRODUCT_{plan.upper()}": pid for plan, pid in PRODUCTS.items()})
    proc = ServerProcess(backend, extra_env=env)
    yield proc
    proc.stop()


@pytest.fixture
async def bclient(billing_server: ServerProcess, fake_dodo: FakeDodo) -> AsyncIterator[httpx.AsyncClient]:
    fake_dodo.mode = "ok"
    async with httpx.AsyncClient(base_url=billing_server.base_url, timeout=30) as c:
        yield c
    fake_dodo.mode = "ok"


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def subscription_event(kind: str, *, account_id: str | None, sub_id: str, plan: str, at: datetime,
                       period_start: datetime, period_end: datetime, **data: Any) -> dict[str, Any]:
    """A subscription event shaped like the provider's (SDK types/subscription_*_webhook_event.py)."""
    body: dict[str, Any] = {
        "subscription_id": sub_id, "product_id": PRODUCTS.get(plan, plan), "status": kind.split(".")[1],
        "previous_billing_date": iso(period_start), "next_billing_date": iso(period_end),
        "cancel_at_next_billing_date": False, "metadata": {"account_id": account_id} if account_id else {},
        "customer": {"customer_id": "cus_1", "email": "buyer@example.com", "name": "Buyer"},
        "quantity": 1, "currency": "USD", "recurring_pre_tax_amount": 2900,
    }
    body.update(data)
    return {"business_id": "bus_test", "type": kind, "timestamp": iso(at), "data": body}


def signed_headers(body: bytes, *, secret: str = SECRET, msg_id: str | None = None,
                   sent_at: datetime | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{secrets.token_hex(10)}"
    sent_at = sent_at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=sent_at, data=body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature, "content-type": "application/json"}


async def deliver(client: httpx.AsyncClient, event: dict[str, Any], *, msg_id: str | None = None,
                  secret: str = SECRET, sent_at: datetime | None = None) -> httpx.Response:
    body = json.dumps(event).encode()
    return await client.post("/api/webhooks/payment", content=body,
                             headers=signed_headers(body, secret=secret, msg_id=msg_id, sent_at=sent_at))


async def assert_ledger_consistent(account_id: str) -> int:
    """The ledger sums to the cached balance, which is never negative; returns the balance."""
    from imageextract.models import Account
    from imageextract.services import ledger

    balance = (await Account.get(id=account_id)).credits
    assert balance >= 0
    assert await ledger.ledger_sum(account_id) == balance
    return balance
