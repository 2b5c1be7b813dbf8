"""Authentication, one path for GraphQL, REST and websockets.

- API keys: `Authorization: Bearer ie_live_<secret>`. Looked up by SHA-256 (unique index), then compared in
  constant time. Revoked keys fail at once (status is read on every request, nothing is cached).
  `last_used` is written at most once a minute per key, with a conditional UPDATE, so a request storm
  costs one write a minute, not one per request.
- Sessions: email + password (argon2) login creates a server-side session row; the cookie holds a random
  token whose SHA-256 is the row's key. Logout revokes the row.
- Cross-site protection for cookie-authenticated unsafe requests: see `check_origin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from tortoise.expressions import Q

from imageextract.context import Context, Principal
from imageextract.errors import Forbidden, Unauthenticated, ValidationError
from imageextract.models import Account, ApiKey, Membership, Session, User
from imageextract.services.accounts import create_account, normalize_email
from imageextract.services.security import (
    API_KEY_PREFIX,
    constant_time_equal,
    new_token,
    sha256_hex,
    verify_password,
)
from imageextract.services.sql import Statement, attach, columns, load

SESSION_COOKIE = "ie_session"
GUEST_COOKIE = "ie_guest"
LAST_USED_EVERY = timedelta(seconds=60)
# What a key may do: project keys act as members of their account (jobs, reads), dashboard keys act
# with the role of the user who made them.
PROJECT_KEY_ROLE = "member"
# Every API request reads its key, the key's account and (a dashboard key) its user's membership of that
# account with the user, and the account's default project (where a job without `project_id` goes): one
# statement, its SQL written once (services/sql.py).
_KEY_AND_ACCOUNT = Statement(lambda: f"""
    SELECT {columns(ApiKey, "k")}, {columns(Account, "a", "a__")}, {columns(Membership, "m", "m__")},
           {columns(User, "u", "u__")},
           (SELECT dp."id" FROM "projects" dp WHERE dp."account_id"=a."id" AND dp."is_default" LIMIT 1)
             AS "default_project_id"
    FROM "api_keys" k JOIN "accounts" a ON a."id"=k."account_id"
    LEFT JOIN "memberships" m ON k."kind"='dashboard' AND m."user_id"=k."user_id" AND m."account_id"=k."account_id"
    LEFT JOIN "users" u ON u."id"=m."user_id"
    WHERE k."key_hash"=:digest""", point=True)


def _now() -> datetime:
    return datetime.now(UTC)


async def _key_with_account(digest: str) -> tuple[ApiKey, Membership | None, str | None] | None:
    """The key with its account attached, a dashboard key's membership (its user attached), and the id of
    the account's default project."""
    rows = await _KEY_AND_ACCOUNT.rows(digest=digest)
    if not rows:
        return None
    key = load(ApiKey, rows[0])
    assert key is not None
    attach(key, "account", load(Account, rows[0], "a__"))
    membership = load(Membership, rows[0], "m__")
    if membership is not None:
        attach(membership, "user", load(User, rows[0], "u__"))
    default_project = rows[0]["default_project_id"]
    return key, membership, str(default_project) if default_project is not None else None


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("Malformed Authorization header: expected 'Bearer ie_live_...'")
    return value.strip()


async def authenticate_api_key(token: str) -> Principal:
    if not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        raise Unauthenticated("Invalid API key")
    digest = sha256_hex(token)
    found = await _key_with_account(digest)
    if found is None or not constant_time_equal(found[0].key_hash, digest) or found[0].status != "active":
        raise Unauthenticated("Invalid or revoked API key")
    key, membership, default_project = found
    account: Account = key.account
    if account.status != "active":
        raise Forbidden("This account is suspended")
    role = PROJECT_KEY_ROLE
    user: User | None = None
    if key.kind == "dashboard":
        if membership is None:
            raise Unauthenticated("This key's user is no longer a member of the account")
        role = membership.role
        user = membership.user
    await touch_key(key)
    return Principal(method="api_key", account=account, role=role, user=user, membership=membership, api_key=key,
                     default_project_id=default_project)


async def touch_key(key: ApiKey) -> None:
    now = _now()
    if key.last_used is not None and now - key.last_used < LAST_USED_EVERY:
        return
    cutoff = now - LAST_USED_EVERY
    await ApiKey.filter(Q(id=key.id) & (Q(last_used__isnull=True) | Q(last_used__lt=cutoff))).update(last_used=now)
    key.last_used = now


async def authenticate_session(token: str) -> Principal:
    session = await Session.filter(token_hash=sha256_hex(token)).select_related("user", "account").first()
    if session is None or session.revoked_at is not None or session.expires_at <= _now():
        raise Unauthenticated("Session expired or signed out")
    membership = await Membership.filter(user_id=session.user_id,  # type: ignore[attr-defined]
                                         account_id=session.account_id).first()  # type: ignore[attr-defined]
    if membership is None:
        raise Unauthenticated("No longer a member of this account")
    if session.account.status != "active":
        raise Forbidden("This account is suspended")
    return Principal(
        method="session", account=session.account, role=membership.role, user=session.user,
        membership=membership, session_id=session.id,
    )


async def authenticate(*, authorization: str | None, session_token: str | None) -> Principal | None:
    """The one entry point: a bearer key wins over a cookie; no credentials means anonymous (None)."""
    token = parse_bearer(authorization)
    if token is not None:
        return await authenticate_api_key(token)
    if session_token:
        return await authenticate_session(session_token)
    return None


@dataclass
class LoginResult:
    token: str
    session: Session
    user: User
    account: Account
    expires_at: datetime


async def sign_up(ctx: Context, *, email: object, password: object, name: object = None,
                  user_agent: str = "") -> LoginResult:
    """A new account (its owner, a Default project, the free plan's credits) and a session for its owner."""

    if not isinstance(password, str):
        raise ValidationError("password is required", details={"field": "password"})
    if not isinstance(email, str):
        raise ValidationError("email is required", details={"field": "email"})
    display = name.strip() if isinstance(name, str) and name.strip() else email
    await create_account(name=display, email=email, password=password,
                         retention_days=ctx.settings.default_retention_days)
    return await login(ctx, email=email, password=password, user_agent=user_agent)


async def login(ctx: Context, *, email: str, password: str, user_agent: str = "") -> LoginResult:
    try:
        email = normalize_email(email)
    except ValidationError:
        raise Unauthenticated("Invalid email or password") from None
    user = await User.filter(email=email).first()
    if not verify_password(user.password_hash if user else None, password or "") or user is None:
        raise Unauthenticated("Invalid email or password")
    membership = await Membership.filter(user_id=user.id).order_by("created_at").select_related("account").first()
    if membership is None:
        raise Forbidden("This user belongs to no account")
    token = new_token()
    expires = _now() + timedelta(hours=ctx.settings.session_ttl_hours)
    session = await Session.create(
        token_hash=sha256_hex(token), user=user, account=membership.account, expires_at=expires,
        user_agent=(user_agent or "")[:300], ip=(ctx.client_ip or "")[:64],
    )
    return LoginResult(token=token, session=session, user=user, account=membership.account, expires_at=expires)


async def logout(ctx: Context) -> bool:
    principal = ctx.principal
    if principal is None or principal.session_id is None:
        return False
    updated = await Session.filter(id=principal.session_id, revoked_at__isnull=True).update(revoked_at=_now())
    return updated > 0


def check_origin(*, method: str, origin: str | None, referer: str | None, sec_fetch_site: str | None,
                 host_origin: str, allowed: list[str]) -> None:
    """Reject cross-site unsafe requests that ride on the session cookie (CSRF).

    Browsers send `Origin` on every cross-origin POST; a request with neither Origin nor Referer and no
    Sec-Fetch-Site is not from a browser and cannot carry a victim's cookie by accident.
    """
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return
    trusted = {host_origin.rstrip("/").lower(), *(o.rstrip("/").lower() for o in allowed)}
    source = origin
    if not source and referer:
        parts = urlsplit(referer)
        source = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
    if source:
        if source.rstrip("/").lower() not in trusted:
            raise Forbidden("Cross-site request refused", details={"origin": source})
        return
    if sec_fetch_site and sec_fetch_site not in ("same-origin", "none"):
        raise Forbidden("Cross-site request refused", details={"sec_fetch_site": sec_fetch_site})
