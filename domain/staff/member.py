"""Staff members: who may review, edit, audit and administer, and who did what."""

from __future__ import annotations

from enum import Enum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain.errors import DomainError


class Role(str, Enum):
    REVIEWER = "reviewer"
    EDITOR = "editor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class NotPermitted(DomainError):
    """The acting staff member lacks the role, or is no longer active."""


class StaffConflict(DomainError):
    """The staff change contradicts the member's state (already enrolled, deactivated, an admin acting on themselves)."""


def staff_id(email: str) -> UUID:
    """Ids follow from email addresses, so an address is enrolled at most once."""
    return uuid5(NAMESPACE_URL, f"agora:staff:{email.strip().lower()}")


@stored_as("domain.staff")
class StaffMember(Aggregate):
    class Enrolled(Aggregate.Created):
        email: str
        name: str
        password_hash: str
        roles: tuple[Role, ...]
        by: UUID | None  # None: bootstrapped by an operator on the command line

    class RoleGranted(Aggregate.Event):
        role: Role
        by: UUID

    class RoleRevoked(Aggregate.Event):
        role: Role
        by: UUID

    class Deactivated(Aggregate.Event):
        by: UUID

    @staticmethod
    def create_id(email: str, **_: object) -> UUID:
        return staff_id(email)

    @event(Enrolled)
    def __init__(self, email: str, name: str, password_hash: str, roles: tuple[Role, ...], by: UUID | None) -> None:
        self.email = email
        self.name = name
        self.password_hash = password_hash
        self.roles = set(roles)
        self.active = True

    def require(self, role: Role) -> None:
        if not self.active:
            raise NotPermitted(f"{self.name}'s account is deactivated.")
        if role not in self.roles:
            raise NotPermitted(f"This needs the {role.value} role.")

    def grant(self, role: Role, by: StaffMember) -> None:
        by.require(Role.ADMIN)
        self._require_active()
        if role not in self.roles:
            self._grant(role, by.id)

    def revoke(self, role: Role, by: StaffMember) -> None:
        by.require(Role.ADMIN)
        if by.id == self.id and role is Role.ADMIN:
            raise StaffConflict("Admins cannot revoke their own admin role; ask another admin.")
        if role in self.roles:
            self._revoke(role, by.id)

    def deactivate(self, by: StaffMember) -> None:
        by.require(Role.ADMIN)
        if by.id == self.id:
            raise StaffConflict("Admins cannot deactivate themselves; ask another admin.")
        if self.active:
            self._deactivate(by.id)

    def _require_active(self) -> None:
        if not self.active:
            raise StaffConflict(f"{self.name}'s account is deactivated.")

    @event(RoleGranted)
    def _grant(self, role: Role, by: UUID) -> None:
        self.roles.add(role)

    @event(RoleRevoked)
    def _revoke(self, role: Role, by: UUID) -> None:
        self.roles.discard(role)

    @event(Deactivated)
    def _deactivate(self, by: UUID) -> None:
        self.active = False
