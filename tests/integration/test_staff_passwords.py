"""Passwords: changed with the old one, reset by an admin's one-time token, set by the operator for a
locked-out admin. Each change is an event with the new hash sealed under a new key (the old key is
destroyed), and every earlier token of the member stops working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from cli.main import main
from domain.errors import NotAuthenticated
from domain.staff.member import StaffMember
from runtime import System
from tests.conftest import PASSWORD, raw_storage, token

NEW = "a much newer passphrase"


def changes(system: System, member: UUID) -> list[StaffMember.PasswordChanged]:
    return [e for e in system.app.events.get(member) if isinstance(e, StaffMember.PasswordChanged)]


async def sign_in(client: AsyncTestClient, email: str, password: str) -> int:
    return (await client.post("/staff/token", json={"email": email, "password": password})).status_code


async def test_a_member_changes_their_password_with_the_old_one_and_other_tokens_stop(
    client: AsyncTestClient, system: System, store_env: dict[str, str], staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    other = await token(client, "reviewer@example.org")  # a second session
    old_hash = system.staff.password_hash(system.staff.get(staff["reviewer"]))
    old_key = system.staff.get(staff["reviewer"]).credential.key_id
    head = system.app.head()
    wrong = await client.post("/staff/me/password", json={"old_password": "x" * 20, "password": NEW}, headers=headers["reviewer"])
    assert wrong.status_code == 422 and [e["field"] for e in wrong.json()["errors"]] == ["old_password"]
    short = await client.post("/staff/me/password", json={"old_password": PASSWORD, "password": "short"}, headers=headers["reviewer"])
    assert short.status_code == 422 and [e["field"] for e in short.json()["errors"]] == ["password"]
    assert (await client.post("/staff/me/password", json={"password": NEW}, headers=headers["reviewer"])).status_code == 400
    assert system.app.head() == head  # nothing recorded by a refusal

    r = await client.post("/staff/me/password", json={"old_password": PASSWORD, "password": NEW}, headers=headers["reviewer"])
    assert r.status_code == 201, r.text
    fresh = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await client.get("/staff/me", headers=fresh)).status_code == 200
    for old in (headers["reviewer"], other):
        assert (await client.get("/staff/me", headers=old)).status_code == 401
    assert await sign_in(client, "reviewer@example.org", PASSWORD) == 401
    assert await sign_in(client, "reviewer@example.org", NEW) == 201
    assert (await client.get("/staff/me", headers=headers["reviewer2"])).status_code == 200  # nobody else is signed out

    (change,) = changes(system, staff["reviewer"])
    assert (change.by, change.key_ids) == (staff["reviewer"], [old_key])
    assert system.staff_keys.get(old_key) is None  # the old hash's key is destroyed
    new_hash = system.staff.password_hash(system.staff.get(staff["reviewer"]))
    raw = raw_storage(store_env)
    assert old_hash.encode() not in raw and new_hash.encode() not in raw and NEW.encode() not in raw


async def test_an_admins_reset_token_works_once_for_that_member_only(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    url = f"/staff/{staff['editor']}/password-reset"
    assert (await client.post(url, headers=headers["editor"])).status_code == 403
    assert (await client.post(f"/staff/{UUID(int=5)}/password-reset", headers=headers["admin"])).status_code == 404
    issued = await client.post(url, headers=headers["admin"])
    assert issued.status_code == 201, issued.text
    reset = issued.json()["token"]
    expires = datetime.fromisoformat(issued.json()["expires"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    stored = b"".join(e.state for e in system.app.recorder.select_events(staff["editor"]))
    assert reset.partition(".")[2].encode() not in stored  # only its digest is recorded

    forged = reset[:-4] + ("AAAA" if not reset.endswith("AAAA") else "BBBB")
    someone_else = f"{staff['reviewer']}.{reset.partition('.')[2]}"
    for bad in (forged, someone_else, "not-a-token", f"{UUID(int=5)}.x"):
        r = await client.post("/staff/password-reset", json={"token": bad, "password": NEW})
        assert r.status_code == 401 and r.json()["type"] == "/problems/not-authenticated", bad
        assert "reset token" in r.json()["detail"]
    short = await client.post("/staff/password-reset", json={"token": reset, "password": "short"})
    assert short.status_code == 422
    assert changes(system, staff["editor"]) == [] and changes(system, staff["reviewer"]) == []

    used = await client.post("/staff/password-reset", json={"token": reset, "password": NEW})
    assert used.status_code == 201, used.text
    assert used.json()["staff_id"] == str(staff["editor"])
    assert (await client.get("/staff/me", headers={"Authorization": f"Bearer {used.json()['token']}"})).status_code == 200
    assert (await client.get("/staff/me", headers=headers["editor"])).status_code == 401  # the earlier token stops
    assert await sign_in(client, "editor@example.org", NEW) == 201
    again = await client.post("/staff/password-reset", json={"token": reset, "password": "yet another passphrase"})
    assert again.status_code == 401  # used up
    assert [(e.by, type(e).__name__) for e in system.app.events.get(staff["editor"])][1:] == [
        (staff["admin"], "ResetIssued"), (staff["editor"], "PasswordChanged"),
    ]


def test_a_reset_is_replaced_by_the_next_expires_and_dies_with_deactivation(system: System, staff: dict[str, UUID]) -> None:
    first, _ = system.staff.issue_reset(staff["auditor"], by=staff["admin"])
    second, _ = system.staff.issue_reset(staff["auditor"], by=staff["admin"])
    with pytest.raises(NotAuthenticated):
        system.staff.redeem_reset(first, NEW)  # replaced
    member = system.staff.get(staff["auditor"])
    digest, _ = member.reset
    with pytest.raises(NotAuthenticated):  # expired: the same member, a day later
        member.redeem_reset(digest, member.credential, datetime.now(UTC) + timedelta(hours=24, seconds=1))
    system.staff.deactivate(staff["auditor"], by=staff["admin"])
    with pytest.raises(NotAuthenticated):
        system.staff.redeem_reset(second, NEW)
    with pytest.raises(Exception, match="deactivated"):
        system.staff.issue_reset(staff["auditor"], by=staff["admin"])
    assert changes(system, staff["auditor"]) == []


async def test_the_operator_sets_a_locked_out_admins_password(
    client: AsyncTestClient, system: System, store_env: dict[str, str], staff: dict[str, UUID], headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {**store_env, "AGORA_STAFF_PASSWORD": NEW}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match="no staff member nobody@example.org"):
        main(["staff", "passwd", "Nobody@Example.org"])
    main(["staff", "passwd", "Root@Example.org"])
    assert f"new password set for {staff['admin']}" in capsys.readouterr().out
    assert await sign_in(client, "root@example.org", PASSWORD) == 401
    assert await sign_in(client, "root@example.org", NEW) == 201
    assert (await client.get("/staff/me", headers=headers["admin"])).status_code == 401
    (change,) = changes(system, staff["admin"])
    assert change.by is None
    monkeypatch.setenv("AGORA_STAFF_PASSWORD", "short")
    with pytest.raises(SystemExit, match="12 characters"):
        main(["staff", "passwd", "root@example.org"])
    assert len(changes(system, staff["admin"])) == 1
