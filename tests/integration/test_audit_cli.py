"""`agora audit export | verify | replay` and `agora status`, against the real store.

The bundle is checked as an outsider would: verified offline, then tampered with and verified
again; and searched for personal data that must not be in it.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from store import locks
from audit.bundle import export, verify_bundle
from audit.history import Filter
from audit.merkle import canonical, leaf_hash
from audit.signing import Signer, Verifier, body, parse_body
from domain.core import read_log
from domain.staff.member import StaffMember
from cli.main import main
from runtime import System
from tests.conftest import PASSWORD, SLUG, enrol_everyone, submit
from tests.integration.test_cli import operator_env, run  # noqa: F401 - the fixture
from tests.integration.test_compat import old_store
from tests.integration.test_signups import SESSIONS, future
from workers.checkpointer import Checkpointer, ForeignKey


@pytest.fixture
def history(system: System, seed, operator_env: dict[str, str]) -> System:  # noqa: F811
    """A log with staff, responses with free text, a signup (erased), a redaction shredded, all checkpointed."""
    staff = enrol_everyone(system)
    checkpointer = system.checkpointer()
    responses = submit(system, 6)
    checkpointer.step()
    system.consultations.load(future(seed))
    system.signups.request(SESSIONS, "session_1300", "Sam Person", "sam.person@example.org", True)
    erased = system.signups.request(SESSIONS, "session_1300", "Kim Person", "kim.person@example.org", True)
    system.signups.erase(erased, token=None)
    system.review.claim(responses[0], staff["reviewer"], timedelta(minutes=5))
    system.review.redact(responses[0], staff["reviewer"], "works_well", 0, 6, "a name")
    system.review.shred_originals(responses[0], staff["admin"], "works_well")
    while checkpointer.step():
        pass
    checkpointer.checkpoint(datetime.now(UTC))
    return system


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code not in (0, None)
    return capsys.readouterr().out


def bundle_verdict(capsys: pytest.CaptureFixture[str], out: Path) -> str:
    """`agora audit verify DIR`'s verdict, after the line naming the keys it checked against."""
    checked, _, verdict = run(capsys, "audit", "verify", str(out)).partition("\n")
    assert checked.startswith("checked against the key the bundle carries (compare it with a copy held elsewhere): "), checked
    return verdict


def test_an_exported_bundle_verifies_offline_and_holds_no_personal_data(
    history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    assert run(capsys, "audit", "export", "--out", str(out)).startswith(f"exported {history.app.head()} events and 3 checkpoints")
    verdict = bundle_verdict(capsys, out)
    assert verdict.startswith(f"ok: {history.app.head()} events") and "2 keys shredded" in verdict and "withheld" not in verdict, verdict
    # In a process that imported nothing else first (stored topics such as `domain.frame:…` name no module).
    alone = subprocess.run([sys.executable, "-c", f"from audit.bundle import verify_bundle; print(verify_bundle(__import__('pathlib').Path({str(out)!r})))"], capture_output=True, text=True)
    assert alone.stdout.startswith("ok: "), alone.stdout + alone.stderr
    # By an auditor anywhere, with no deployment at hand: `agora audit verify DIR` in an empty folder makes nothing there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_", "REDIS_URL", "AGORA_"))}
    offline = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "audit", "verify", str(out)], cwd=elsewhere, env={**env, "PYTHONPATH": str(Path.cwd())}, capture_output=True, text=True)
    assert offline.returncode == 0 and "\nok: " in offline.stdout and not any(elsewhere.iterdir()), offline.stdout + offline.stderr
    lines = [json.loads(line) for line in (out / "events.ndjson").read_text().splitlines()]
    assert [line["position"] for line in lines] == list(range(1, history.app.head() + 1))
    enrolments = [line for line in lines if line["event"]["type"] == "staff.enrolled"]
    assert len(enrolments) == 5 and all("stored" in line for line in enrolments)  # sealed: nothing to withhold
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    decoded = b"".join(base64.b64decode(line["stored"]["state"]) for line in lines if "stored" in line)
    for secret in (b"@example.org", b"Sam Person", b"Kim Person", b"answer ", b"argon2", PASSWORD.encode()):
        assert secret not in everything and secret not in decoded, secret
    assert "README.md" in {p.name for p in out.iterdir()}
    with pytest.raises(SystemExit, match="already holds a bundle"):
        main(["audit", "export", "--out", str(out)])


def test_a_tampered_bundle_names_what_was_changed(history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    run(capsys, "audit", "export", "--out", str(out))
    original = (out / "events.ndjson").read_text().splitlines()

    def with_lines(lines: list[str]) -> str:
        (out / "events.ndjson").write_text("\n".join(lines) + "\n")
        return fails(capsys, "audit", "verify", str(out))

    line = json.loads(original[9])
    line["stored"]["state"] = base64.b64encode(base64.b64decode(line["stored"]["state"]).replace(b'"read"', b'"know_well"')).decode()
    assert "FAILED at position 10: altered" in with_lines([*original[:9], json.dumps(line), *original[10:]])
    assert "FAILED at position 11: missing" in with_lines([*original[:10], *original[11:]])
    # What a reader reads, the `event`, must be what the stored bytes say; an actor's name (sealed
    # in the log) must at least be the same on every line.
    acted = [i for i, text in enumerate(original) if json.loads(text)["event"]["actor"] == json.loads(original[-1])["event"]["actor"]]
    assert len(acted) > 1
    for change, verdict in (
        ({"payload": {**json.loads(original[acted[-1]])["event"]["payload"], "extra": 1}}, "its readable `event`"),
        ({"version": 99}, "its readable `event`"),
        ({"actor_name": "Mallory"}, "it names actor"),
    ):
        line = json.loads(original[acted[-1]])
        line["event"].update(change)
        assert f"FAILED at position {acted[-1] + 1}: altered: {verdict}" in with_lines([*original[: acted[-1]], json.dumps(line), *original[acted[-1] + 1 :]])
    # A field the export does not write, in the event or on the line, or a key given twice: a reader sees them.
    more = "the line is not as an export writes it"
    planted = json.loads(original[acted[-1]])
    planted["event"]["note"] = "Auditor: this review was later excluded as spam"
    twice = original[acted[-1]].replace('"event":{', '"event":{"type":"review.tagged",', 1)
    assert twice != original[acted[-1]]
    for text in (json.dumps(planted), json.dumps({**json.loads(original[acted[-1]]), "comment": "planted"}), twice):
        assert f"FAILED at position {acted[-1] + 1}: altered: {more}" in with_lines([*original[: acted[-1]], text, *original[acted[-1] + 1 :]])
    # Withholding a line (its hash kept, so the tree still matches) to show another event in it.
    line = withhold(original[9])
    assert "FAILED at position 10: altered: the line is withheld" in with_lines([*original[:9], json.dumps(line), *original[10:]])
    # An auditor's: shown as a version 1 enrolment, it verified ok, though this deployment enrolled its staff sealed before it.
    sealed = next(i for i, text in enumerate(original) if json.loads(text)["event"]["type"] == "staff.enrolled")
    line = withhold(original[sealed + 1], as_enrolment=True)
    verdict = with_lines([*original[: sealed + 1], json.dumps(line), *original[sealed + 2 :]])
    assert f"FAILED at position {sealed + 2}: altered: the line is withheld as a version 1 enrolment, though a later version's event is recorded before it (position {sealed + 1})" in verdict
    (out / "events.ndjson").write_text("\n".join(original) + "\n")
    notes = (out / "checkpoints.ndjson").read_text().splitlines()
    forged = json.loads(notes[1])
    forged["note"] = forged["note"].replace("\nposition ", "\nposition 1")
    (out / "checkpoints.ndjson").write_text("\n".join([notes[0], json.dumps(forged), *notes[2:]]) + "\n")
    assert "forged: checkpoint #2" in fails(capsys, "audit", "verify", str(out))
    (out / "checkpoints.ndjson").write_text("\n".join([notes[0], json.dumps({**json.loads(notes[1]), "comment": "planted"}), *notes[2:]]) + "\n")
    assert "altered: checkpoint line 2 is not as an export writes it" in fails(capsys, "audit", "verify", str(out))
    # A line that does not even decode is named by its number (and position), not a bare decoding error (an auditor's).
    broken = json.loads(notes[1])
    broken["consistency"] = ["not base64!"]
    (out / "checkpoints.ndjson").write_text("\n".join([notes[0], json.dumps(broken), *notes[2:]]) + "\n")
    assert "altered: checkpoint line 2 is not one an export writes: Invalid base64" in fails(capsys, "audit", "verify", str(out))
    (out / "checkpoints.ndjson").write_text("\n".join(notes) + "\n")
    line = json.loads(original[9])
    line["event"]["aggregate"] = None
    assert "FAILED at position 10: altered: events.ndjson line 10 is not one an export writes: Expected `str`" in with_lines([*original[:9], json.dumps(line), *original[10:]])
    # Nested past what a decoder follows, as a line or inside one (an attacker's): named, not a traceback.
    deep = "[" * 100_000
    assert "altered: events.ndjson line 10 is not one an export writes: Expected `object`" in with_lines([*original[:9], deep, *original[10:]])
    inside = original[9][:-1] + ', "x": ' + deep + "]" * 100_000 + "}"
    assert "altered: events.ndjson line 10 is not one an export writes: maximum recursion depth" in with_lines([*original[:9], inside, *original[10:]])
    (out / "checkpoints.ndjson").write_text("\n".join([notes[0], notes[1][:-1] + ', "x": ' + deep + "]" * 100_000 + "}", *notes[2:]]) + "\n")
    assert "altered: checkpoint line 2 is not one an export writes: maximum recursion depth" in fails(capsys, "audit", "verify", str(out))
    (out / "checkpoints.ndjson").unlink()
    (out / "checkpoints.ndjson").mkdir()
    with pytest.raises(SystemExit, match="is not a bundle: it lacks checkpoints.ndjson"):
        main(["audit", "verify", str(out)])
    (out / "checkpoints.ndjson").rmdir()
    (out / "checkpoints.ndjson").write_text("\n".join(notes) + "\n")
    (out / "events.ndjson").write_text("\n".join(original) + "\n")
    # Against a key that never signed anything, nothing verifies.
    (out / "checkpoints.ndjson").write_text("\n".join(notes) + "\n")
    (tmp_path / "elsewhere").mkdir()
    stranger = Signer(tmp_path / "elsewhere", "stranger").verifier.vkey
    assert "forged: checkpoint #1" in fails(capsys, "audit", "verify", str(out), "--key", stranger)
    assert bundle_verdict(capsys, out).startswith("ok")


def test_a_bundle_without_checkpoints_proves_nothing_and_a_held_checkpoint_catches_a_rewritten_tail(
    history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leaves are the exporter's word until a signed checkpoint covers them: dropping the checkpoints
    (or rewriting events past the last one with their leaves) must not pass; one held elsewhere catches it."""
    submit(history, 2)
    checkpointer = history.checkpointer()
    while checkpointer.step():  # chained, past the last checkpoint
        pass
    out = tmp_path / "bundle"
    run(capsys, "audit", "export", "--out", str(out))
    assert ", 2 chained past the last signed checkpoint, " in bundle_verdict(capsys, out)
    notes = (out / "checkpoints.ndjson").read_text()
    (out / "checkpoints.ndjson").write_text("")
    assert "FAILED: unsigned: no signed checkpoint covers any of the" in fails(capsys, "audit", "verify", str(out))
    (out / "checkpoints.ndjson").write_text(notes)
    # The tail rewritten with its leaves: the bundle's own checkpoints do not reach it, one held elsewhere does.
    held = tmp_path / "held.txt"
    held.write_text(checkpointer.checkpoint(datetime.now(UTC)).note)
    original = (out / "events.ndjson").read_text().splitlines()
    line = json.loads(original[-1])
    stored = line["stored"]
    state = base64.b64decode(stored["state"]).replace(b'"read"', b'"know_well"')
    assert state != base64.b64decode(stored["state"])
    stored["state"] = base64.b64encode(state).decode()
    line["leaf_hash"] = leaf_hash(canonical(line["position"], UUID(stored["originator_id"]).bytes, stored["originator_version"], stored["topic"], state)).hex()
    line["event"] = json.loads(json.dumps(line["event"]).replace('"read"', '"know_well"'))  # what a reader reads, too
    (out / "events.ndjson").write_text("\n".join([*original[:-1], msgspec.json.encode(line).decode()]) + "\n")
    assert bundle_verdict(capsys, out).startswith("ok")  # the exporter's word
    assert "altered: checkpoint you hold (#1 given)" in fails(capsys, "audit", "verify", str(out), "--checkpoint", str(held))
    # The live store matches it (its own checkpoint: counted once), also as `jq -r` or an editor may have
    # saved it; a file that is not there, or holds no checkpoint, is one line.
    alone = run(capsys, "audit", "verify").split("\n", 1)[1]
    assert alone.startswith("ok: ") and run(capsys, "audit", "verify", "--checkpoint", str(held)).split("\n", 1)[1] == alone
    (tmp_path / "garbage.txt").write_text("garbage\n")
    with pytest.raises(SystemExit, match="^agora: --checkpoint .*garbage.txt: not a signed checkpoint note"):
        main(["audit", "verify", "--checkpoint", str(tmp_path / "garbage.txt")])
    held.write_text(held.read_text().replace("\n", "\r\n") + "\n")
    assert "\nok: " in run(capsys, "audit", "verify", "--checkpoint", str(held))
    with pytest.raises(SystemExit, match="^agora: --checkpoint .*: No such file or directory$"):
        main(["audit", "verify", "--checkpoint", str(tmp_path / "nowhere.txt")])


def test_a_line_an_export_does_not_write_is_refused(history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invented line (an event with no stored bytes), a position twice or out of order: a reader would read them."""
    out = tmp_path / "bundle"
    run(capsys, "audit", "export", "--out", str(out))
    original = (out / "events.ndjson").read_text().splitlines()
    invented = json.dumps({"position": 1, "leaf": None, "leaf_hash": None, "event": {**json.loads(original[0])["event"], "type": "access.recorded"}})
    for lines, position in (
        ([invented, *original], 1), ([*original[:5], invented.replace('"position": 1', '"position": 5'), *original[5:]], 5),
        ([*original, invented.replace('"position": 1', f'"position": {len(original) + 1}')], len(original) + 1),
    ):
        (out / "events.ndjson").write_text("\n".join(lines) + "\n")
        assert f"FAILED at position {position}: altered: " in fails(capsys, "audit", "verify", str(out))
    # Two lines swapped: said as such, not as the leaf that then seems gone (an auditor was told "leaf 39 is gone").
    (out / "events.ndjson").write_text("\n".join([*original[:5], original[6], original[5], *original[7:]]) + "\n")
    swapped = fails(capsys, "audit", "verify", str(out))
    assert "FAILED at position 6: altered: the line comes after position 7: an export writes one line per position, in order" in swapped, swapped


def test_a_checkpoint_you_hold_pins_the_key_a_bundle_names(history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A forger who adds a key of their own to key.txt can sign what they like; the key that signed
    the checkpoint you hold is the deployment's."""
    out = tmp_path / "bundle"
    run(capsys, "audit", "export", "--out", str(out))
    lines = (out / "checkpoints.ndjson").read_text().splitlines()
    real = json.loads(lines[-1])
    (verifier,) = [Verifier.parse(k) for k in (out / "key.txt").read_text().split()]
    head = parse_body(verifier.open(real["note"]) or "")
    (tmp_path / "forger").mkdir()
    forger = Signer(tmp_path / "forger", verifier.name)
    forged = {"seq": real["seq"] + 1, "note": forger.sign(body(head._replace(time=datetime.now(UTC)))), "consistency": []}
    (out / "checkpoints.ndjson").write_text("\n".join([*lines, json.dumps(forged)]) + "\n")
    with (out / "key.txt").open("a") as f:
        f.write(forger.verifier.vkey + "\n")
    assert bundle_verdict(capsys, out).startswith("ok")  # the bundle's word for its keys, which it names:
    assert forger.verifier.hash.hex() in run(capsys, "audit", "verify", str(out)).partition("\n")[0]
    held = tmp_path / "held.txt"
    held.write_text(json.loads(lines[0])["note"])
    assert f"forged: checkpoint #{forged['seq']}: its signature does not verify" in fails(capsys, "audit", "verify", str(out), "--checkpoint", str(held))
    # Every checkpoint signed anew and the deployment's key replaced: the fault is the bundle's key, not the checkpoint you hold.
    resigned = [{**line, "note": forger.sign(body(parse_body(verifier.open(line["note"]) or "")))} for line in map(json.loads, lines)]
    (out / "checkpoints.ndjson").write_text("".join(json.dumps(line) + "\n" for line in resigned))
    (out / "key.txt").write_text(forger.verifier.vkey + "\n")
    assert bundle_verdict(capsys, out).startswith("ok")
    refused = fails(capsys, "audit", "verify", str(out), "--checkpoint", str(held))
    assert "the checkpoint you hold (#1 given) is signed by none of the keys checked against" in refused, refused


def withhold(text: str, as_enrolment: bool = False) -> dict[str, Any]:
    """A bundle's line withheld as an exporter could: its record's hash in place of its stored bytes (so the tree
    still matches), and, `as_enrolment`, its event shown as a version 1 enrolment, which is all a withheld line may be."""
    line = json.loads(text)
    stored = line.pop("stored")
    record = leaf_hash(canonical(line["position"], UUID(stored["originator_id"]).bytes, stored["originator_version"], stored["topic"], base64.b64decode(stored["state"])))
    line |= {"withheld": True, "record_hash": record.hex()}
    if as_enrolment:
        fake = {"type": "staff.enrolled", "aggregate": "staff_member", "version": 1, "actor": None, "actor_name": None, "payload": {"contact": None, "roles": ["reviewer"]}}
        line["event"] |= fake
    return line


def test_a_response_shown_as_a_withheld_enrolment_is_found_though_no_staff_ever_enrolled(system: System, tmp_path: Path) -> None:
    """A tester's: on a deployment with responses and no staff yet, a response's line withheld as a version 1 enrolment
    under a fresh id verified ok, the response hidden. Every response since version 1 is in a format it never wrote."""
    submit(system, 3)
    checkpointer = system.checkpointer()
    while checkpointer.step():
        pass
    checkpointer.checkpoint(datetime.now(UTC))
    out = tmp_path / "bundle"
    export(system, out)
    texts = (out / "events.ndjson").read_text().splitlines()
    responses = [i for i, text in enumerate(texts) if json.loads(text)["event"]["type"] == "response.submitted"]
    line = withhold(texts[responses[1]], as_enrolment=True)
    line["event"]["aggregate_id"] = str(uuid4())
    (out / "events.ndjson").write_text("\n".join([*texts[: responses[1]], json.dumps(line), *texts[responses[1] + 1 :]]) + "\n")
    report = verify_bundle(out)
    assert report.problem is not None and report.problem[:2] == ("altered", responses[1] + 1), report
    assert f"a later version's event is recorded before it (position {responses[0] + 1})" in report.problem.detail


def test_a_bundle_withholds_only_enrolments_that_hold_personal_data_in_clear(tmp_path: Path) -> None:
    """A version 1 enrolment stored a member's email and password hash in clear: its line carries its hash only."""
    system = old_store(tmp_path)
    checkpointer = system.checkpointer()
    while checkpointer.step():
        pass
    checkpointer.checkpoint(datetime.now(UTC))
    clear = [e.clear for _, e in read_log(system.app, [get_topic(StaffMember.Enrolled)]) if e.clear]
    out = tmp_path / "bundle"
    export(system, out)
    system.close()
    report = verify_bundle(out)
    assert report.ok and report.withheld == len(clear) > 0, report
    lines = [json.loads(line) for line in (out / "events.ndjson").read_text().splitlines()]
    withheld = [line for line in lines if line.get("withheld")]
    assert len(withheld) == len(clear) and {line["event"]["type"] for line in withheld} == {"staff.enrolled"}
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    decoded = b"".join(base64.b64decode(line["stored"]["state"]) for line in lines if "stored" in line)
    for secret in [c.email.encode() for c in clear] + [c.password_hash.encode() for c in clear]:
        assert secret not in everything and secret not in decoded, secret
    # Another event shown as a version 1 enrolment among the real ones (an exporter hiding it): what is around it gives it away.
    texts = (out / "events.ndjson").read_text().splitlines()
    first = {}  # each aggregate's first line
    for i, line in enumerate(lines):
        first.setdefault(line["event"]["aggregate_id"], i)
    later = next(i for i, line in enumerate(lines) if "stored" in line and first[line["event"]["aggregate_id"]] < i)
    begun = next(i for i, line in enumerate(lines) if "stored" in line and first[line["event"]["aggregate_id"]] == i and line["event"]["aggregate"] != "staff_member"
                 and any(other["event"]["aggregate_id"] == line["event"]["aggregate_id"] for other in lines[i + 1 :]))
    for i, verdict in (
        (later, "the line is withheld as a staff member's first event, though its aggregate"),
        (begun, "though a withheld line claims it is a staff member's"),
    ):
        (out / "events.ndjson").write_text("\n".join([*texts[:i], json.dumps(withhold(texts[i], as_enrolment=True)), *texts[i + 1 :]]) + "\n")
        report = verify_bundle(out)
        assert report.problem is not None and report.problem.kind == "altered" and verdict in report.problem.detail, report


def test_the_live_store_verifies_and_status_says_so_until_tampered(
    history: System, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    out = run(capsys, "audit", "verify")
    assert "checked against the data folder's key" in out and "\nok: " in out
    assert "the store verifies against the keys it publishes" in fails(capsys, "status")
    if operator_env["PERSISTENCE_MODULE"] != "store.sqlite":
        return  # tampering with PostgreSQL directly is tests/integration/test_tamper.py's
    with sqlite3.connect(operator_env["SQLITE_DBNAME"]) as conn:
        conn.execute("DELETE FROM stored_events WHERE rowid = 5")
    assert "FAILED at position 5: missing" in fails(capsys, "audit", "verify")
    assert "the store does NOT verify: FAILED at position 5: missing" in fails(capsys, "status")


def test_replay_prints_a_view_at_a_position(history: System, capsys: pytest.CaptureFixture[str]) -> None:
    at = json.loads(run(capsys, "audit", "replay", "stats", "--at", "9"))
    assert at["position"] == 9 and at["consultations"][SLUG]["responses"] == 2  # positions 8 and 9: the first two responses
    with pytest.raises(SystemExit, match="no view"):
        main(["audit", "replay", "nothing"])


def test_a_checkpointer_without_the_logs_key_refuses_to_sign_until_a_new_one_is_published(
    history: System, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A tester's standby host, its data folder without the key file, made a key and signed with it unseen."""
    elsewhere = tmp_path / "standby"
    elsewhere.mkdir()
    standby = Checkpointer(history.app, history.ledger, Signer(elsewhere, history.settings.origin), 1, 60)
    submit(history, 1)
    before = history.ledger.latest()
    with pytest.raises(ForeignKey, match="did not sign this log's checkpoints: copy the key file"):
        standby.step()
    assert history.ledger.latest() == before
    # Running, it never takes the lock, which would keep the checkpointer that has the key out (a reviewer's).
    stop = threading.Event()
    running = threading.Thread(target=standby.run, args=(stop,))
    running.start()
    time.sleep(0.5)
    assert standby.refused and not locks.taken(history.app.recorder, "checkpointer")
    stop.set()
    running.join(10)
    monkeypatch.setenv("AGORA_DATA_DIR", str(elsewhere))  # the operator, on the standby host, decides the old key is lost
    out = run(capsys, "audit", "new-key")
    assert out.startswith(f"published {standby.signer.verifier.vkey}")
    signed = standby.checkpoint(datetime.now(UTC))
    assert Verifier.parse(history.ledger.keys()[-1]).open(signed.note) is not None
    # An operator's: the checkpointer holding the old key signed on (a leaked key, say, that the rotation meant to retire).
    with pytest.raises(ForeignKey, match="was replaced by .* and signs no more"):
        history.checkpointer().checkpoint(datetime.now(UTC))
    assert history.ledger.latest() == signed
    # Auditors follow the rotation: with both keys the log verifies, with the new one alone the old checkpoints do not
    # (a tester's --key kept only the last given); status checks against the keys the store publishes.
    old, new = history.ledger.keys()
    assert "\nok: " in run(capsys, "audit", "verify", "--key", old, "--key", new)
    failed, (was, now) = fails(capsys, "audit", "verify"), (Verifier.parse(old), Verifier.parse(new))
    # It names the key it used, and the other key the log names that signed the checkpoint (an auditor's).
    assert f"checked against the data folder's key: {now.name}+{now.hash.hex()}" in failed
    assert f"checkpoint #1: its signature does not verify with the key checked against: it is signed by {was.name}+{was.hash.hex()}, another key the log names" in failed
    assert "verifies against the keys it publishes" in fails(capsys, "status")
    # A bundle checked with a checkpoint held from before the rotation says the same of the new key's.
    export(history, tmp_path / "bundle")
    bundled = verify_bundle(tmp_path / "bundle", held=[before.note])
    assert bundled.problem is not None and f"it is signed by {now.name}+{now.hash.hex()}, another key the log names" in bundled.problem.detail


def test_an_event_this_code_cannot_read_is_shown_as_unreadable_in_the_history_and_the_bundle(
    history: System, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A tester's event of a topic the code does not know (as a release rolled back leaves) made export die and /audit/events answer 500."""
    unknown = StoredEvent(uuid4(), 1, "domain.response:Response.Amended", b'{"timestamp": "2026-05-01T09:00:00+00:00", "answers": {"x": 1}}')
    (position,) = history.app.recorder.insert_events([unknown])
    checkpointer = history.checkpointer()
    checkpointer.step()
    checkpointer.checkpoint(datetime.now(UTC))
    page = history.history.page(0, 100, Filter(type="unreadable"))
    (shown,) = page.events
    assert (shown.position, shown.type, shown.payload, shown.recorded_at) == (position, "unreadable", {"topic": unknown.topic}, datetime(2026, 5, 1, 9, tzinfo=UTC))
    assert len(history.history.page(0, 1000, Filter()).events) == history.app.head()
    out = tmp_path / "bundle"
    run(capsys, "audit", "export", "--out", str(out))
    line = json.loads((out / "events.ndjson").read_text().splitlines()[position - 1])
    assert line["event"]["type"] == "unreadable" and line["stored"]["topic"] == unknown.topic
    assert "ok:" in run(capsys, "audit", "verify", str(out))


def test_verifying_an_empty_store_says_it_is_empty_rather_than_ok(operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """A tester in the wrong folder read `ok: 0 events`, exit 0."""
    with pytest.raises(SystemExit, match="^agora: the store holds no events: is it the deployment's"):
        main(["audit", "verify"])


def test_a_checkpoint_problem_is_named_not_taken_for_an_empty_store(history: System, capsys: pytest.CaptureFixture[str]) -> None:
    """A tester's altered checkpoint read `the store holds no events` (the walk stops before any event)."""
    ledger = history.ledger
    with ledger.datastore.transaction(commit=True) as c:
        c.execute(f"UPDATE {ledger.checkpoints_} SET root = {ledger.p} WHERE seq = 1", (b"\x00" * 32,))
    out = fails(capsys, "audit", "verify")
    assert "FAILED" in out and "checkpoint" in out and "no events" not in out
