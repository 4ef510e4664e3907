"""Staff accounts: enrolment by an admin (or the operator's bootstrap), sign-in, roles, deactivation, erasure."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from uuid import UUID, uuid4

import argon2
import msgspec
from eventsourcing.persistence import PersistenceError

from domain import text
from domain.core import Agora
from domain.errors import FieldError, InvalidInput, NotAuthenticated, ShredIncomplete, StaffNotFound
from domain.sealed import Sealed, Vault
from domain.staff.member import ERASED_NAME, Contact, Role, StaffConflict, StaffMember, staff_id

RESET_LIFETIME = timedelta(hours=24)


class Staff:
    def __init__(self, app: Agora, keys: Vault, password_profile: str) -> None:
        """`keys`: the staff's data keys, indexed by a digest of the email; `password_profile`
        names one of argon2's profiles (AGORA_PASSWORD_PROFILE)."""
        self.app = app
        self.keys = keys
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
        email = email.strip().lower()
        taken = StaffConflict(f"{email} is already enrolled.")
        if (old := self.app.find(staff_id(email), StaffMember)) is not None and not old.erased:
            raise taken  # enrolled in clear (version 1)
        candidate = uuid4()
        owner, key_id = self.keys.find_or_create(email_digest(email), str(candidate))
        if owner != str(candidate):
            raise taken
        made = [key_id]
        try:
            contact = self.keys.seal_with(key_id, _encode(Contact(name, email)), f"staff:{candidate}")
            (credential,) = self.keys.seal([(f"credential:{candidate}", self.passwords.hash(password))])
            made.append(credential.key_id)
            self.app.save(StaffMember(id=candidate, contact=contact, credential=credential, roles=tuple(roles), by=by, clear=None))
        except BaseException:
            self.keys.destroy(made, scrub=False)  # no key or email digest left behind a member never recorded
            raise
        return candidate

    def get(self, member_id: UUID) -> StaffMember:
        member = self.app.find(member_id, StaffMember)
        if member is None:
            raise StaffNotFound(member_id)
        return member

    def contact(self, member: StaffMember) -> Contact | None:
        """The member's name and email; None once erased."""
        if member.contact is not None:
            opened = self.keys.unseal(member.contact, f"staff:{member.id}")
            return None if opened is None else msgspec.json.decode(opened, type=Contact)
        return None if member.clear is None else Contact(member.clear.name, member.clear.email)

    def name(self, member_id: UUID) -> str | None:
        """How history names an actor: their name, "erased staff member", or None for no such member."""
        member = self.app.find(member_id, StaffMember)
        if member is None:
            return None
        contact = None if member.erased else self.contact(member)
        return contact.name if contact else ERASED_NAME

    def password_hash(self, member: StaffMember) -> str | None:
        if member.credential is not None:
            return self.keys.unseal(member.credential, f"credential:{member.id}")
        return None if member.clear is None else member.clear.password_hash

    def authenticate(self, email: str, password: str) -> StaffMember:
        refused = NotAuthenticated("Wrong email or password, or the account is deactivated.")
        member = self.find(email)
        known = self.password_hash(member) if member else None
        # Verify even for an unknown address, so that it takes as long as a wrong password.
        try:
            self.passwords.verify(known or self._dummy_hash, password)
        except argon2.exceptions.VerificationError:
            raise refused from None
        if member is None or known is None or not member.active:
            raise refused
        return member

    def find(self, email: str) -> StaffMember | None:
        """The member enrolled with this address, sealed or (version 1) in clear."""
        owner = self.keys.owner(email_digest(email.strip().lower()))
        return self.app.find(UUID(owner) if owner else staff_id(email), StaffMember)

    def change_password(self, member_id: UUID, old: str, new: str) -> StaffMember:
        """The member's own change, with their current password; their other tokens stop working."""
        member = self.get(member_id)
        try:
            self.passwords.verify(self.password_hash(member) or self._dummy_hash, old)
        except argon2.exceptions.VerificationError:
            raise InvalidInput([FieldError("old_password", "This is not your current password.")]) from None
        return self._set_password(member_id, new, lambda m, credential: m.change_password(credential, by=member_id))

    def set_password(self, email: str, new: str) -> StaffMember:
        """The operator's way in for a locked-out member (the last admin): no old password asked."""
        member = self.find(email)
        if member is None:
            raise StaffNotFound(email.strip().lower())
        return self._set_password(member.id, new, lambda m, credential: m.change_password(credential, by=None))

    def issue_reset(self, member_id: UUID, by: UUID) -> tuple[str, datetime]:
        """A one-time token for the member to set a new password with: shown to the admin once."""
        secret = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + RESET_LIFETIME

        def command() -> tuple[StaffMember]:
            member = self.get(member_id)
            member.issue_reset(_digest(secret), expires, self.get(by))
            return (member,)

        self.app.retrying(command)
        return f"{member_id}.{secret}", expires

    def redeem_reset(self, token: str, new: str) -> StaffMember:
        refused = NotAuthenticated("This reset token is wrong, used, replaced or expired; ask an admin for a new one.")
        member_id, _, secret = token.partition(".")
        try:
            member = self.get(UUID(member_id))
        except (ValueError, StaffNotFound):
            raise refused from None
        now = datetime.now(UTC)
        member.check_reset(_digest(secret), now)  # before hashing the new password and sealing it: a wrong token costs nothing
        return self._set_password(member.id, new, lambda m, credential: m.redeem_reset(_digest(secret), credential, now))

    def _set_password(self, member_id: UUID, password: str, change: Callable[[StaffMember, Sealed], None]) -> StaffMember:
        """Seal the new password's hash under a new key, record the change, then destroy the old key."""
        if problem := _password_problem(password):
            raise InvalidInput([FieldError("password", problem)])
        (credential,) = self.keys.seal([(f"credential:{member_id}", self.passwords.hash(password))])

        def command() -> tuple[StaffMember]:
            member = self.get(member_id)
            change(member, credential)
            return (member,)

        try:
            (member,) = self.app.retrying(command)
        except BaseException:
            self.keys.destroy([credential.key_id], scrub=False)  # never recorded: no key left behind
            raise
        (changed,) = self.app.events.get(member_id, gt=member.version - 1)
        try:
            self.keys.destroy(changed.key_ids)
        except PersistenceError as e:
            raise ShredIncomplete(f"The new password is set, but the old one's key is not destroyed yet ({e}).") from e
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

    def reactivate(self, member_id: UUID, by: UUID) -> None:
        member = self.get(member_id)
        member.reactivate(self.get(by))
        self.app.save(member)

    def sign_out(self, member_id: UUID, by: UUID) -> None:
        def command() -> tuple[StaffMember]:
            member = self.get(member_id)
            member.sign_out(self.get(by))
            return (member,)

        self.app.retrying(command)

    def members(self) -> list[tuple[StaffMember, Contact | None]]:
        """Every member ever enrolled, in the order they were, with who they are (None once erased)."""
        members = [self.get(e.originator_id) for e in self.app.select_events(StaffMember.Enrolled)]
        return [(m, None if m.erased else self.contact(m)) for m in members]

    def erase(self, member_id: UUID, by: UUID | None) -> StaffMember:
        """Forget a deactivated member's name, email and password: record it, then destroy their keys.
        `by` None: the operator. Erasing again destroys again, finishing a scrub that failed."""

        def command() -> tuple[StaffMember]:
            member = self.get(member_id)
            member.erase(self.get(by) if by else None)
            return (member,)

        (member,) = self.app.retrying(command)
        try:
            self.keys.destroy(member.key_ids)
        except PersistenceError as e:
            raise ShredIncomplete(f"The erasure is recorded but not finished ({e}); erase again to finish it.") from e
        return member

    def reseal(self) -> list[UUID]:
        """Seal what members enrolled in clear (version 1) recorded, so that it is read from the
        sealed copy and can be erased; the clear enrolment itself stays in the log. Returns who."""
        done = []
        for enrolled in self.app.select_events(StaffMember.Enrolled):
            member = self.get(enrolled.originator_id)
            if member.clear is None or member.contact is not None or member.erased:
                continue
            clear = member.clear
            _, key_id = self.keys.find_or_create(email_digest(clear.email), str(member.id))
            contact = self.keys.seal_with(key_id, _encode(Contact(clear.name, clear.email)), f"staff:{member.id}")
            # A member who changed their password since has their new hash sealed already.
            credential = member.credential or self.keys.seal([(f"credential:{member.id}", clear.password_hash)])[0]
            member.reseal(contact, credential)
            self.app.save(member)
            done.append(member.id)
        return done

    def erased(self) -> list[StaffMember.Erased | StaffMember.PasswordChanged]:
        """Every erasure and password change in the log (their `key_ids` were destroyed): what to
        destroy again after restoring a backup."""
        return list(self.app.select_events(StaffMember.Erased, StaffMember.PasswordChanged))


def email_digest(email: str) -> str:
    return hashlib.sha256(f"agora:staff:{email}".encode()).hexdigest()


def _encode(contact: Contact) -> str:
    return msgspec.json.encode(contact).decode()


def _check_credentials(email: str, name: str, password: str) -> None:
    errors = []
    if not _EMAIL.fullmatch(email.strip()):
        errors.append(FieldError("email", "Expected an email address."))
    if problem := text.name_problem(name):
        errors.append(FieldError("name", problem))
    if problem := _password_problem(password):
        errors.append(FieldError("password", problem))
    if errors:
        raise InvalidInput(errors)


def _password_problem(password: str) -> str | None:
    return None if 12 <= len(password) <= 1024 else "A password needs at least 12 characters."


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
