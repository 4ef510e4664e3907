"""Staff members' rules: roles are required, and only an active admin changes them, never their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import DomainError
from domain.staff.member import NotPermitted, Role, StaffConflict, StaffMember, staff_id


def member(email: str, *roles: Role, by: Any = None) -> StaffMember:
    m = StaffMember(email=email, name=email.split("@")[0].title(), password_hash="hash", roles=roles, by=by)
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


def test_enrolling_records_the_member_under_an_id_from_their_email() -> None:
    admin = uuid4()
    m = StaffMember(email="ana@agora.example", name="Ana", password_hash="h", roles=(Role.REVIEWER,), by=admin)
    (event,) = m.collect_events()
    assert isinstance(event, StaffMember.Enrolled)
    assert (event.email, event.name, event.password_hash, event.roles, event.by) == (
        "ana@agora.example", "Ana", "h", (Role.REVIEWER,), admin,
    )
    assert m.id == staff_id("ana@agora.example") == staff_id("  Ana@Agora.Example ") != staff_id("ben@agora.example")
    assert m.roles == {Role.REVIEWER} and m.active


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
