"""Staff authentication (litestar's JWT backend) and role guards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import anyio
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from domain.errors import StaffNotFound
from domain.staff.member import Role, StaffMember

PUBLIC = ["^/consultations", "^/signups/", "^/schema", "^/staff/token$", "^/staff/password-reset$"]


async def current_staff(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> StaffMember | None:
    """The token's staff member, read from the event store on every request: a deactivated or
    signed-out member's tokens stop working at once (a token carries the member's generation)."""
    staff = connection.app.state.services.staff
    try:
        member = await anyio.to_thread.run_sync(staff.get, UUID(token.sub))
    except (StaffNotFound, ValueError):
        return None
    return member if member.active and token.extras.get("generation", 0) == member.generation else None


def staff_auth(secret: str, token_hours: int) -> JWTAuth[StaffMember, Token]:
    return JWTAuth[StaffMember, Token](
        retrieve_user_handler=current_staff,
        token_secret=secret,
        default_token_expiration=timedelta(hours=token_hours),
        exclude=PUBLIC,
    )


def requires(*roles: Role) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard: the staff member needs one of `roles`."""

    def guard(connection: ASGIConnection[Any, StaffMember, Any, Any], _: BaseRouteHandler) -> None:
        if not connection.user.roles & set(roles):
            raise PermissionDeniedException(f"This needs one of the roles: {', '.join(r.value for r in roles)}.")

    return guard
