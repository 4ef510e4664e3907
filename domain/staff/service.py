"""Staff accounts: enrolment by an admin (or the operator's bootstrap), sign-in, roles, deactivation."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import cached_property
from uuid import UUID

import argon2

from domain import text
from domain.core import Agora
from domain.errors import FieldError, InvalidInput, NotAuthenticated, StaffNotFound
from domain.staff.member import Role, StaffConflict, StaffMember, staff_id


class Staff:
    def __init__(self, app: Agora, password_profile: str) -> None:
        """`password_profile` names one of argon2's profiles (AGORA_PASSWORD_PROFILE)."""
        self.app = app
        self.passwords = argon2.PasswordHasher.from_parameters(getattr(argon2.profiles, password_profile))

    @cached_property
    def _dummy_hash(self) -> str:
        return self.passwords.hash(secrets.token_urlsafe(16))

    def enrol(self, email: str, name: str, password: str, roles: Sequence[Role], by: UUID | None) -> UUID:
        """Enrol a staff member; `by` is the admin doing it (None: the operator's bootstrap)."""
        if by is not None:
            self.get(by).require(Role.ADMIN)
        name = text.name(name)
        _check_credentials(email, name, password)
        if self.app.exists(staff_id(email)):
            raise StaffConflict(f"{email} is already enrolled.")
        member = StaffMember(email=email.strip().lower(), name=name, password_hash=self.passwords.hash(password), roles=tuple(roles), by=by)
        self.app.save(member)
        return member.id

    def get(self, member_id: UUID) -> StaffMember:
        member = self.app.find(member_id, StaffMember)
        if member is None:
            raise StaffNotFound(member_id)
        return member

    def authenticate(self, email: str, password: str) -> StaffMember:
        refused = NotAuthenticated("Wrong email or password, or the account is deactivated.")
        member = self.app.find(staff_id(email), StaffMember)
        # Verify even for an unknown address, so that it takes as long as a wrong password.
        try:
            self.passwords.verify(member.password_hash if member else self._dummy_hash, password)
        except argon2.exceptions.VerificationError:
            raise refused from None
        if member is None or not member.active:
            raise refused
        return member

    def grant(self, member_id: UUID, role: Role, by: UUID) -> None:
        member = self.get(member_id)
        member.grant(role, self.get(by))
        self.app.save(member)

    def revoke(self, member_id: UUID, role: Role, by: UUID) -> None:
        member = self.get(member_id)
        member.revoke(role, self.get(by))
        self.app.save(member)

    def deactivate(self, member_id: UUID, by: UUID) -> None:
        member = self.get(member_id)
        member.deactivate(self.get(by))
        self.app.save(member)


def _check_credentials(email: str, name: str, password: str) -> None:
    errors = []
    if not _EMAIL.fullmatch(email.strip()):
        errors.append(FieldError("email", "Expected an email address."))
    if problem := text.name_problem(name):
        errors.append(FieldError("name", problem))
    if not 12 <= len(password) <= 1024:
        errors.append(FieldError("password", "A password needs at least 12 characters."))
    if errors:
        raise InvalidInput(errors)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
