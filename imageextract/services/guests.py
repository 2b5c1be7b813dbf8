"""Guest identity: a caller without an account owns what it makes through a random token in a cookie.

Both doors call `ensure_guest` before a guest creates something, so a guest's job is always readable by the
guest that made it; the adapter sends `ctx.minted_guest_token` back as the `ie_guest` cookie.
"""

from __future__ import annotations

from imageextract.context import Context
from imageextract.services.security import new_token


def ensure_guest(ctx: Context) -> str | None:
    """The guest token that will own what this caller creates (None for an authenticated caller)."""
    if ctx.principal is not None:
        return None
    if not ctx.guest_token:
        ctx.guest_token = ctx.minted_guest_token = new_token()
    return ctx.guest_token
