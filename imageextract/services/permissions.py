"""Who may do what. Roles rank owner > admin > member; API keys carry a role (see services.auth)."""

from __future__ import annotations

from imageextract.context import Context, Principal
from imageextract.errors import Forbidden

_RANK = {"member": 1, "admin": 2, "owner": 3}


def require_role(ctx: Context, role: str) -> Principal:
    principal = ctx.require_principal()
    if _RANK.get(principal.role, 0) < _RANK[role]:
        raise Forbidden(
            f"This action needs the {role} role; you are {principal.role}.",
            details={"required_role": role, "role": principal.role},
        )
    return principal


def require_project_scope(principal: Principal, project_id: str) -> None:
    """A project key may only act on its own project."""
    bound = principal.project_id
    if bound is not None and bound != project_id:
        raise Forbidden("This API key is scoped to another project.", details={"project_id": project_id})
