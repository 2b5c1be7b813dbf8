"""Domain errors: a stable `code`, a human message and optional details; no HTTP status here.

Adapters map each code to their transport once (REST: rest_compat/errors.py, GraphQL: schema/errors.py).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    @property
    def extensions(self) -> dict[str, Any]:
        """graphql-core copies this onto the GraphQL error: `extensions.code` is the stable code."""
        return {"code": self.code, "details": self.details}


class ValidationError(DomainError):
    code = "validation_error"


class Unauthenticated(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InsufficientCredits(DomainError):
    code = "insufficient_credits"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, limit: int, reset_at: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
        self.limit = limit
        self.reset_at = reset_at


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"


class NotReady(DomainError):
    """The resource exists but is not ready yet (e.g. a job still processing)."""

    code = "not_ready"


class Unprocessable(DomainError):
    code = "unprocessable"


class ServiceUnavailable(DomainError):
    """A dependency we need (database, broker, a provider's configuration) is not available now."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None, details: Any = None,
                 code: str | None = None) -> None:
        super().__init__(message, details=details, code=code)
        self.retry_after = retry_after


class BadGateway(DomainError):
    """An upstream provider answered with an error."""

    code = "bad_gateway"


class GatewayTimeout(DomainError):
    """An upstream provider did not answer in time."""

    code = "gateway_timeout"
