"""Staff members' rules: roles are required, and only an active admin changes them, never their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

from domain.errors import DomainError, NotAuthenticated
from domain.sealed import Sealed
from domain.staff.member import Clear, NotPermitted, Role, StaffConflict, StaffMember, staff_id
from store.codec import MsgspecMapper, MsgspecTranscoder


def sealed(what: str) -> Sealed:
    return Sealed(f"{what}-key-{uuid4().hex[:6]}", f"ciphertext of {what}".encode())


def member(email: str, *roles: Role, by: Any = None) -> StaffMember:
    m = StaffMember(id=uuid4(), contact=sealed("contact"), credential=sealed("hash"), roles=roles, by=by, clear=None)
    m.collect_events()
    return m


def only_event(m: StaffMember) -> Any:
    events = m.collect_events()
    assert len(events) == 1, events
    return events[0]


@contextmanager
def refused(m: StaffMember, error: type[DomainError]) -> Iterator[None]:
    """The command raises `error` and records nothing on `m`."""
    version = m.version
    with pytest.raises(error):
        yield
    assert m.collect_events() == [] and m.version == version


def deactivated(m: StaffMember) -> StaffMember:
    m.deactivate(member("ops@agora.example", Role.ADMIN))
    m.collect_events()
    return m


def test_enrolling_records_only_sealed_contact_and_credential() -> None:
    admin, contact, credential = uuid4(), sealed("contact"), sealed("hash")
    m = StaffMember(id=(new := uuid4()), contact=contact, credential=credential, roles=(Role.REVIEWER,), by=admin, clear=None)
    (event,) = m.collect_events()
    assert isinstance(event, StaffMember.Enrolled) and m.id == new
    assert (event.contact, event.credential, event.roles, event.by, event.clear) == (contact, credential, (Role.REVIEWER,), admin, None)
    assert m.roles == {Role.REVIEWER} and m.active and not m.erased and not m.enrolled_in_clear
    assert m.key_ids == [contact.key_id, credential.key_id]


def v1_enrolment(email: str) -> StoredEvent:
    """An `Enrolled` as version 1 stored it: email, name and password hash in clear, the id from the email."""
    state = {
        "timestamp": "2026-11-01T10:00:00+00:00", "originator_topic": "domain.staff:StaffMember",
        "email": email, "name": "Old Timer", "password_hash": "$argon2id$old", "roles": ["admin"], "by": None,
    }
    return StoredEvent(staff_id(email), 1, "domain.staff:StaffMember.Enrolled", msgspec.json.encode(state))


def test_a_version_1_enrolment_reads_with_its_clear_data_set_apart() -> None:
    mapper = MsgspecMapper(transcoder=MsgspecTranscoder())
    event = mapper.to_domain_event(v1_enrolment("old@agora.example"))
    assert (event.contact, event.credential, event.roles, event.by) == (None, None, (Role.ADMIN,), None)
    assert event.clear == Clear("old@agora.example", "Old Timer", "$argon2id$old")
    m = event.mutate(None)
    assert m.id == staff_id("old@agora.example") and m.enrolled_in_clear and m.key_ids == []
    stored = mapper.to_stored_event(event)  # written again, it is the current version's shape
    assert b'"class_version":2' in stored.state and mapper.to_domain_event(stored).clear == event.clear


def test_resealing_moves_a_version_1_member_onto_sealed_data_once() -> None:
    m = MsgspecMapper(transcoder=MsgspecTranscoder()).to_domain_event(v1_enrolment("old@agora.example")).mutate(None)
    contact, credential = sealed("contact"), sealed("hash")
    m.reseal(contact, credential)
    event = only_event(m)
    assert isinstance(event, StaffMember.Resealed) and (event.contact, event.credential, event.by) == (contact, credential, None)
    assert m.key_ids == [contact.key_id, credential.key_id] and m.enrolled_in_clear
    with refused(m, StaffConflict):
        m.reseal(sealed("contact"), sealed("hash"))
    with refused(new := member("new@agora.example"), StaffConflict):
        new.reseal(sealed("contact"), sealed("hash"))


def test_only_a_deactivated_member_is_erased_once_naming_the_keys_to_destroy() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), member("ana@agora.example", Role.REVIEWER)
    with refused(m, StaffConflict):
        m.erase(admin)
    deactivated(m)
    with refused(m, NotPermitted):
        m.erase(member("ed@agora.example", Role.EDITOR))
    keys = m.key_ids
    m.erase(admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.Erased) and (event.key_ids, event.by) == (keys, admin.id) and m.erased
    m.erase(None)  # again (the operator): nothing more to record
    assert m.collect_events() == []


def test_the_operator_erases_without_an_account() -> None:
    m = deactivated(member("ana@agora.example", Role.REVIEWER))
    m.erase(None)
    assert only_event(m).by is None


def test_a_role_is_required_and_held_only_by_an_active_member() -> None:
    m = member("ana@agora.example", Role.REVIEWER)
    m.require(Role.REVIEWER)
    with pytest.raises(NotPermitted, match="editor"):
        m.require(Role.EDITOR)
    deactivated(m)
    with pytest.raises(NotPermitted, match="deactivated"):
        m.require(Role.REVIEWER)


def test_an_admin_grants_a_role_once() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), member("ana@agora.example", Role.REVIEWER)
    m.grant(Role.EDITOR, admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.RoleGranted) and (event.role, event.by) == (Role.EDITOR, admin.id)
    assert m.roles == {Role.REVIEWER, Role.EDITOR}
    m.grant(Role.EDITOR, admin)
    assert m.collect_events() == []


def test_an_admin_revokes_a_role_once() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), member("ana@agora.example", Role.REVIEWER, Role.EDITOR)
    m.revoke(Role.EDITOR, admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.RoleRevoked) and (event.role, event.by) == (Role.EDITOR, admin.id)
    assert m.roles == {Role.REVIEWER}
    m.revoke(Role.EDITOR, admin)
    assert m.collect_events() == []


def test_an_admin_deactivates_a_member_once() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), member("ana@agora.example", Role.REVIEWER)
    m.deactivate(admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.Deactivated) and event.by == admin.id
    assert not m.active and m.roles == {Role.REVIEWER}
    m.deactivate(admin)
    assert m.collect_events() == []


@pytest.mark.parametrize("actor_roles", [(Role.EDITOR, Role.AUDITOR, Role.REVIEWER), ()])
def test_only_admins_change_staff(actor_roles: tuple[Role, ...]) -> None:
    actor, m = member("ben@agora.example", *actor_roles), member("ana@agora.example", Role.REVIEWER)
    with refused(m, NotPermitted):
        m.grant(Role.EDITOR, actor)
    with refused(m, NotPermitted):
        m.revoke(Role.REVIEWER, actor)
    with refused(m, NotPermitted):
        m.deactivate(actor)
    assert m.roles == {Role.REVIEWER} and m.active


def test_a_deactivated_admin_changes_nothing() -> None:
    admin, m = deactivated(member("root@agora.example", Role.ADMIN)), member("ana@agora.example", Role.REVIEWER)
    with refused(m, NotPermitted):
        m.grant(Role.EDITOR, admin)
    with refused(m, NotPermitted):
        m.revoke(Role.REVIEWER, admin)
    with refused(m, NotPermitted):
        m.deactivate(admin)


def test_no_role_is_granted_to_a_deactivated_member() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), deactivated(member("ana@agora.example", Role.REVIEWER))
    with refused(m, StaffConflict):
        m.grant(Role.EDITOR, admin)
    assert m.roles == {Role.REVIEWER}


def test_an_admin_cannot_revoke_their_own_admin_role() -> None:
    admin = member("root@agora.example", Role.ADMIN, Role.EDITOR)
    with refused(admin, StaffConflict):
        admin.revoke(Role.ADMIN, admin)
    assert Role.ADMIN in admin.roles
    admin.revoke(Role.EDITOR, admin)
    assert only_event(admin).by == admin.id and admin.roles == {Role.ADMIN}


def test_an_admin_cannot_deactivate_themselves() -> None:
    admin = member("root@agora.example", Role.ADMIN)
    with refused(admin, StaffConflict):
        admin.deactivate(admin)
    assert admin.active


def test_another_admin_can_revoke_an_admins_role() -> None:
    root, other = member("root@agora.example", Role.ADMIN), member("ops@agora.example", Role.ADMIN)
    other.revoke(Role.ADMIN, root)
    assert only_event(other).by == root.id and other.roles == set()


def test_an_admin_reactivates_a_deactivated_member_once_never_an_erased_one() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), deactivated(member("ana@agora.example", Role.REVIEWER))
    with refused(m, NotPermitted):
        m.reactivate(member("ed@agora.example", Role.EDITOR))
    m.reactivate(admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.Reactivated) and event.by == admin.id and m.active
    m.reactivate(admin)
    assert m.collect_events() == []
    deactivated(m).erase(admin)
    m.collect_events()
    with refused(m, StaffConflict):
        m.reactivate(admin)


def test_signing_out_moves_the_token_generation_on_for_oneself_or_by_an_admin() -> None:
    admin, m = member("root@agora.example", Role.ADMIN), member("ana@agora.example", Role.REVIEWER)
    m.sign_out(m)
    assert only_event(m).by == m.id and m.generation == 1
    with refused(m, NotPermitted):
        m.sign_out(member("ben@agora.example", Role.REVIEWER))
    m.sign_out(admin)
    event = only_event(m)
    assert isinstance(event, StaffMember.SignedOut) and event.by == admin.id and m.generation == 2


def test_a_password_change_retires_the_old_key_and_moves_the_token_generation_on() -> None:
    m = member("rev@agora.example", Role.REVIEWER)
    old, new = m.credential, sealed("hash")
    m.change_password(new, by=m.id)
    event = only_event(m)
    assert isinstance(event, StaffMember.PasswordChanged) and (event.credential, event.key_ids, event.by) == (new, [old.key_id], m.id)
    assert m.credential == new and m.generation == 1
    with refused(deactivated(m), StaffConflict):
        m.change_password(sealed("hash"), by=m.id)
    assert m.generation == 2  # deactivating voids tokens for good
    m.change_password(sealed("hash"), by=None)  # the operator may, for a deactivated member too
    assert m.generation == 3


def test_a_reset_needs_an_admin_and_works_once_before_it_expires() -> None:
    m, admin = member("rev@agora.example", Role.REVIEWER), member("ops@agora.example", Role.ADMIN)
    now = datetime.now(UTC)
    with refused(m, NotPermitted):
        m.issue_reset("h1", now + timedelta(hours=1), member("ed@agora.example", Role.EDITOR))
    m.issue_reset("h1", now + timedelta(hours=1), admin)
    assert isinstance(only_event(m), StaffMember.ResetIssued)
    for wrong, at in (("h2", now), ("h1", now + timedelta(hours=1))):
        with refused(m, NotAuthenticated):
            m.redeem_reset(wrong, sealed("hash"), at)
    m.redeem_reset("h1", sealed("hash"), now)
    assert only_event(m).by == m.id and m.reset is None
    with refused(m, NotAuthenticated):
        m.redeem_reset("h1", sealed("hash"), now)  # used up
