"""Staff accounts: signing in, and admins enrolling members and changing their roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token

from api.auth import requires
from api.problems import STAFF_PROBLEMS, documented
from api.services import Services
from domain.staff.member import ERASED_NAME, Role, StaffMember

Email = Annotated[str, msgspec.Meta(max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class SignedIn(msgspec.Struct):
    token: str
    staff_id: UUID
    roles: list[Role]


class Enrolment(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Annotated[str, msgspec.Meta(max_length=200)]
    password: Password
    roles: Annotated[list[Role], msgspec.Meta(max_length=4)] = []


class Enrolled(msgspec.Struct):
    id: UUID


class Profile(msgspec.Struct):
    id: UUID
    email: str
    name: str
    roles: list[Role]




def signed_in(member: StaffMember, services: Services) -> Response[SignedIn]:
    token = services.auth.create_token(identifier=str(member.id), token_extras={"generation": member.generation})
    return Response(SignedIn(token, member.id, sorted(member.roles)), status_code=201)


@post("/staff/token", responses=documented(400, 401, 429), sync_to_thread=True, opt={"rate_limit": "sign-in"}, summary="Sign in: a token for the Authorization header")
def sign_in(data: JSONBody[Credentials], services: NamedDependency[Services]) -> Response[SignedIn]:
    return signed_in(services.staff.authenticate(data.email, data.password), services)


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    old_password: Password
    password: Password


@post("/staff/me/password", responses={**STAFF_PROBLEMS, **documented(429)}, sync_to_thread=True, opt={"rate_limit": "sign-in"}, summary="Change your password: your other tokens stop working, a new one is returned")
def change_password(data: JSONBody[PasswordChange], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> Response[SignedIn]:
    return signed_in(services.staff.change_password(request.user.id, data.old_password, data.password), services)


class Reset(msgspec.Struct):
    token: str  # shown once: give it to the member, who sets a new password with it
    expires: datetime


@post("/staff/{member_id:uuid}/password-reset", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="A one-time token for a member to set a new password with")
def issue_reset(member_id: FromPath[UUID], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> Response[Reset]:
    return Response(Reset(*services.staff.issue_reset(member_id, by=request.user.id)), status_code=201)


class Redemption(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=200)]
    password: Password


@post("/staff/password-reset", responses=documented(400, 401, 422, 429), sync_to_thread=True, opt={"rate_limit": "sign-in"}, summary="Set a new password with an admin's reset token, and sign in")
def redeem_reset(data: JSONBody[Redemption], services: NamedDependency[Services]) -> Response[SignedIn]:
    return signed_in(services.staff.redeem_reset(data.token, data.password), services)


@get("/staff/me", responses=STAFF_PROBLEMS, sync_to_thread=True, summary="The signed-in staff member")
def me(request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> Profile:
    member = request.user
    contact = services.staff.contact(member)
    assert contact is not None  # an erased member is deactivated, and cannot sign in
    return Profile(member.id, contact.email, contact.name, sorted(member.roles))


class Member(msgspec.Struct):
    id: UUID
    email: str | None  # null once erased
    name: str
    roles: list[Role]
    active: bool
    erased: bool


@get("/staff", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Every staff member, with roles and state")
def members(services: NamedDependency[Services]) -> list[Member]:
    return [
        Member(m.id, c.email if c else None, c.name if c else ERASED_NAME, sorted(m.roles), m.active, m.erased)
        for m, c in services.staff.members()
    ]


@post("/staff/{member_id:uuid}/reactivate", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Reactivate a deactivated member")
def reactivate(member_id: FromPath[UUID], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.reactivate(member_id, by=request.user.id)


@post("/staff/me/sign-out", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, summary="Sign out: every token of yours stops working")
def sign_out(request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.sign_out(request.user.id, by=request.user.id)


@post("/staff/{member_id:uuid}/sign-out", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Sign a member out: their tokens stop working")
def sign_out_member(member_id: FromPath[UUID], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.sign_out(member_id, by=request.user.id)


@post("/staff", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Enrol a staff member")
def enrol(data: JSONBody[Enrolment], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> Enrolled:
    return Enrolled(services.staff.enrol(data.email, data.name, data.password, data.roles, by=request.user.id))


@put("/staff/{member_id:uuid}/roles/{role:str}", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Grant a role")
def grant(member_id: FromPath[UUID], role: FromPath[Role], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.grant(member_id, role, by=request.user.id)


@delete("/staff/{member_id:uuid}/roles/{role:str}", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Revoke a role")
def revoke(member_id: FromPath[UUID], role: FromPath[Role], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.revoke(member_id, role, by=request.user.id)


@post("/staff/{member_id:uuid}/deactivate", responses=STAFF_PROBLEMS, status_code=204, sync_to_thread=True, guards=[requires(Role.ADMIN)], summary="Deactivate: the member's tokens stop working")
def deactivate(member_id: FromPath[UUID], request: Request[StaffMember, Token, object], services: NamedDependency[Services]) -> None:
    services.staff.deactivate(member_id, by=request.user.id)


routes = [sign_in, me, members, enrol, grant, revoke, deactivate, reactivate, sign_out, sign_out_member, change_password, issue_reset, redeem_reset]
