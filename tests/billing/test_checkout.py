"""GET /api/billing/checkout and the createCheckout mutation: the real SDK against a loopback provider."""

from __future__ import annotations

import time
from typing import Any

import httpx

from imageextract.models import PaymentEvent
from tests.billing.conftest import PRODUCTS, RETURN_URL
from tests.billing.fakedodo import FakeDodo
from tests.billing.gqlclient import run_gql
from tests.factories import add_member
from tests.support import ServerProcess

CHECKOUT = "mutation($plan: String!) { createCheckout(plan: $plan) { url sessionId } }"


async def test_checkout_redirects_to_the_provider_session(bclient: httpx.AsyncClient, fake_dodo: FakeDodo,
                                                          account: dict[str, Any]) -> None:
    r = await bclient.get("/api/billing/checkout", params={"plan": "scale"}, headers=account["headers"])
    assert r.status_code == 302, r.text
    calls = fake_dodo.checkout_calls(account["account_id"])
    assert len(calls) == 1
    body = calls[0].body
    assert body["product_cart"] == [{"product_id": PRODUCTS["scale"], "quantity": 1}]
    assert body["customer"]["email"] == account["email"]
    assert body["metadata"] == {"account_id": account["account_id"]}
    assert body["return_url"] == RETURN_URL
    assert calls[0].headers["authorization"] == "Bearer dodo_test_key_123"
    assert r.headers["location"] == "https://test.checkout.example/session/" + r.headers["location"].rsplit("/", 1)[1]
    assert r.headers["location"].rsplit("/", 1)[1].startswith("cks_")


async def test_checkout_with_a_browser_session(bclient: httpx.AsyncClient, fake_dodo: FakeDodo) -> None:
    signup = await bclient.post("/api/auth/signup", json={"email": f"buyer-{time.time_ns()}@example.com",
                                                         "password": "correct horse battery", "name": "Buyer"})
    assert signup.status_code == 201, signup.text
    account_id = signup.json()["account"]["id"]
    r = await bclient.get("/api/billing/checkout?plan=starter", headers={"accept": "text/html"})
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://test.checkout.example/session/cks_")
    [call] = fake_dodo.checkout_calls(account_id)
    assert call.body["customer"]["email"] == signup.json()["user"]["email"]


async def test_checkout_without_credentials(bclient: httpx.AsyncClient, fake_dodo: FakeDodo) -> None:
    before = len(fake_dodo.calls)
    browser = await bclient.get("/api/billing/checkout?plan=pro",
                                headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 302 and browser.headers["location"] == "/login"
    api = await bclient.get("/api/billing/checkout?plan=pro", headers={"accept": "application/json"})
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
    bad_key = await bclient.get("/api/billing/checkout?plan=pro",
                                headers={"accept": "text/html", "authorization": "Bearer ie_live_nope"})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "unauthorized"
    stale = {"cookie": "ie_session=no-such-session"}  # an expired or revoked session
    expired = await bclient.get("/api/billing/checkout?plan=pro", headers={**stale, "accept": "text/html"})
    assert expired.status_code == 302 and expired.headers["location"] == "/login"
    expired_api = await bclient.get("/api/billing/checkout?plan=pro", headers=stale)
    assert expired_api.status_code == 401
    assert len(fake_dodo.calls) == before


async def test_checkout_bad_plans(bclient: httpx.AsyncClient, fake_dodo: FakeDodo, account: dict[str, Any]) -> None:
    h = account["headers"]
    for query in ("?plan=platinum", "?plan=free", "?plan=", "", "?plan=pro"):  # the account is on pro
        r = await bclient.get(f"/api/billing/checkout{query}", headers=h)
        assert r.status_code == 400, (query, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["details"]["field"] == "plan", query
    assert "already on the pro plan" in r.json()["error"]["message"]
    assert fake_dodo.checkout_calls(account["account_id"]) == []


async def test_checkout_needs_an_admin(bclient: httpx.AsyncClient, fake_dodo: FakeDodo,
                                       account: dict[str, Any]) -> None:
    member = await add_member(account["account_id"], role="member")
    r = await bclient.get("/api/billing/checkout?plan=scale", headers=member["headers"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    admin = await add_member(account["account_id"], role="admin")
    r = await bclient.get("/api/billing/checkout?plan=scale", headers=admin["headers"])
    assert r.status_code == 302
    assert fake_dodo.checkout_calls(account["account_id"])[0].body["customer"]["email"] == admin["email"]


async def test_provider_error_is_a_bounded_502(bclient: httpx.AsyncClient, fake_dodo: FakeDodo,
                                               account: dict[str, Any]) -> None:
    fake_dodo.mode = "error"
    r = await bclient.get("/api/billing/checkout?plan=scale", headers=account["headers"])
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "payment_provider_error"
    assert r.json()["error"]["details"] == {"provider_status": 500}
    assert len(fake_dodo.checkout_calls(account["account_id"])) == 2  # IMAGEEXTRACT_DODO_MAX_RETRIES=1


async def test_provider_timeout_is_a_504(bclient: httpx.AsyncClient, fake_dodo: FakeDodo,
                                         account: dict[str, Any]) -> None:
    fake_dodo.mode = "slow"
    fake_dodo.delay = 30
    started = time.monotonic()
    r = await bclient.get("/api/billing/checkout?plan=scale", headers=account["headers"])
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "payment_provider_timeout"
    # Two attempts of 1 s each plus backoff: far below the provider's 30 s stall.
    assert elapsed < 10, elapsed
    assert len(fake_dodo.checkout_calls(account["account_id"])) == 2


async def test_unconfigured_billing_is_a_503(server: ServerProcess, account: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
        r = await c.get("/api/billing/checkout?plan=scale", headers=account["headers"])
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "billing_not_configured"
        assert "IMAGEEXTRACT_DODO_API_KEY" in err["message"] and "IMAGEEXTRACT_DODO_PRODUCT_SCALE" in err["message"]
        hook = await c.post("/api/webhooks/payment", content=b"{}", headers={
            "webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
        assert hook.status_code == 503 and hook.json()["error"]["code"] == "billing_not_configured"
        assert "IMAGEEXTRACT_DODO_WEBHOOK_SECRET" in hook.json()["error"]["message"]
        _, errors = await run_gql(server.base_url, CHECKOUT, variables={"plan": "scale"}, headers=account["headers"])
        assert errors and errors[0]["extensions"]["code"] == "billing_not_configured"
    assert await PaymentEvent.filter(provider_event_id="msg_x").count() == 0


async def test_create_checkout_graphql_parity(billing_server: ServerProcess, bclient: httpx.AsyncClient,
                                              fake_dodo: FakeDodo, account: dict[str, Any]) -> None:
    """Same inputs on both doors: same status class, code and message."""
    base = billing_server.base_url
    data, errors = await run_gql(base, CHECKOUT, variables={"plan": "agency"}, headers=account["headers"])
    assert errors is None
    assert data["createCheckout"]["url"] == ("https://test.checkout.example/session/"
                                             + data["createCheckout"]["sessionId"])
    [call] = fake_dodo.checkout_calls(account["account_id"])
    assert call.body["product_cart"] == [{"product_id": PRODUCTS["agency"], "quantity": 1}]

    member = await add_member(account["account_id"], role="member")
    cases: list[tuple[str, dict[str, str]]] = [
        ("platinum", account["headers"]), ("pro", account["headers"]), ("scale", member["headers"]),
        ("scale", {}),
    ]
    for plan, headers in cases:
        rest = await bclient.get(f"/api/billing/checkout?plan={plan}", headers={**headers, "accept": "application/json"})
        _, errors = await run_gql(base, CHECKOUT, variables={"plan": plan}, headers=headers)
        assert errors is not None and rest.status_code >= 400, plan
        assert errors[0]["extensions"]["code"] == rest.json()["error"]["code"], plan
        assert errors[0]["message"] == rest.json()["error"]["message"], plan
    assert len(fake_dodo.checkout_calls(account["account_id"])) == 1
