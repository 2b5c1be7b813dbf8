"""What S3 checks on a presigned (query-string) SigV4 request, written from the AWS documentation
("Authenticating Requests: Using Query Parameters"), independent of botocore's signer.

moto's server does not verify presigned signatures (it accepts any body size, expired and altered URLs), so the
tests use this to show what real S3 would refuse: a request whose signed headers (Content-Length among them)
differ from the ones signed, an altered query, or a request past X-Amz-Expires.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def s3_accepts(url: str, *, method: str, headers: dict[str, str], secret: str, now: datetime | None = None) -> bool:
    """Whether S3 would accept `method url` sent with `headers` (the Host header is taken from the URL)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return False
    signed = params["X-Amz-SignedHeaders"].split(";")
    sent = {k.lower(): " ".join(v.split()) for k, v in headers.items()} | {"host": parts.netloc}
    if any(name not in sent for name in signed):
        return False
    issued = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > issued + timedelta(seconds=int(params["X-Amz-Expires"])):
        return False
    canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted((k, v) for k, v in query
                                                                         if k != "X-Amz-Signature"))
    canonical_request = "\n".join([
        method, parts.path or "/", canonical_query, "".join(f"{name}:{sent[name]}\n" for name in signed),
        ";".join(signed), "UNSIGNED-PAYLOAD"])
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    day, region, service, terminator = scope.split("/")
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), service), terminator)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, params["X-Amz-Signature"])
