"""Webhook signatures: the documented scheme and Standard Webhooks, from one `whsec_` secret.

- Documented (shared/spec/000): `X-ImageExtract-Signature` = hex HMAC-SHA256 keyed with the whole secret
  string (`whsec_...`, UTF-8) over `f"{timestamp}.{raw_body}"`, exactly as the Python and Node snippets do.
- Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256>` keyed with the base64-decoded bytes after
  `whsec_`, over `f"{webhook-id}.{webhook-timestamp}.{raw_body}"`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def documented_signature(secret: str, timestamp: str, body: str) -> str:
    payload = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: str, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, delivery_id: str, timestamp: int, body: str) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": "ImageExtract-Webhooks/1.0",
        "X-ImageExtract-Signature": documented_signature(secret, ts, body),
        "X-ImageExtract-Timestamp": ts,
        "X-ImageExtract-Delivery-Id": delivery_id,
        "webhook-id": delivery_id,
        "webhook-timestamp": ts,
        "webhook-signature": standard_signature(secret, delivery_id, ts, body),
    }
