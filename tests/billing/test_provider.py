"""The provider edge: webhook secret rotation (24 h for the previous secret), and a provider that is down."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from imageextract.config import Settings
from imageextract.errors import ServiceUnavailable, ValidationError
from imageextract.services import dodo
from tests.billing.conftest import new_secret, signed_headers

CURRENT, PREVIOUS = new_secret(), new_secret()
BODY = json.dumps({"type": "payment.succeeded", "timestamp": "2026-01-01T00:00:00Z", "data": {}}).encode()


def _settings(rotated_ago: timedelta) -> Settings:
    return Settings(dodo_webhook_secret=CURRENT, dodo_webhook_secret_previous=PREVIOUS,
                    dodo_webhook_secret_rotated_at=datetime.now(UTC) - rotated_ago)


def test_previous_secret_window() -> None:
    fresh, stale = _settings(timedelta(hours=23)), _settings(timedelta(hours=25))
    for settings in (fresh, stale):
        assert dodo.verify_webhook(settings, body=BODY, headers=signed_headers(BODY, secret=CURRENT))["data"] == {}
    assert dodo.verify_webhook(fresh, body=BODY, headers=signed_headers(BODY, secret=PREVIOUS))["type"] \
        == "payment.succeeded"
    with pytest.raises(ValidationError) as info:
        dodo.verify_webhook(stale, body=BODY, headers=signed_headers(BODY, secret=PREVIOUS))
    assert info.value.code == "invalid_signature"


def test_rotation_needs_its_time_and_a_secret_is_needed() -> None:
    with pytest.raises(pydantic.ValidationError, match="ROTATED_AT"):
        Settings(dodo_webhook_secret=CURRENT, dodo_webhook_secret_previous=PREVIOUS)
    naive = Settings(dodo_webhook_secret=CURRENT, dodo_webhook_secret_previous=PREVIOUS,
                     dodo_webhook_secret_rotated_at=datetime(2026, 1, 1, 12, 0))
    assert naive.dodo_webhook_secret_rotated_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ServiceUnavailable) as info:
        dodo.verify_webhook(Settings(), body=BODY, headers=signed_headers(BODY))
    assert info.value.code == "billing_not_configured"


async def test_provider_down_is_a_bad_gateway() -> None:
    """Nothing listens on the provider's port: the real SDK's connection error becomes a 502, at once."""
    from imageextract.errors import BadGateway
    from tests.support import free_port

    settings = Settings(dodo_api_key="k", dodo_base_url=f"http://127.0.0.1:{free_port()}", dodo_max_retries=0)
    with pytest.raises(BadGateway) as info:
        await dodo.create_checkout_session(settings, product_id="prod_1", email="a@example.com", name=None,
                                           metadata={"account_id": "acc_1"}, return_url="https://x.test/")
    assert info.value.code == "payment_provider_error"
    assert info.value.details == {"reason": "APIConnectionError"}
