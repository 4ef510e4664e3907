"""Who is coming to a working session: names and emails, for admins only."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.security.jwt import Token

from api.auth import requires
from api.problems import STAFF_PROBLEMS
from api.services import Services
from domain.access.service import ATTENDEES
from domain.staff.member import Role, StaffMember
from runtime import System


class Attendee(msgspec.Struct):
    name: str
    email: str
    session_id: str


@get(
    "/staff/consultations/{slug:str}/sessions/{session_id:str}/attendees",
    sync_to_thread=True,
    guards=[requires(Role.ADMIN)],
    responses=STAFF_PROBLEMS,
    summary="Confirmed attendees of a session, with names and emails (admins only)",
)
def attendees(
    slug: FromPath[str], session_id: FromPath[str], services: NamedDependency[Services], system: NamedDependency[System],
    request: Request[StaffMember, Token, Any],
) -> list[Attendee]:
    found = [Attendee(c.name, c.email, s.session_id) for s, c in services.signups.attendees(slug, session_id)]
    system.access.record(request.user.id, ATTENDEES, f"{slug}/{session_id}")  # names and emails: who saw them is on record
    return found
