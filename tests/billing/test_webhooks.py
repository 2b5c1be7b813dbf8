"""POST /api/webhooks/payment: Standard Webhooks signatures, storage once per webhook-id, the lifecycle."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from imageextract.models import Account, LedgerEntry, PaymentEvent, Subscription
from tests.billing.conftest import (
    PREVIOUS_SECRET,
    assert_ledger_consistent,
    deliver,
    new_secret,
    signed_headers,
    subscription_event,
)
from tests.billing.gqlclient import run_gql
from tests.factories import make_account
from tests.support import ServerProcess

BILLING = "{ account { plan credits billing { plan status currentPeriodEnd cancelAtPeriodEnd } } }"
NOW = datetime.now(UTC).replace(microsecond=0)
T = NOW - timedelta(days=31)  # first period [T, T+30d] is over; the renewal's [T+30d, T+60d] runs now
DAY = timedelta(days=1)


def sub_id() -> str:
    return f"sub_{secrets.token_hex(6)}"


async def billing_of(server: ServerProcess, headers: dict[str, str]) -> dict[str, Any]:
    data, errors = await run_gql(server.base_url, BILLING, headers=headers)
    assert errors is None, errors
    return data["account"]


async def grants(account_id: str) -> list[int]:
    return [e.amount for e in await LedgerEntry.filter(account_id=account_id, entry_type="plan_grant").order_by("id")]


async def test_active_renewal_and_replays(bclient: httpx.AsyncClient, billing_server: ServerProcess,
                                          account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="scale", at=T,
                                period_start=T, period_end=T + 30 * DAY)
    r = await deliver(bclient, active, msg_id=f"msg_a_{sid}")
    assert r.status_code == 200 and r.json() == {"received": True}
    assert (await Account.get(id=aid)).plan == "scale"
    assert await grants(aid) == [20000]
    assert await assert_ledger_consistent(aid) == 5000 + 20000

    replay = await deliver(bclient, active, msg_id=f"msg_a_{sid}")
    assert replay.status_code == 200 and replay.json() == {"received": True}
    assert await PaymentEvent.filter(subscription_id=sid).count() == 1
    assert await grants(aid) == [20000]

    renewed = subscription_event("subscription.renewed", account_id=aid, sub_id=sid, plan="scale", at=T + 30 * DAY,
                                 period_start=T + 30 * DAY, period_end=T + 60 * DAY, payment_id="pay_r1")
    assert (await deliver(bclient, renewed)).status_code == 200
    # The provider redelivers the same renewal under a new webhook-id: recorded, not granted again.
    assert (await deliver(bclient, renewed)).status_code == 200
    assert await grants(aid) == [20000, 20000]
    assert await PaymentEvent.filter(subscription_id=sid).count() == 3
    assert await assert_ledger_consistent(aid) == 45000
    view = await billing_of(billing_server, account["headers"])
    assert view["plan"] == "scale" and view["credits"] == 45000
    assert view["billing"] == {"plan": "scale", "status": "active", "cancelAtPeriodEnd": False,
                               "currentPeriodEnd": (T + 60 * DAY).isoformat()}
    limits = (await bclient.get("/api/v1/account/limits", headers=account["headers"])).json()["limits"]
    assert limits["plan"] == "scale" and limits["bulk_max_urls"] == 25


async def test_rejected_deliveries_record_nothing(bclient: httpx.AsyncClient, account: dict[str, Any]) -> None:
    aid = account["account_id"]
    event = subscription_event("subscription.active", account_id=aid, sub_id=sub_id(), plan="scale", at=T,
                               period_start=T, period_end=T + 30 * DAY)
    body = json.dumps(event).encode()

    async def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
        return await bclient.post("/api/webhooks/payment", content=content, headers=headers)

    good = signed_headers(body)
    tampered = body.replace(b'"scale', b'"agency').replace(b"prod_scale_1", b"prod_agency_1")
    unknown = json.dumps({**event, "type": "subscription.teleported"}).encode()
    no_sub = json.dumps({**event, "data": {**event["data"], "subscription_id": None}}).encode()
    bad_time = json.dumps({**event, "timestamp": "yesterday"}).encode()
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("tampered body", tampered, good, "invalid_signature"),
        ("wrong secret", body, signed_headers(body, secret=new_secret()), "invalid_signature"),
        ("stale timestamp", body, signed_headers(body, sent_at=NOW - timedelta(minutes=6)), "stale_timestamp"),
        ("future timestamp", body, signed_headers(body, sent_at=datetime.now(UTC) + timedelta(minutes=6)),
         "stale_timestamp"),
        ("no signature", body, {k: v for k, v in good.items() if k != "webhook-signature"}, "invalid_signature"),
        ("garbage signature", body, {**good, "webhook-signature": "v1,!!not-base64!!"}, "invalid_signature"),
        ("signature without version", body, {**good, "webhook-signature": "deadbeef"}, "invalid_signature"),
        ("timestamp not a number", body, {**good, "webhook-timestamp": "soon"}, "invalid_signature"),
        ("unknown type", unknown, signed_headers(unknown), "unknown_event_type"),
        ("signed non-JSON", b"not json", signed_headers(b"not json"), "validation_error"),
        ("signed JSON array", b"[1]", signed_headers(b"[1]"), "validation_error"),
        ("no subscription id", no_sub, signed_headers(no_sub), "validation_error"),
        ("bad event timestamp", bad_time, signed_headers(bad_time), "validation_error"),
    ]
    for name, content, headers, code in cases:
        r = await post(content, headers)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"]["code"] == code, (name, r.json())
        assert await PaymentEvent.filter(provider_event_id=headers.get("webhook-id", "-")).count() == 0, name
    huge = await post(b"x" * (1024 * 1024 + 1), good)
    assert huge.status_code == 413
    assert await PaymentEvent.filter(account_id=aid).count() == 0
    assert (await Account.get(id=aid)).plan == "pro"
    assert await assert_ledger_consistent(aid) == 5000


async def test_previous_secret_is_accepted_during_rotation(bclient: httpx.AsyncClient,
                                                           account: dict[str, Any]) -> None:
    aid = account["account_id"]
    event = subscription_event("subscription.active", account_id=aid, sub_id=sub_id(), plan="starter", at=T,
                               period_start=T, period_end=NOW + 30 * DAY)
    r = await deliver(bclient, event, secret=PREVIOUS_SECRET)
    assert r.status_code == 200
    assert (await Account.get(id=aid)).plan == "starter"
    assert await grants(aid) == [1000]


async def test_renewed_before_active(bclient: httpx.AsyncClient, billing_server: ServerProcess,
                                     account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    renewed = subscription_event("subscription.renewed", account_id=aid, sub_id=sid, plan="pro", at=T + 30 * DAY,
                                 period_start=T + 30 * DAY, period_end=T + 60 * DAY)
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="pro", at=T,
                                period_start=T, period_end=T + 30 * DAY)
    assert (await deliver(bclient, renewed)).status_code == 200
    assert (await deliver(bclient, active)).status_code == 200
    outcomes = [e.outcome for e in await PaymentEvent.filter(subscription_id=sid).order_by("created_at")]
    assert outcomes == ["applied", "superseded"]
    sub = await Subscription.get(provider_subscription_id=sid)
    assert sub.status == "active" and sub.current_period_end == T + 60 * DAY
    assert await grants(aid) == [5000, 5000]  # both periods were paid for
    view = await billing_of(billing_server, account["headers"])
    assert view["billing"]["currentPeriodEnd"] == (T + 60 * DAY).isoformat()
    await assert_ledger_consistent(aid)


async def test_cancelled_before_renewed(bclient: httpx.AsyncClient, billing_server: ServerProcess,
                                        account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    period2 = {"period_start": T + 30 * DAY, "period_end": T + 60 * DAY}
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="agency", at=T,
                                period_start=T, period_end=T + 30 * DAY)
    renewed = subscription_event("subscription.renewed", account_id=aid, sub_id=sid, plan="agency",
                                 at=T + 30 * DAY, **period2)
    cancelled = subscription_event("subscription.cancelled", account_id=aid, sub_id=sid, plan="agency",
                                   at=T + 30 * DAY + timedelta(hours=5), **period2)
    for event in (active, cancelled, renewed):
        assert (await deliver(bclient, event)).status_code == 200
    view = await billing_of(billing_server, account["headers"])
    # Cancelled after the renewal by the provider's clock: cancelled, the plan kept to the period's end.
    assert view["billing"] == {"plan": "agency", "status": "cancelled", "cancelAtPeriodEnd": True,
                               "currentPeriodEnd": (T + 60 * DAY).isoformat()}
    assert await grants(aid) == [50000, 50000]
    await assert_ledger_consistent(aid)


async def test_back_to_free_at_period_end(bclient: httpx.AsyncClient, billing_server: ServerProcess,
                                          account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    end = datetime.now(UTC) + timedelta(seconds=3)
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="scale", at=NOW - DAY,
                                period_start=NOW - DAY, period_end=end)
    cancelled = subscription_event("subscription.cancelled", account_id=aid, sub_id=sid, plan="scale", at=NOW,
                                   period_start=NOW - DAY, period_end=end)
    assert (await deliver(bclient, active)).status_code == 200
    assert (await deliver(bclient, cancelled)).status_code == 200
    assert (await Account.get(id=aid)).plan == "scale"  # paid until the period's end
    for _ in range(100):
        if (await Account.get(id=aid)).plan == "free":
            break
        await asyncio.sleep(0.2)
    assert (await Account.get(id=aid)).plan == "free"
    view = await billing_of(billing_server, account["headers"])
    assert view["plan"] == "free" and view["billing"]["status"] == "cancelled"
    assert view["credits"] == 25000  # credits already granted stay
    await assert_ledger_consistent(aid)


async def test_on_hold_past_period_end_is_free_at_once(bclient: httpx.AsyncClient, account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="starter", at=T,
                                period_start=T, period_end=T + 30 * DAY)
    on_hold = subscription_event("subscription.on_hold", account_id=aid, sub_id=sid, plan="starter",
                                 at=T + 30 * DAY, period_start=T, period_end=T + 30 * DAY)
    assert (await deliver(bclient, active)).status_code == 200
    assert (await deliver(bclient, on_hold)).status_code == 200
    assert (await Account.get(id=aid)).plan == "free"
    assert await assert_ledger_consistent(aid) == 6000


async def test_plan_changed_changes_limits_not_credits(bclient: httpx.AsyncClient, account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="starter", at=T,
                                period_start=T + 30 * DAY, period_end=T + 60 * DAY)
    changed = subscription_event("subscription.plan_changed", account_id=aid, sub_id=sid, plan="agency",
                                 at=T + 31 * DAY, period_start=T + 30 * DAY, period_end=T + 60 * DAY)
    assert (await deliver(bclient, active)).status_code == 200
    assert (await deliver(bclient, changed)).status_code == 200
    assert (await Account.get(id=aid)).plan == "agency"
    assert await grants(aid) == [1000]
    limits = (await bclient.get("/api/v1/account/limits", headers=account["headers"])).json()["limits"]
    assert limits["plan"] == "agency" and limits["bulk_max_urls"] == 50
    await assert_ledger_consistent(aid)


async def test_racing_duplicates_apply_once(bclient: httpx.AsyncClient, account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    event = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="scale", at=T,
                               period_start=T, period_end=T + 30 * DAY)
    body = json.dumps(event).encode()
    headers = signed_headers(body)
    answers = await asyncio.gather(*(bclient.post("/api/webhooks/payment", content=body, headers=headers)
                                     for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert all(a.json() == {"received": True} for a in answers)
    assert await PaymentEvent.filter(provider_event_id=headers["webhook-id"]).count() == 1
    assert await grants(aid) == [20000]
    # Two different deliveries about the same period (activation and first renewal) racing: one grant.
    renewed = subscription_event("subscription.renewed", account_id=aid, sub_id=sid, plan="scale",
                                 at=T + 30 * DAY, period_start=T + 30 * DAY, period_end=T + 60 * DAY)
    again = {**renewed, "type": "subscription.active"}
    answers = await asyncio.gather(*(deliver(bclient, e) for e in [renewed, again] * 4))
    assert [a.status_code for a in answers] == [200] * 8
    assert await grants(aid) == [20000, 20000]
    assert await assert_ledger_consistent(aid) == 45000


async def test_payments_refunds_disputes_are_recorded(bclient: httpx.AsyncClient, billing_server: ServerProcess,
                                                      account: dict[str, Any]) -> None:
    aid, sid = account["account_id"], sub_id()
    active = subscription_event("subscription.active", account_id=aid, sub_id=sid, plan="pro", at=T,
                                period_start=T, period_end=NOW + 30 * DAY)
    assert (await deliver(bclient, active)).status_code == 200
    pay_id = f"pay_{secrets.token_hex(6)}"
    base = {"business_id": "bus_test", "timestamp": NOW.isoformat()}
    events = [
        {**base, "type": "payment.succeeded", "data": {"payment_id": pay_id, "subscription_id": sid,
                                                       "total_amount": 2900, "currency": "USD", "metadata": {}}},
        {**base, "type": "payment.failed", "data": {"payment_id": "pay_other", "subscription_id": sid,
                                                    "total_amount": 2900, "currency": "USD", "metadata": {}}},
        {**base, "type": "refund.succeeded", "data": {"refund_id": "ref_1", "payment_id": pay_id, "amount": 2900,
                                                      "currency": "USD", "metadata": {}}},
        {**base, "type": "dispute.opened", "data": {"dispute_id": "dsp_1", "payment_id": pay_id, "amount": "2900",
                                                    "currency": "USD"}},
    ]
    for event in events:
        r = await deliver(bclient, event)
        assert r.status_code == 200, r.text
    stored = await PaymentEvent.filter(account_id=aid).order_by("created_at")
    assert [e.event_type for e in stored] == ["subscription.active"] + [e["type"] for e in events]
    assert [e.amount for e in stored[1:]] == [2900, 2900, 2900, 2900]
    assert await assert_ledger_consistent(aid) == 10000  # money events change no credits

    query = "{ paymentEvents(first: 3) { totalCount nodes { eventType amount currency paymentId outcome } } }"
    data, errors = await run_gql(billing_server.base_url, query, headers=account["headers"])
    assert errors is None
    assert data["paymentEvents"]["totalCount"] == 5
    assert data["paymentEvents"]["nodes"][0] == {"eventType": "dispute.opened", "amount": 2900, "currency": "USD",
                                                 "paymentId": pay_id, "outcome": "recorded"}
    other = await make_account(plan="pro")
    data, errors = await run_gql(billing_server.base_url, query, headers=other["headers"])
    assert errors is None and data["paymentEvents"]["totalCount"] == 0
    _, errors = await run_gql(billing_server.base_url, query)
    assert errors and errors[0]["extensions"]["code"] == "unauthorized"


async def test_unmatched_and_unknown_product_are_kept_not_applied(bclient: httpx.AsyncClient,
                                                                   account: dict[str, Any]) -> None:
    aid = account["account_id"]
    stray = subscription_event("subscription.active", account_id="acc_doesnotexist", sub_id=sub_id(),
                               plan="scale", at=T, period_start=T, period_end=T + 30 * DAY)
    r = await deliver(bclient, stray, msg_id=f"msg_stray_{secrets.token_hex(4)}")
    assert r.status_code == 200
    kept = await PaymentEvent.get(provider_event_id=r.request.headers["webhook-id"])
    assert kept.outcome == "unmatched_account" and kept.account_id is None  # type: ignore[attr-defined]
    odd = subscription_event("subscription.active", account_id=aid, sub_id=sub_id(), plan="prod_not_ours",
                             at=T, period_start=T, period_end=T + 30 * DAY)
    assert (await deliver(bclient, odd)).status_code == 200
    assert [e.outcome for e in await PaymentEvent.filter(account_id=aid)] == ["unknown_product"]
    assert (await Account.get(id=aid)).plan == "pro"
    assert await assert_ledger_consistent(aid) == 5000
