"""Staff personal data is erasable: names and emails sealed under a key per person, password hashes
sealed under keys of their own; erasing a former member destroys them, and history keeps the id."""

from __future__ import annotations

import shutil
from pathlib import Path
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from cli.main import main
from domain.errors import NotAuthenticated
from domain.staff.member import ERASED_NAME, Contact, Role, StaffConflict, StaffMember, staff_id
from domain.staff.service import email_digest
from runtime import System
from runtime.settings import Settings
from tests.conftest import PASSWORD, raw_storage

EMAIL, NAME = "leaving.person@agora.example", "Leaving Person Zebulon"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def env(monkeypatch: pytest.MonkeyPatch, store_env: dict[str, str]) -> None:
    for name, value in store_env.items():
        monkeypatch.setenv(name, value)


async def test_an_erased_former_member_is_gone_from_every_byte_and_history_keeps_their_id(
    client: AsyncTestClient, system: System, store_env: dict[str, str], staff: dict[str, UUID], headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    leaving = system.staff.enrol(EMAIL, NAME, PASSWORD, [Role.REVIEWER], by=staff["admin"])
    member = system.staff.get(leaving)
    password_hash = system.staff.password_hash(member)
    assert password_hash and password_hash.startswith("$argon2")
    keys = [system.staff_keys.get(k) for k in member.key_ids]
    assert len(keys) == 2 and all(keys)
    signed_in = await client.post("/staff/token", json={"email": EMAIL.upper(), "password": PASSWORD})
    assert signed_in.status_code == 201
    me = await client.get("/staff/me", headers={"Authorization": f"Bearer {signed_in.json()['token']}"})
    assert (me.json()["email"], me.json()["name"]) == (EMAIL, NAME)
    # Sealed from the start: the log never held them in clear.
    stored = b"".join(e.state for e in system.app.recorder.select_events(leaving))
    assert EMAIL.encode() not in stored and NAME.encode() not in stored and password_hash.encode() not in stored

    env(monkeypatch, store_env)
    with pytest.raises(SystemExit, match="deactivate them first"):
        main(["staff", "erase", str(leaving)])
    assert (await client.post(f"/staff/{leaving}/deactivate", headers=headers["admin"])).status_code == 204
    main(["staff", "erase", str(leaving)])
    assert f"erased {leaving}" in capsys.readouterr().out

    erased = system.staff.get(leaving)
    assert erased.erased and system.staff.contact(erased) is None and system.staff.password_hash(erased) is None
    assert [type(e).__name__ for e in system.app.events.get(leaving)] == ["Enrolled", "Deactivated", "Erased"]
    assert all(system.staff_keys.get(k) is None for k in member.key_ids)
    raw = raw_storage(store_env)
    for secret in (EMAIL.encode(), NAME.encode(), password_hash.encode(), *keys):
        assert secret not in raw
    with pytest.raises(NotAuthenticated):
        system.staff.authenticate(EMAIL, PASSWORD)
    # History names the id as an erased member; the directory too.
    events = (await client.get("/audit/events", params={"actor": str(staff["admin"])}, headers=headers["auditor"])).json()
    assert events["events"], events
    page = (await client.get("/audit/events", headers=headers["auditor"])).json()["events"]
    enrolled = next(e for e in page if e["aggregate_id"] == str(leaving) and e["type"] == "staff.enrolled")
    assert enrolled["payload"]["contact"]["state"] == "shredded" and "credential" not in enrolled["payload"]
    directory = {e["id"]: e for e in (await client.get("/audit/staff", headers=headers["auditor"])).json()}
    assert (directory[str(leaving)]["name"], directory[str(leaving)]["active"]) == (ERASED_NAME, False)
    assert system.staff.name(leaving) == ERASED_NAME and system.staff.name(staff["admin"]) == "Root"

    # The address is free again: a new enrolment, under a new id.
    again = system.staff.enrol(EMAIL, NAME, PASSWORD, [Role.REVIEWER], by=staff["admin"])
    assert again != leaving and system.staff.authenticate(EMAIL, PASSWORD).id == again


def test_erasing_needs_a_deactivated_member_and_an_admin_and_again_records_nothing(system: System, staff: dict[str, UUID]) -> None:
    head = system.app.head()
    with pytest.raises(StaffConflict, match="deactivate"):
        system.staff.erase(staff["reviewer"], by=staff["admin"])
    system.staff.deactivate(staff["reviewer"], by=staff["admin"])
    with pytest.raises(Exception, match="admin role"):
        system.staff.erase(staff["reviewer"], by=staff["editor"])
    assert system.app.head() == head + 1 and system.staff.contact(system.staff.get(staff["reviewer"])) is not None
    system.staff.erase(staff["reviewer"], by=staff["admin"])
    head = system.app.head()
    system.staff.erase(staff["reviewer"], by=None)
    assert system.app.head() == head


def test_a_duplicate_enrolment_leaves_no_key_behind(system: System, staff: dict[str, UUID]) -> None:
    with system.staff_keys.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT count(*) AS n FROM {system.staff_keys.table}")
        before = c.fetchone()["n"]
    with pytest.raises(StaffConflict):
        system.staff.enrol("Reviewer@Example.org", "Again", PASSWORD, [Role.REVIEWER], by=staff["admin"])
    with system.staff_keys.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT count(*) AS n FROM {system.staff_keys.table}")
        assert c.fetchone()["n"] == before


def old_store(tmp_path: Path) -> tuple[System, dict[str, str]]:
    """A copy of the store version 1 wrote, whose enrolments hold email, name and password hash in clear."""
    db = tmp_path / "old.sqlite"
    if not db.exists():
        shutil.copy(FIXTURES / "store-v1.sqlite", db)
    store_env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(db)}
    return System(Settings(data_dir=str(tmp_path), secret="s" * 48, password_profile="CHEAPEST"), store_env), store_env


def test_members_enrolled_in_clear_keep_working_are_resealed_then_erasable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    system, store_env = old_store(tmp_path)
    old = {m.clear.email: m for e in system.app.select_events(StaffMember.Enrolled) if (m := system.staff.get(e.originator_id)).clear}
    assert sorted(old) == ["admin@example.org", "ed@example.org", "gone@example.org", "rev@example.org"]
    assert all(m.id == staff_id(email) and m.enrolled_in_clear and m.contact is None for email, m in old.items())
    assert system.staff.contact(old["rev@example.org"]).name == system.staff.name(old["rev@example.org"].id) == "Rita Reviewer"
    gone = old["gone@example.org"]
    assert not gone.active
    system.close()

    env(monkeypatch, store_env)
    main(["staff", "reseal"])
    assert "resealed 4 members" in capsys.readouterr().out
    main(["staff", "reseal"])
    assert "resealed 0 members" in capsys.readouterr().out

    system, _ = old_store(tmp_path)
    for email, before in old.items():
        member = system.staff.get(before.id)
        assert member.contact is not None and member.credential is not None
        assert system.staff.contact(member) == Contact(before.clear.name, email)
        assert system.staff.password_hash(member) == before.clear.password_hash  # the same password still signs in
        assert system.staff_keys.owner(email_digest(email)) == str(member.id)  # found by the address, under its old id
    with pytest.raises(StaffConflict):
        system.staff.enrol("Rev@example.org", "Someone", PASSWORD, [], by=None)
    system.close()

    main(["staff", "erase", str(gone.id)])
    out = capsys.readouterr().out
    assert f"erased {gone.id}" in out and "enrolled before staff data was sealed" in out
    system, _ = old_store(tmp_path)
    erased = system.staff.get(gone.id)
    assert system.staff.contact(erased) is None and system.staff.name(gone.id) == ERASED_NAME
    assert system.staff_keys.owner(email_digest("gone@example.org")) is None
    # What docs/privacy.md says: the version 1 enrolment itself still holds them, in the log and its backups.
    assert b"gone@example.org" in raw_storage(store_env)
    system.close()
