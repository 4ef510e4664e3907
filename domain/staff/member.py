"""Staff members: who may review, edit, audit and administer, and who did what.

A member's name and email are sealed under a data key of their own, found again by a digest of
the email (like signups' contacts); their password hash is sealed under a key of its own, replaced
when the password changes. Erasing a former member destroys both keys: the log keeps their id and
what they did, and loses who they were. Enrolments recorded before this (version 1) hold the
email, name and password hash in clear; `clear` carries them until the member is resealed.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, NotAuthenticated
from domain.sealed import Sealed
from domain.topics import stored_as

ERASED_NAME = "erased staff member"


class Role(str, Enum):
    REVIEWER = "reviewer"
    EDITOR = "editor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class NotPermitted(DomainError):
    """The acting staff member lacks the role, or is no longer active."""


class StaffConflict(DomainError):
    """The staff change contradicts the member's state (already enrolled, deactivated, an admin acting on themselves)."""


class Contact(msgspec.Struct, frozen=True):
    name: str
    email: str


class Clear(msgspec.Struct, frozen=True):
    """What a version 1 enrolment recorded in clear: in the log (and its backups) for good."""

    email: str
    name: str
    password_hash: str


def staff_id(email: str) -> UUID:
    """The id of a member enrolled before staff data was sealed (version 1): it followed from the
    address. Members enrolled since have random ids, found by the email's digest in the key store."""
    return uuid5(NAMESPACE_URL, f"agora:staff:{email.strip().lower()}")


@stored_as("domain.staff")
class StaffMember(Aggregate):
    class Enrolled(Aggregate.Created):
        class_version = 2
        contact: Sealed | None  # name and email under the member's key; None in a version 1 enrolment
        credential: Sealed | None  # the password hash, under a key of its own
        roles: tuple[Role, ...]
        by: UUID | None  # None: bootstrapped by an operator on the command line
        clear: Clear | None  # only ever from a version 1 enrolment

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["clear"] = {k: state.pop(k) for k in ("email", "name", "password_hash")}
            state["contact"] = state["credential"] = None

    class Resealed(Aggregate.Event):
        """A version 1 member's clear data sealed: read from here on, and erasable (the clear copy stays in the log)."""

        contact: Sealed
        credential: Sealed
        by: UUID | None

    class RoleGranted(Aggregate.Event):
        role: Role
        by: UUID

    class RoleRevoked(Aggregate.Event):
        role: Role
        by: UUID

    class Deactivated(Aggregate.Event):
        by: UUID

    class Reactivated(Aggregate.Event):
        by: UUID

    class SignedOut(Aggregate.Event):
        """Every token issued to the member before this stops working."""

        by: UUID

    class PasswordChanged(Aggregate.Event):
        """A new password hash under a new key (the old key is destroyed); every earlier token stops working."""

        credential: Sealed
        key_ids: list[str]  # destroyed: the old hash's key (none for a member enrolled in clear)
        by: UUID | None  # the member (with their password or an admin's reset token); None: the operator

    class ResetIssued(Aggregate.Event):
        """An admin's one-time reset: the token itself is shown to the admin once, never recorded."""

        reset_hash: str  # sha256 of the token's secret
        until: datetime
        by: UUID

    class Erased(Aggregate.Event):
        key_ids: list[str]  # destroyed: the name, email and password hash can no longer be read
        by: UUID | None  # None: the operator

    @event(Enrolled)
    def __init__(self, id: UUID, contact: Sealed | None, credential: Sealed | None, roles: tuple[Role, ...], by: UUID | None, clear: Clear | None) -> None:
        self.contact = contact
        self.credential = credential
        self.clear = clear
        self.enrolled_in_clear = clear is not None  # the log holds their data in clear, erased or not
        self.roles = set(roles)
        self.active = True
        self.erased = False
        self.generation = 0  # tokens carry it; signing out moves it on
        self.reset: tuple[str, datetime] | None = None  # an unused reset's hash and expiry

    @property
    def key_ids(self) -> list[str]:
        return [s.key_id for s in (self.contact, self.credential) if s is not None]

    def require(self, role: Role) -> None:
        if not self.active:
            raise NotPermitted("This account is deactivated.")
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

    def reactivate(self, by: StaffMember) -> None:
        by.require(Role.ADMIN)
        if self.erased:
            raise StaffConflict("An erased member cannot be reactivated: enrol the address again, as someone new.")
        if not self.active:
            self._reactivate(by.id)

    def sign_out(self, by: StaffMember) -> None:
        """End every session of the member: themselves, or an admin for them."""
        if by.id != self.id:
            by.require(Role.ADMIN)
        self._sign_out(by.id)

    def change_password(self, credential: Sealed, by: UUID | None) -> None:
        """`by`: the member, who proved their old password; None: the operator, on the command line."""
        if self.erased:
            raise StaffConflict("An erased member has no password to change.")
        if by is not None:
            self._require_active()
        self._change_password(credential, [self.credential.key_id] if self.credential else [], by)

    def issue_reset(self, reset_hash: str, until: datetime, by: StaffMember) -> None:
        by.require(Role.ADMIN)
        self._require_active()
        self._issue_reset(reset_hash, until, by.id)

    def check_reset(self, reset_hash: str, now: datetime) -> None:
        """Refuse unless the reset token an admin issued is this one, unused and unexpired."""
        if not (self.active and self.reset and hmac.compare_digest(self.reset[0], reset_hash) and now < self.reset[1]):
            raise NotAuthenticated("This reset token is wrong, used, replaced or expired; ask an admin for a new one.")

    def redeem_reset(self, reset_hash: str, credential: Sealed, now: datetime) -> None:
        """Set a new password with the reset token an admin issued; it works once, before it expires."""
        self.check_reset(reset_hash, now)
        self._change_password(credential, [self.credential.key_id] if self.credential else [], self.id)

    def reseal(self, contact: Sealed, credential: Sealed) -> None:
        if self.clear is None or self.contact is not None or self.erased:
            raise StaffConflict("Only a member enrolled in clear, not resealed or erased yet, can be resealed.")
        self._reseal(contact, credential, None)

    def erase(self, by: StaffMember | None) -> None:
        """Forget who the member was; erasing again records nothing (the caller destroys the keys again)."""
        if by is not None:
            by.require(Role.ADMIN)
        if self.active:
            raise StaffConflict("An active member cannot be erased; deactivate them first.")
        if not self.erased:
            self._erase(self.key_ids, by.id if by else None)

    def _require_active(self) -> None:
        if not self.active:
            raise StaffConflict("This account is deactivated.")

    @event(Resealed)
    def _reseal(self, contact: Sealed, credential: Sealed, by: UUID | None) -> None:
        self.contact = contact
        self.credential = credential

    @event(RoleGranted)
    def _grant(self, role: Role, by: UUID) -> None:
        self.roles.add(role)

    @event(RoleRevoked)
    def _revoke(self, role: Role, by: UUID) -> None:
        self.roles.discard(role)

    @event(Deactivated)
    def _deactivate(self, by: UUID) -> None:
        self.active = False
        self.generation += 1  # for good: a reactivation must not revive a token taken before
        self.reset = None

    @event(Reactivated)
    def _reactivate(self, by: UUID) -> None:
        self.active = True

    @event(SignedOut)
    def _sign_out(self, by: UUID) -> None:
        self.generation += 1

    @event(PasswordChanged)
    def _change_password(self, credential: Sealed, key_ids: list[str], by: UUID | None) -> None:
        self.credential = credential
        self.generation += 1
        self.reset = None

    @event(ResetIssued)
    def _issue_reset(self, reset_hash: str, until: datetime, by: UUID) -> None:
        self.reset = (reset_hash, until)

    @event(Erased)
    def _erase(self, key_ids: list[str], by: UUID | None) -> None:
        self.erased = True
        self.reset = None
        self.clear = None  # the log keeps a version 1 enrolment's clear copy; nothing reads it from here on
