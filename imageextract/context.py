"""The transport-neutral request context every service receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from imageextract.errors import Unauthenticated

if TYPE_CHECKING:
    from imageextract.config import Settings
    from imageextract.models import Account, ApiKey, Membership, User
    from imageextract.runtime import Runtime

AuthMethod = Literal["api_key", "session", "guest"]


@dataclass
class Principal:
    """Who is calling: an account reached through an API key or a browser session."""

    method: AuthMethod
    account: Account
    role: str  # owner | admin | member (what the caller may do in `account`)
    user: User | None = None
    membership: Membership | None = None
    api_key: ApiKey | None = None
    session_id: str | None = None
    # The account's default project, when authentication read it with the key (None: not read; ask the database).
    default_project_id: str | None = None

    @property
    def account_id(self) -> str:
        return str(self.account.id)

    @property
    def project_id(self) -> str | None:
        """The project a project key is bound to (None for dashboard keys and sessions)."""
        if self.api_key is not None and self.api_key.kind == "project":
            return str(self.api_key.project_id)  # type: ignore[attr-defined]
        return None


@dataclass
class Context:
    """Everything a service may need besides its arguments. Built once per request or per task."""

    settings: Settings
    principal: Principal | None = None
    client_ip: str | None = None
    guest_token: str | None = None  # the guest cookie's value (owns guest jobs)
    minted_guest_token: str | None = None  # set by guests.ensure_guest: the adapter must send it as a cookie
    base_url: str | None = None  # the request's own origin, for absolute URLs
    services: Runtime = None  # type: ignore[assignment]  # the process's runtime (storage, events, broker)
    loaders: dict[str, Any] = field(default_factory=dict)
    enqueue: Callable[..., Any] | None = None
    auth_error: Exception | None = None  # why credentials that were sent were refused

    def check_credentials(self) -> None:
        """Credentials that were sent and refused fail the call, also where anonymous callers are welcome
        (a revoked key must never act as a guest). Services call this first; sign-up and login do not."""
        if self.auth_error is not None:
            raise self.auth_error

    def require_principal(self) -> Principal:
        if self.auth_error is not None:
            raise self.auth_error
        if self.principal is None:
            raise Unauthenticated("Authentication required: send 'Authorization: Bearer ie_live_...' or sign in.")
        return self.principal
