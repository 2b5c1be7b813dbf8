"""GraphQL billing reads: the plan catalog, an account's billing state before any subscription."""

from __future__ import annotations

from typing import Any

from tests.billing.gqlclient import run_gql
from tests.support import ServerProcess


async def test_plans_catalog_and_unsubscribed_billing(billing_server: ServerProcess,
                                                      account: dict[str, Any]) -> None:
    data, errors = await run_gql(billing_server.base_url,
                                 "{ plans { plan purchasable creditsIncluded dailyCreditCap bulkMaxUrls } }")
    assert errors is None
    assert data["plans"] == [
        {"plan": "free", "purchasable": False, "creditsIncluded": 50, "dailyCreditCap": 10, "bulkMaxUrls": 1},
        {"plan": "starter", "purchasable": True, "creditsIncluded": 1000, "dailyCreditCap": -1, "bulkMaxUrls": 3},
        {"plan": "pro", "purchasable": True, "creditsIncluded": 5000, "dailyCreditCap": -1, "bulkMaxUrls": 5},
        {"plan": "scale", "purchasable": True, "creditsIncluded": 20000, "dailyCreditCap": -1, "bulkMaxUrls": 25},
        {"plan": "agency", "purchasable": True, "creditsIncluded": 50000, "dailyCreditCap": -1,
         "bulkMaxUrls": 50},
    ]
    query = "{ account { billing { plan status currentPeriodEnd cancelAtPeriodEnd subscriptionId } } }"
    data, errors = await run_gql(billing_server.base_url, query, headers=account["headers"])
    assert errors is None
    assert data["account"]["billing"] == {"plan": "pro", "status": "none", "currentPeriodEnd": None,
                                          "cancelAtPeriodEnd": False, "subscriptionId": None}
    _, errors = await run_gql(billing_server.base_url, query)
    assert errors and errors[0]["extensions"]["code"] == "unauthorized"
    _, errors = await run_gql(billing_server.base_url, "{ paymentEvents(first: 0) { totalCount } }",
                              headers=account["headers"])
    assert errors and errors[0]["extensions"]["code"] == "validation_error"
    _, errors = await run_gql(billing_server.base_url, '{ paymentEvents(after: "not-a-cursor") { totalCount } }',
                              headers=account["headers"])
    assert errors and errors[0]["extensions"]["code"] == "validation_error"
