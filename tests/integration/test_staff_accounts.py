"""Staff accounts through HTTP and the domain: sign-in, roles granted and revoked as events, deactivation, enrolment."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from domain.staff.member import Role
from runtime import System
from tests.conftest import PASSWORD, submit


def test_the_domain_refuses_actions_without_the_role(system: System, staff: dict[str, UUID]) -> None:
    (response,) = submit(system, 1)
    with pytest.raises(Exception, match="reviewer role"):
        system.review.claim(response, staff["auditor"], timedelta(minutes=30))
    with pytest.raises(Exception, match="admin role"):
        system.staff.enrol("new@example.org", "New", PASSWORD, [Role.REVIEWER], by=staff["editor"])


async def test_sign_in_refuses_wrong_passwords_and_unknown_people_alike(client: AsyncTestClient, staff: dict[str, UUID]) -> None:
    wrong = await client.post("/staff/token", json={"email": "root@example.org", "password": "x" * 20})
    unknown = await client.post("/staff/token", json={"email": "nobody@example.org", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert (await client.get("/staff/me", headers={"Authorization": "Bearer not-a-token"})).status_code == 401


async def test_a_deactivated_members_token_stops_working(client: AsyncTestClient, staff: dict[str, UUID], headers: dict[str, dict[str, str]]) -> None:
    assert (await client.get("/review/progress", headers=headers["reviewer"])).status_code == 200
    r = await client.post(f"/staff/{staff['reviewer']}/deactivate", headers=headers["admin"])
    assert r.status_code == 204
    assert (await client.get("/review/progress", headers=headers["reviewer"])).status_code == 401
    assert (await client.post("/staff/token", json={"email": "reviewer@example.org", "password": PASSWORD})).status_code == 401


async def test_admins_grant_and_revoke_roles_as_events(client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]]) -> None:
    assert (await client.get("/review/progress", headers=headers["admin"])).status_code == 403
    assert (await client.put(f"/staff/{staff['admin']}/roles/auditor", headers=headers["admin"])).status_code == 204
    assert (await client.get("/review/progress", headers=headers["admin"])).status_code == 200
    assert (await client.delete(f"/staff/{staff['auditor']}/roles/auditor", headers=headers["admin"])).status_code == 204
    assert (await client.get("/review/progress", headers=headers["auditor"])).status_code == 403
    events = [type(e).__name__ for e in system.app.events.get(staff["auditor"])]
    assert events == ["Enrolled", "RoleRevoked"]
    bad_role = await client.put(f"/staff/{staff['editor']}/roles/overlord", headers=headers["admin"])
    assert bad_role.status_code == 400
    self_revoke = await client.delete(f"/staff/{staff['admin']}/roles/admin", headers=headers["admin"])
    assert self_revoke.status_code == 409


async def test_enrolment_checks_its_input_and_refuses_duplicates(client: AsyncTestClient, headers: dict[str, dict[str, str]], system: System) -> None:
    head = system.app.head()
    short = await client.post("/staff", json={"email": "not-an-email", "name": "", "password": "short"}, headers=headers["admin"])
    assert short.status_code == 422
    assert {e["field"] for e in short.json()["errors"]} == {"email", "name", "password"}
    again = await client.post("/staff", json={"email": "Editor@Example.org", "name": "E", "password": PASSWORD}, headers=headers["admin"])
    assert again.status_code == 409
    assert system.app.head() == head


# Every staff endpoint, and the roles that may call it. "staff" means any signed-in member.
