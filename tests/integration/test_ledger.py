"""The ledger and its checkpointer on a real store: what is chained, when checkpoints are signed,
proofs from the stored subtrees, receipts, gaps, concurrent writers, and a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from litestar.testing import AsyncTestClient

from store import locks
from api.app import create_app
from audit import merkle
from audit.bundle import export
from audit.ledger import OutOfOrder, records
from audit.signing import KEY_FILE, Signer, Verifier, parse_body
from audit.verify import verify_store
from domain.consultations.service import Submission, hash_receipt
from runtime import System
from runtime.settings import Settings
from tests.conftest import POSTGRES, SLUG, caught_up, raw_storage, submit
from workers.checkpointer import Checkpointer, milestone


def catch_up(checkpointer: Checkpointer) -> None:
    while checkpointer.step():
        pass


def all_positions(system: System) -> list[int]:
    return [n.id for n in system.app.recorder.select_notifications(start=1, limit=100_000)]


def test_every_event_is_a_leaf_in_log_order_and_the_tree_is_rfc_9162s(system: System) -> None:
    checkpointer = system.checkpointer()
    submit(system, 30)
    catch_up(checkpointer)
    leaves = system.ledger.leaves()
    assert [p for _, p, _ in leaves] == all_positions(system) and [i for i, _, _ in leaves] == list(range(len(leaves)))
    notifications = system.app.recorder.select_notifications(start=1, limit=100)
    expected = [merkle.leaf_hash(merkle.canonical(n.id, n.originator_id.bytes, n.originator_version, n.topic, n.state)) for n in notifications]
    assert [h for _, _, h in leaves] == expected
    for size in range(len(expected) + 1):
        assert system.ledger.root(size) == merkle.root(expected[:size])
    size = len(expected)
    for index in range(size):
        assert merkle.verify_inclusion(index, size, expected[index], system.ledger.inclusion(index, size), merkle.root(expected))
    for old in range(size + 1):
        assert merkle.verify_consistency(old, size, merkle.root(expected[:old]), merkle.root(expected), system.ledger.consistency(old, size))


def test_checkpoints_on_start_every_n_events_every_t_seconds_and_at_milestones(system: System, settings: Settings) -> None:
    checkpointer = Checkpointer(system.app, system.ledger, system.signer(), every_events=10, every_seconds=60)
    start = datetime.now(UTC)
    checkpointer.step(start)  # the first: there is none yet
    assert [(c.seq, c.size) for c in system.ledger.checkpoints()] == [(1, 2)]  # the consultation and its frame
    submit(system, 9)
    checkpointer.step(start)
    assert system.ledger.latest().seq == 1  # 9 new events: not yet
    submit(system, 1)
    checkpointer.step(start)
    assert (system.ledger.latest().seq, system.ledger.latest().size) == (2, 12)
    # Nothing happens for a minute: a checkpoint all the same, of the same size, so the quiet shows.
    assert checkpointer.step(start + timedelta(seconds=59)) == 0 and system.ledger.latest().seq == 2
    checkpointer.step(start + timedelta(seconds=61))
    quiet = system.ledger.latest()
    assert (quiet.seq, quiet.size, quiet.time) == (3, 12, start + timedelta(seconds=61))
    # A milestone is checkpointed at once, whatever the count.
    submit(system, 1)
    position = system.consultations.close(SLUG)
    checkpointer.step(start + timedelta(seconds=62))
    closed = system.ledger.latest()
    assert (closed.seq, closed.position) == (4, position)
    # Each checkpoint is a signed note saying what its columns say.
    for c in system.ledger.checkpoints():
        head = parse_body(checkpointer.signer.verifier.open(c.note))
        assert (head.origin, head.size, head.root, head.position, head.time) == (settings.origin, c.size, c.root, c.position, c.time)
        assert c.root == system.ledger.root(c.size)
    assert system.ledger.keys() == [checkpointer.signer.verifier.vkey]
    assert milestone("domain.reports:Report.Published") and milestone("domain.consultation:Consultation.Opened")
    assert not milestone("domain.response:Response.Submitted") and not milestone("domain.x:NotConsultation.Created")


def test_the_signing_key_is_a_private_file_never_in_the_store(system: System, store_env: dict[str, str], data_dir: Path) -> None:
    checkpointer = system.checkpointer()
    submit(system, 2)
    checkpointer.step()
    key_file = data_dir / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    private = checkpointer.signer.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    assert private not in raw_storage(store_env) and base64.b64encode(private) not in raw_storage(store_env)
    assert system.signer().verifier == checkpointer.signer.verifier  # made once, then read


def test_covering_names_the_first_checkpoint_that_includes_a_position(system: System) -> None:
    checkpointer = system.checkpointer()
    checkpointer.step()
    first = system.ledger.latest()
    submit(system, 3)
    head = system.app.head()
    assert system.ledger.covering(head) is None  # not chained yet
    catch_up(checkpointer)
    second = checkpointer.checkpoint(datetime.now(UTC))
    assert system.ledger.covering(1) == first and system.ledger.covering(head) == second
    assert system.ledger.covering(head + 1) is None


def test_a_receipt_finds_its_leaf_and_nothing_else_does(system: System) -> None:
    checkpointer = system.checkpointer()
    (receipt,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})])
    assert system.ledger.leaf_of(hash_receipt(receipt.receipt)) is None  # not chained yet
    catch_up(checkpointer)
    leaf = system.ledger.leaf_of(hash_receipt(receipt.receipt))
    assert leaf is not None
    index, position, leaf_hash = leaf
    assert system.ledger.leaves(index, 1)[0][1:] == (position, leaf_hash) and position == receipt.position
    assert system.ledger.leaf_of(hash_receipt("not a receipt")) is None
    assert system.ledger.leaf_of(hash_receipt(receipt.receipt) + "0") is None


def test_a_restarted_ledger_carries_on_from_its_tables(system: System, store_env: dict[str, str], settings: Settings) -> None:
    submit(system, 13)
    catch_up(system.checkpointer())
    with System(settings, store_env) as again:
        submit(again, 6)
        checkpointer = again.checkpointer()
        catch_up(checkpointer)
        checkpointer.checkpoint(datetime.now(UTC))
        leaves = [h for _, _, h in again.ledger.leaves()]
        assert len(leaves) == len(all_positions(again)) and again.ledger.latest().root == merkle.root(leaves)
        assert verify_store(again.app, again.ledger, [checkpointer.signer.verifier]).ok


def test_concurrent_writers_are_chained_in_log_order_with_gaps(system: System, store_env: dict[str, str]) -> None:
    checkpointer = system.checkpointer()
    stop = threading.Event()
    runner = threading.Thread(target=checkpointer.run, args=(stop,))
    runner.start()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(n):
                submit(system, 3)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    writers = [threading.Thread(target=write, args=(15,)) for _ in range(4)]
    for w in writers:
        w.start()
    if store_env["PERSISTENCE_MODULE"] != "store.sqlite":  # a rolled-back insert skips an id: a gap
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            table = f"{store_env['POSTGRES_SCHEMA']}.{system.app.recorder.events_table_name}"
            conn.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))")
    for w in writers:
        w.join()
    assert not errors
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while system.ledger.head()[1] < system.app.head() and datetime.now(UTC) < deadline:
        stop.wait(0.05)
    stop.set()
    runner.join()
    positions = all_positions(system)
    assert len(positions) == 2 + 4 * 15 * 3
    assert [p for _, p, _ in system.ledger.leaves()] == positions
    if store_env["PERSISTENCE_MODULE"] != "store.sqlite":
        assert positions[-1] > len(positions)  # the gap is there, and skipped
    checkpointer.checkpoint(datetime.now(UTC))
    report = verify_store(system.app, system.ledger, [checkpointer.signer.verifier])
    assert report.ok and report.leaves == len(positions), report


def test_one_checkpointer_chains_another_stands_by(system: System) -> None:
    with locks.exclusive(system.app.recorder, "checkpointer") as held:
        assert held
        stop = threading.Event()
        standby = threading.Thread(target=system.checkpointer().run, args=(stop,))
        standby.start()
        submit(system, 2)
        stop.wait(0.5)
        assert system.ledger.head() == (0, 0)  # it stood by
        stop.set()
        standby.join()


def test_an_out_of_order_append_chains_nothing(system: System) -> None:
    submit(system, 3)
    stored = records(system.app.recorder, 0, 10)
    assert [r[0] for r in stored] == all_positions(system)
    system.ledger.append(stored[:3])
    with pytest.raises(OutOfOrder):
        system.ledger.append([stored[3], stored[2]])
    assert system.ledger.head() == (3, 3)
    system.ledger.append(stored[3:])
    assert system.ledger.head() == (len(stored), stored[-1][0])


# The public routes

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "audit.md"
ANSWERS = {"answers": {"familiarity": "read", "works_well": "The scope section."}}


@pytest.fixture
async def every_event(system: System, store_env: dict[str, str], settings: Settings):
    """The API with a checkpointer that signs after every batch."""
    async with AsyncTestClient(create_app(msgspec.structs.replace(settings, checkpoint_events=1), store_env)) as client:
        await caught_up(client, system.app.head())
        yield client


async def until(client: AsyncTestClient, method: str, path: str, status: int, **kwargs):
    for _ in range(100):
        r = await client.request(method, path, **kwargs)
        if r.status_code == status:
            return r
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path}: {r.status_code} {r.text}")


def doc_snippet() -> dict:
    """What the documented snippets define, run as a reader would."""
    names: dict = {}
    for code in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        exec(code, names)  # noqa: S102
    return names


async def test_a_respondent_proves_their_response_is_in_the_log_by_hand(every_event: AsyncTestClient, system: System, tmp_path: Path) -> None:
    submitted = (await every_event.post(f"/consultations/{SLUG}/responses", json=ANSWERS)).json()
    r = await until(every_event, "POST", "/audit/inclusion", 200, json={"receipt": submitted["receipt"]})
    answer = r.json()
    assert set(answer) == {"leaf_index", "leaf_hash", "checkpoint", "proof"}  # nothing about the response
    assert "answers" not in r.text and submitted["receipt"] not in r.text
    checkpoint = answer["checkpoint"]
    snippet = doc_snippet()
    assert snippet["check_inclusion"](answer["leaf_index"], checkpoint["size"], answer["leaf_hash"], answer["proof"], checkpoint["root"])
    assert not snippet["check_inclusion"](answer["leaf_index"] ^ 1, checkpoint["size"], answer["leaf_hash"], answer["proof"], checkpoint["root"])
    # The leaf is the stored record at the receipt's position, and the note is signed by the published key.
    (n,) = system.app.recorder.select_notifications(start=submitted["position"], limit=1)
    assert base64.b64decode(answer["leaf_hash"]) == merkle.leaf_hash(merkle.canonical(n.id, n.originator_id.bytes, n.originator_version, n.topic, n.state))
    key = (await every_event.get("/audit/key")).json()
    verifier = Verifier.parse(key["vkey"])
    assert base64.b64decode(key["public_key"]) == verifier.public and key["keys"] == [key["vkey"]]
    head = parse_body(verifier.open(checkpoint["note"]))
    assert (head.size, base64.b64encode(head.root).decode()) == (checkpoint["size"], checkpoint["root"])
    # With a bundle, the proven leaf is tied to the receipt offline, by the recipe in audit.md.
    export(system, tmp_path / "bundle")
    lines = [json.loads(text) for text in (tmp_path / "bundle" / "events.ndjson").read_text().splitlines()]
    (line,) = [line for line in lines if line["leaf"] == answer["leaf_index"]]
    assert snippet["holds_receipt"](line, submitted["receipt"]) and line["leaf_hash"] == base64.b64decode(answer["leaf_hash"]).hex()
    assert [line["position"] for line in lines if snippet["holds_receipt"](line, submitted["receipt"])] == [submitted["position"]]


async def test_consistency_between_checkpoints_checks_by_hand(every_event: AsyncTestClient) -> None:
    first = (await until(every_event, "GET", "/audit/checkpoints/latest", 200)).json()
    await every_event.post(f"/consultations/{SLUG}/responses", json=ANSWERS)
    for _ in range(100):
        latest = (await every_event.get("/audit/checkpoints/latest")).json()
        if latest["size"] > first["size"]:
            break
        await asyncio.sleep(0.05)
    r = await every_event.get("/audit/consistency", params={"from": first["size"], "to": latest["size"]})
    assert r.status_code == 200, r.text
    proof = r.json()
    assert (proof["from"], proof["to"]) == (first["size"], latest["size"])
    check = doc_snippet()["check_consistency"]
    assert check(first["size"], latest["size"], first["root"], latest["root"], proof["proof"])
    assert not check(first["size"], latest["size"], latest["root"], first["root"], proof["proof"])
    page = (await every_event.get("/audit/checkpoints", params={"limit": 1})).json()
    assert len(page["checkpoints"]) == 1 and page["checkpoints"][0]["seq"] == 1 and page["next"] == 1
    rest = (await every_event.get("/audit/checkpoints", params={"after": page["next"]})).json()
    assert rest["checkpoints"][0]["seq"] == 2 and rest["next"] is None


async def test_a_receipt_the_index_sends_to_another_event_gets_no_proof(every_event: AsyncTestClient, system: System) -> None:
    """A tester pointed a removed response's receipt at another's leaf, and its respondent got a valid proof of it."""
    mine, other = [(await every_event.post(f"/consultations/{SLUG}/responses", json=ANSWERS)).json() for _ in range(2)]
    await until(every_event, "POST", "/audit/inclusion", 200, json={"receipt": other["receipt"]})
    ledger = system.ledger
    (index, _, _) = ledger.leaf_of(hash_receipt(other["receipt"]))  # type: ignore[misc]
    with ledger.datastore.transaction(commit=True) as c:
        c.execute(f"UPDATE {ledger.receipts_} SET leaf = {ledger.p} WHERE receipt_hash = {ledger.p}", (index, hash_receipt(mine["receipt"])))
    r = await every_event.post("/audit/inclusion", json={"receipt": mine["receipt"]})
    assert r.status_code == 409 and r.json()["type"] == "/problems/ledger-inconsistent", r.text
    assert (await every_event.post("/audit/inclusion", json={"receipt": other["receipt"]})).status_code == 200


async def test_a_damaged_ledger_is_a_problem_on_every_audit_route_and_a_finding_of_verify(every_event: AsyncTestClient, system: System) -> None:
    """An auditor's: with stored subtrees gone, or a checkpoint or key row set by hand to what the checkpointer never
    writes, the public proofs, checkpoints and key were 500s, and verify ended in a bare parsing error."""
    submitted = [(await every_event.post(f"/consultations/{SLUG}/responses", json=ANSWERS)).json() for _ in range(6)][-1]
    await until(every_event, "POST", "/audit/inclusion", 200, json={"receipt": submitted["receipt"]})
    size = (await every_event.get("/audit/checkpoints/latest")).json()["size"]
    ledger = system.ledger

    def damage(statement: str) -> None:
        with ledger.datastore.transaction(commit=True) as c:
            c.execute(statement)

    async def refused(*requests: tuple[str, str, dict]) -> None:
        for method, path, kwargs in requests:
            r = await every_event.request(method, path, **kwargs)
            assert r.status_code == 409 and r.json()["type"] == "/problems/ledger-inconsistent", (path, r.text)

    damage(f"DELETE FROM {ledger.nodes_}")
    await refused(("POST", "/audit/inclusion", {"json": {"receipt": submitted["receipt"]}}), ("GET", "/audit/consistency", {"params": {"from": 1, "to": size}}))
    damage(f"UPDATE {ledger.keys_} SET vkey = 'garbage+zz+!!!'")
    await refused(("GET", "/audit/key", {}))
    report = verify_store(system.app, ledger, [])
    assert report.problem is not None and report.problem.kind == "forged" and "'garbage+zz+!!!'" in report.problem.detail, report
    damage(f"UPDATE {ledger.checkpoints_} SET time = 'yesterday' WHERE seq = 1")
    await refused(("GET", "/audit/checkpoints", {}))
    report = verify_store(system.app, ledger, [])
    assert report.problem is not None and report.problem.kind == "forged" and "Checkpoint #1" in report.problem.detail, report


async def test_bad_requests_are_problems(client: AsyncTestClient, system: System) -> None:
    await until(client, "GET", "/audit/checkpoints/latest", 200)
    size = (await client.get("/audit/checkpoints/latest")).json()["size"]
    for params, field in (({"from": 0, "to": size + 1}, "to"), ({"from": size, "to": size - 1}, "from")):
        r = await client.get("/audit/consistency", params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    assert (await client.get("/audit/consistency", params={"from": -1, "to": 1})).status_code == 400
    assert (await client.get("/audit/consistency", params={"to": 1})).status_code == 400
    for path in ("/audit/checkpoints", "/audit/checkpoints/latest", "/audit/key", "/audit/consistency?from=0&to=0"):
        r = await client.get(path, params={"form": 1})  # a misspelling is refused, not ignored
        assert r.status_code == 400 and r.json()["type"] == "/problems/unknown-parameter", (path, r.text)
    r = await client.post("/audit/inclusion", json={"receipt": "not a receipt"})
    assert r.status_code == 404 and r.json()["type"] == "/problems/receipt-not-found"
    assert (await client.post("/audit/inclusion", json={"receipt": "x", "id": 1})).status_code == 400
    assert (await client.post("/audit/inclusion", json={"receipt": ""})).status_code == 400
    assert (await client.post("/audit/inclusion", json={"receipt": "x"}, params={"receipt": "y"})).status_code == 400
    # Chained, but the next checkpoint is minutes away.
    submitted = (await client.post(f"/consultations/{SLUG}/responses", json=ANSWERS)).json()
    r = await until(client, "POST", "/audit/inclusion", 503, json={"receipt": submitted["receipt"]})
    assert r.json()["type"] == "/problems/not-checkpointed-yet" and r.headers["Retry-After"]


async def test_before_any_checkpoint_there_is_none_to_show(system: System, store_env: dict[str, str], settings: Settings) -> None:
    quiet = msgspec.structs.replace(settings, inline_followers=False)
    async with AsyncTestClient(create_app(quiet, store_env)) as client:
        for path in ("/audit/checkpoints/latest", "/audit/key"):
            r = await client.get(path)
            assert r.status_code == 404 and r.json()["type"] == "/problems/no-checkpoint"
        assert (await client.get("/audit/checkpoints")).json() == {"checkpoints": [], "next": None}
        r = await client.get("/audit/consistency", params={"from": 0, "to": 0})
        assert r.status_code == 404


async def test_inclusion_proofs_are_rate_limited_like_every_public_post(system: System, store_env: dict[str, str], settings: Settings) -> None:
    limited = msgspec.structs.replace(settings, rate_limit_per_minute=2, inline_followers=False)
    async with AsyncTestClient(create_app(limited, store_env)) as client:
        statuses = [(await client.post("/audit/inclusion", json={"receipt": f"guess {i}"})).status_code for i in range(3)]
        assert statuses == [404, 404, 429]
        assert (await client.get("/audit/checkpoints")).status_code == 200  # reading is not limited


def test_a_log_signed_under_another_origin_name_is_named_in_a_warning(system: System, caplog: pytest.LogCaptureFixture) -> None:
    """A tester restarted the same data folder on another port: the log's name changed with it, unsaid."""
    first = system.checkpointer()
    submit(system, 1)
    first.step()
    renamed = Checkpointer(system.app, system.ledger, Signer(system.data_dir, "elsewhere:9000/agora"), 1, 60)
    submit(system, 1)
    with caplog.at_level("WARNING", logger="workers.checkpointer"):
        renamed.step()
        renamed.step()
    warned = [r.getMessage() for r in caplog.records if "is now signed as elsewhere:9000/agora" in r.getMessage()]
    assert len(warned) == 1 and first.signer.verifier.name in warned[0] and "AGORA_LOG_ORIGIN" in warned[0]
