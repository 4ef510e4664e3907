"""Staff accounts through HTTP and the domain: sign-in, roles granted and revoked as events, deactivation, enrolment."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from domain.staff.member import Role
from runtime import System
from tests.conftest import PASSWORD, submit, token


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
    assert (await client.get("/review/consultations", headers=headers["reviewer"])).status_code == 200
    r = await client.post(f"/staff/{staff['reviewer']}/deactivate", headers=headers["admin"])
    assert r.status_code == 204
    refused = await client.get("/review/consultations", headers=headers["reviewer"])
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    # It says what to do (a tester read litestar's "Unauthorized" and "No JWT token found in request header").
    assert "sign in with POST /staff/token" in refused.json()["detail"] and "deactivated" in refused.json()["detail"]
    none = await client.get("/review/consultations")
    assert none.json()["detail"] == refused.json()["detail"] and "JWT" not in none.text
    assert (await client.post("/staff/token", json={"email": "reviewer@example.org", "password": PASSWORD})).status_code == 401


async def test_admins_grant_and_revoke_roles_as_events(client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]]) -> None:
    assert (await client.get("/review/consultations", headers=headers["admin"])).status_code == 403
    assert (await client.put(f"/staff/{staff['admin']}/roles/auditor", headers=headers["admin"])).status_code == 204
    assert (await client.get("/review/consultations", headers=headers["admin"])).status_code == 200
    assert (await client.delete(f"/staff/{staff['auditor']}/roles/auditor", headers=headers["admin"])).status_code == 204
    assert (await client.get("/review/consultations", headers=headers["auditor"])).status_code == 403
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


async def test_admins_list_every_member_with_roles_and_state(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    system.staff.deactivate(staff["auditor"], by=staff["admin"])
    system.staff.deactivate(staff["reviewer2"], by=staff["admin"])
    system.staff.erase(staff["reviewer2"], by=staff["admin"])
    r = await client.get("/staff", headers=headers["admin"])
    assert r.status_code == 200, r.text
    listed = {m["id"]: m for m in r.json()}
    assert list(listed) == [str(i) for i in staff.values()]  # in the order they were enrolled
    assert listed[str(staff["editor"])] == {
        "id": str(staff["editor"]), "email": "editor@example.org", "name": "Editor", "roles": ["editor"], "active": True, "erased": False,
    }
    assert (listed[str(staff["auditor"])]["active"], listed[str(staff["auditor"])]["erased"]) == (False, False)
    assert listed[str(staff["reviewer2"])] | {"id": None} == {
        "id": None, "email": None, "name": "erased staff member", "roles": ["reviewer"], "active": False, "erased": True,
    }
    assert (await client.get("/staff", headers=headers["editor"])).status_code == 403


async def test_a_deactivated_member_is_reactivated_once_and_signs_in_again(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    url = f"/staff/{staff['reviewer']}"
    assert (await client.post(f"{url}/deactivate", headers=headers["admin"])).status_code == 204
    assert (await client.post("/staff/token", json={"email": "reviewer@example.org", "password": PASSWORD})).status_code == 401
    assert (await client.post(f"{url}/reactivate", headers=headers["admin"])).status_code == 204
    head = system.app.head()
    assert (await client.post(f"{url}/reactivate", headers=headers["admin"])).status_code == 204
    assert system.app.head() == head  # already active: nothing recorded
    assert [type(e).__name__ for e in system.app.events.get(staff["reviewer"])] == ["Enrolled", "Deactivated", "Reactivated"]
    # A token from before stays void (deactivating a member whose token was taken must not be undone by a reactivation).
    assert (await client.get("/review/consultations", headers=headers["reviewer"])).status_code == 401
    signed_in = await client.post("/staff/token", json={"email": "reviewer@example.org", "password": PASSWORD})
    assert signed_in.status_code == 201
    again = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    assert (await client.get("/review/consultations", headers=again)).status_code == 200


async def test_an_erased_member_cannot_be_reactivated(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    system.staff.deactivate(staff["reviewer"], by=staff["admin"])
    system.staff.erase(staff["reviewer"], by=staff["admin"])
    head = system.app.head()
    r = await client.post(f"/staff/{staff['reviewer']}/reactivate", headers=headers["admin"])
    assert r.status_code == 409 and r.json()["type"] == "/problems/staff-conflict" and "enrol the address again" in r.json()["detail"]
    unknown = await client.post(f"/staff/{UUID(int=7)}/reactivate", headers=headers["admin"])
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/staff-not-found"
    assert system.app.head() == head


async def test_signing_out_revokes_every_earlier_token_and_a_new_sign_in_works(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    other = await token(client, "reviewer@example.org")  # a second session of the same member
    assert (await client.post("/staff/me/sign-out", headers=headers["reviewer"])).status_code == 204
    for old in (headers["reviewer"], other):
        assert (await client.get("/staff/me", headers=old)).status_code == 401
    fresh = await token(client, "reviewer@example.org")
    assert (await client.get("/staff/me", headers=fresh)).status_code == 200
    assert (await client.get("/staff/me", headers=headers["reviewer2"])).status_code == 200  # nobody else is signed out
    # An admin signs someone else out; only admins may.
    assert (await client.post(f"/staff/{staff['reviewer']}/sign-out", headers=headers["editor"])).status_code == 403
    assert (await client.post(f"/staff/{staff['reviewer']}/sign-out", headers=headers["admin"])).status_code == 204
    assert (await client.get("/staff/me", headers=fresh)).status_code == 401
    events = system.app.events.get(staff["reviewer"])
    assert [(type(e).__name__, getattr(e, "by", None)) for e in events][1:] == [("SignedOut", staff["reviewer"]), ("SignedOut", staff["admin"])]
