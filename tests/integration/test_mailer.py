"""The mailer's promises: reminders on time (the tests hold the clock), nothing sent twice that was
recorded; and the operator's commands for the attendee list and erasure."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import msgspec
import psycopg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from cli.main import main
from runtime import System
from runtime.settings import Settings
from domain.consultations.consultation import Definition
from domain.errors import SignupLinkInvalid
from domain.signups.signup import ERASE_WITHIN, Contact, Purpose, Signup, State
from tests.conftest import POSTGRES, Inbox, free_port
from tests.integration.test_signups import EMAIL, NAME, SESSIONS, future
from workers.mail import FolderTransport, SMTPTransport
import workers.mailer as mailer_module
from domain.signups.signup import REMIND_BEFORE
from workers.mailer import RETRY, Mailer


def outbox(folder: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(folder.glob("*.eml"))]


def subjects(folder: Path) -> list[str]:
    return sorted(m["Subject"] for m in outbox(folder))


def confirmed(system: System, address: str, session_id: str, name: str = NAME) -> UUID:
    signup_id = system.signups.request(SESSIONS, session_id, name, address, True)
    system.signups.confirm(signup_id, system.signups.links.token(Purpose.CONFIRM, signup_id, 1))
    return signup_id


@pytest.fixture
def soon(system: System, seed: Definition) -> Definition:
    """Sessions in two hours (its reminder time is past) and in three days."""
    definition = future(seed)
    now = datetime.now(UTC)
    sessions = (msgspec.structs.replace(definition.sessions[0], starts_at=now + timedelta(hours=2)), definition.sessions[1])
    definition = msgspec.structs.replace(definition, sessions=sessions)
    system.consultations.load(definition)
    return definition


def test_details_asked_for_again_within_the_day_promise_no_reminder(system: System, soon: Definition, tmp_path: Path) -> None:
    """Confirmed in good time, then asked for the details again within the day: the reminder has gone (a tester's)."""
    mailer = Mailer(system.signups, FolderTransport(tmp_path / "outbox"), "Agora <agora@example.org>", "http://agora.test")
    signup = system.signups.get(confirmed(system, "early@example.org", "session_1800"))
    consultation = system.signups.consultation_of(signup)
    session = next(s for s in consultation.definition.sessions if s.id == "session_1800")
    contact = system.signups.contact(signup)
    assert contact is not None

    def body(at: datetime) -> str:
        mail = mailer._compose(signup, contact, consultation, session, "confirmed", "<t@agora.test>", None, None, at)
        return mail.get_body(("plain",)).get_content()

    assert "We will remind you a day before." in body(datetime.now(UTC))
    assert "remind" not in body(session.starts_at - timedelta(hours=1))


def test_reminders_go_out_a_day_before_to_those_confirmed_earlier(system: System, soon: Definition, tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    mailer = Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test")
    now = datetime.now(UTC)
    confirmed(system, "early@example.org", "session_1800")
    confirmed(system, "late@example.org", "session_1300")  # within the day before its session
    assert mailer.next_due(now) == now  # the two-hour session's reminder time has passed: due at once
    mailer.step(now)
    # The details, each; not the links to confirm: they were used before the mailer looked. And no
    # reminder for the two-hour session: its attendee confirmed within the day before it.
    assert subjects(folder) == sorted(f"You are in: {s.title}" for s in soon.sessions)
    later = soon.sessions[1].starts_at
    assert mailer.next_due(now) == later - REMIND_BEFORE

    mailer.step(later - REMIND_BEFORE - timedelta(seconds=1))
    assert len(subjects(folder)) == 2
    mailer.step(later - REMIND_BEFORE)
    assert subjects(folder).count(f"Tomorrow: {soon.sessions[1].title}") == 1
    assert mailer.next_due(later - REMIND_BEFORE) is None

    # A restart sends nothing the log says was sent.
    Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test").step(later - timedelta(hours=1))
    assert len(subjects(folder)) == 3


def test_a_crash_between_sending_and_recording_sends_again_under_the_same_message_id(
    system: System, soon: Definition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "outbox"
    signup_id = system.signups.request(SESSIONS, "session_1800", NAME, EMAIL, True)
    with monkeypatch.context() as m:
        m.setattr(system.signups, "record_sent", lambda *_: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    (sent,) = outbox(folder)
    assert system.signups.get(signup_id).sent == set()

    Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    (again,) = outbox(folder)  # the same message, once
    assert again["Message-ID"] == sent["Message-ID"]
    assert system.signups.get(signup_id).sent == {sent["Message-ID"]}


def test_operators_export_attendees_and_erase_from_the_command_line(
    system: System, soon: Definition, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path,
) -> None:
    for name, value in store_env.items():
        monkeypatch.setenv(name, value)
    signup_id = confirmed(system, EMAIL, "session_1800")
    confirmed(system, "other@example.org", "session_1300")
    confirmed(system, "formula@example.org", "session_1800", name='=HYPERLINK("http://x.example")')
    Mailer(system.signups, FolderTransport(data_dir / "outbox"), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    assert EMAIL.encode() in b"".join(p.read_bytes() for p in (data_dir / "outbox").glob("*.eml"))

    csv_file = tmp_path / "attendees.csv"
    with pytest.raises(SystemExit, match="--consultation"):  # the store holds two consultations
        main(["signups", "export", "--session", "session_1800"])
    main(["signups", "export", "--consultation", SESSIONS, "--session", "session_1800", "-o", str(csv_file)])
    assert csv_file.read_text().splitlines() == [
        "name,email,session", f"{NAME},{EMAIL},session_1800", "\"'=HYPERLINK(\"\"http://x.example\"\")\",formula@example.org,session_1800",
    ]
    assert csv_file.stat().st_mode & 0o777 == 0o600

    main(["signups", "erase", "--consultation", SESSIONS, EMAIL.upper()])
    assert str(signup_id) in capsys.readouterr().out
    assert system.signups.contact(system.signups.get(signup_id)) is None
    remaining = b"".join(p.read_bytes() for p in (data_dir / "outbox").glob("*.eml"))
    assert EMAIL.encode() not in remaining and b"other@example.org" in remaining
    with pytest.raises(SystemExit, match="no such signup"):
        main(["signups", "erase", "--consultation", SESSIONS, EMAIL])
    main(["signups", "erase", str(signup_id)])  # by id (say, to finish a scrub): no consultation needed
    assert "erased" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such signup"):
        main(["signups", "erase", str(uuid4())])
    main(["signups", "export", "--consultation", SESSIONS, "--session", "session_1800"])
    assert capsys.readouterr().out.splitlines()[:2] == ["name,email,session", "\"'=HYPERLINK(\"\"http://x.example\"\")\",formula@example.org,session_1800"]


class RefusesSome(Inbox):
    """A mail server that has no mailbox for one address, and rejects all mail to another."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address == "gone@example.org":
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if envelope.rcpt_tos == ["filtered@example.org"]:
            return "554 message rejected"
        return await super().handle_DATA(server, session, envelope)


def test_an_unreachable_server_holds_mail_back_until_it_answers(system: System, soon: Definition, smtpd: Callable[..., int]) -> None:
    signup_id = system.signups.request(SESSIONS, "session_1800", NAME, EMAIL, True)
    mailer = Mailer(system.signups, SMTPTransport(f"smtp://127.0.0.1:{free_port()}", timeout=5), "Agora <agora@example.org>", "http://agora.test")
    now = datetime.now(UTC)
    assert mailer.step(now) == 0 and system.signups.get(signup_id).sent == set()
    assert mailer.next_due(now) == now + timedelta(seconds=RETRY)  # it wakes to try again

    inbox = Inbox()
    mailer.transport = SMTPTransport(f"smtp://127.0.0.1:{smtpd(inbox)}")  # the server is back
    mailer.step(now + timedelta(seconds=1))
    assert inbox.envelopes == []  # not before its time
    mailer.step(now + timedelta(seconds=RETRY))
    (arrived,) = inbox.received()
    assert system.signups.get(signup_id).sent == {arrived["Message-ID"]}


def test_mail_refused_for_good_does_not_hold_back_anyone_else(system: System, soon: Definition, smtpd: Callable[..., int]) -> None:
    refused = [system.signups.request(SESSIONS, "session_1800", NAME, a, True) for a in ("gone@example.org", "filtered@example.org")]
    # A signup recorded with an address no message can carry (as an older, laxer check might have let through).
    odd = uuid4()
    (contact,) = system.contact_keys.seal([(f"contact:{odd}", msgspec.json.encode(Contact(NAME, "zoe nunez@example.org")).decode())])
    system.app.save(Signup(odd, system.consultations.get(SESSIONS).id, "session_1800", contact, 1, "-", "-"))
    here = system.signups.request(SESSIONS, "session_1800", NAME, EMAIL, True)

    inbox = RefusesSome()
    Mailer(system.signups, SMTPTransport(f"smtp://127.0.0.1:{smtpd(inbox)}"), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    assert [e.rcpt_tos for e in inbox.envelopes] == [[EMAIL]]
    assert all(system.signups.get(s).sent == set() for s in (*refused, odd)) and len(system.signups.get(here).sent) == 1


def test_the_mailer_deletes_an_erased_persons_outbox_files(system: System, soon: Definition, tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    mailer = Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test")
    erased, kept = confirmed(system, EMAIL, "session_1800"), confirmed(system, "kept@example.org", "session_1800")
    mailer.step(datetime.now(UTC))
    assert EMAIL.encode() in b"".join(p.read_bytes() for p in folder.iterdir())
    system.signups.erase(erased, token=None)
    mailer.step(datetime.now(UTC))
    assert EMAIL.encode() not in b"".join(p.read_bytes() for p in folder.iterdir())
    assert [m["To"].addresses[0].addr_spec for m in outbox(folder)] == ["kept@example.org"]
    assert len(system.signups.get(kept).sent) == 1


def erase_by_link(system: System, signup_id: UUID) -> None:
    system.signups.erase(signup_id, system.signups.links.token(Purpose.MANAGE, signup_id))


def test_erasing_a_held_seat_sends_the_calendar_cancellation_then_erases_once_across_crashes(
    system: System, soon: Definition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "outbox"
    mailer = Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test")
    signup_id, kept = confirmed(system, EMAIL, "session_1800"), confirmed(system, "kept@example.org", "session_1800")
    mailer.step(datetime.now(UTC))
    erase_by_link(system, signup_id)
    signup = system.signups.get(signup_id)
    assert signup.state is State.ERASING and signup_id not in system.signups._seats(signup.consultation_id, "session_1800").holders
    assert system.signups.contact(signup) is not None  # kept until its cancellation is out
    assert system.signups.erased() == []
    with pytest.raises(SignupLinkInvalid, match="You asked us to erase this signup: your seat is freed"):
        system.signups.opened(signup_id, Purpose.MANAGE, system.signups.links.token(Purpose.MANAGE, signup_id))

    # A crash after sending, before erasing: the restarted mailer sends nothing again, and erases.
    with monkeypatch.context() as m:
        m.setattr(system.signups, "erase", lambda *_, **__: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    (cancellation,) = [m for m in outbox(folder) if m["Subject"].startswith("Cancelled, and your details erased")]
    assert cancellation["To"].addresses[0].addr_spec == EMAIL and "METHOD:CANCEL" in cancellation.as_string()
    assert system.signups.get(signup_id).state is State.ERASING and cancellation["Message-ID"] in system.signups.get(signup_id).sent

    mailer = Mailer(system.signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test")
    mailer.step(datetime.now(UTC))
    erased = system.signups.get(signup_id)
    assert erased.state is State.ERASED and system.signups.contact(erased) is None
    assert [e.originator_id for e in system.signups.erased()] == [signup_id]  # recorded once
    assert [type(e).__name__ for e in system.app.events.get(signup_id)][-3:] == ["ErasureRequested", "MessageSent", "Erased"]
    mailer.step(datetime.now(UTC))  # the erasure read: the person's outbox files go too
    assert [m["To"].addresses[0].addr_spec for m in outbox(folder)] == ["kept@example.org"]
    assert len(system.signups.get(kept).sent) == 1


def test_an_erasure_waits_for_its_cancellation_no_longer_than_its_limit(
    system: System, soon: Definition, smtpd: Callable[..., int], caplog: pytest.LogCaptureFixture
) -> None:
    signup_id, other = confirmed(system, EMAIL, "session_1800"), confirmed(system, "other@example.org", "session_1800")
    mailer = Mailer(system.signups, SMTPTransport(f"smtp://127.0.0.1:{free_port()}", timeout=5), "Agora <agora@example.org>", "http://agora.test")
    erase_by_link(system, signup_id)
    asked = datetime.now(UTC)
    mailer.step(asked)  # mail cannot go out
    mailer.step(asked + ERASE_WITHIN - timedelta(minutes=1))
    assert system.signups.get(signup_id).state is State.ERASING and system.signups.contact(system.signups.get(signup_id))
    mailer.step(asked + ERASE_WITHIN + timedelta(seconds=1))
    erased = system.signups.get(signup_id)
    assert erased.state is State.ERASED and system.signups.contact(erased) is None and erased.sent == set()
    assert f"erased {signup_id} without its calendar cancellation" in caplog.text
    assert system.signups.get(other).state is State.CONFIRMED  # only the erasure was overdue

    inbox = Inbox()
    mailer.transport = SMTPTransport(f"smtp://127.0.0.1:{smtpd(inbox)}")  # the server is back: the others' mail goes
    mailer.step(asked + ERASE_WITHIN + timedelta(minutes=1))
    assert [e.rcpt_tos for e in inbox.envelopes] == [["other@example.org"]]
    assert [type(e).__name__ for e in system.app.events.get(signup_id)][-2:] == ["ErasureRequested", "Erased"]


def test_only_one_mailer_of_a_deployment_sends_and_a_standby_takes_over(
    system: System, soon: Definition, store_env: dict[str, str], settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailer_module, "STANDBY", 0.05)
    folders = [tmp_path / "first", tmp_path / "second"]
    mailers = [Mailer(System(settings, store_env).signups, FolderTransport(f), "Agora <agora@example.org>", "http://agora.test") for f in folders]
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=m.run, args=(s,)) for m, s in zip(mailers, stops, strict=True)]
    threads[0].start()
    wait_for(lambda: mailers[0].bell is not None)  # the first holds the lock
    threads[1].start()
    try:
        system.signups.request(SESSIONS, "session_1800", NAME, EMAIL, True)
        wait_for(lambda: len(outbox(folders[0])) == 1)
        assert outbox(folders[1]) == [] and mailers[1].bell is None  # the second stands by

        later, _ = system.consultations.load(msgspec.structs.replace(soon, slug="later"))  # while the second stands by
        stops[0].set()
        threads[0].join()
        system.signups.request(SESSIONS, "session_1800", NAME, "next@example.org", True)
        wait_for(lambda: len(outbox(folders[1])) == 1)  # ... and takes over where the first left off
        assert outbox(folders[1])[0]["To"].addresses[0].addr_spec == "next@example.org"
        assert (later, "session_1800") in mailers[1].sessions  # with the reminders of what came meanwhile
    finally:
        for stop, thread in zip(stops, threads, strict=True):
            stop.set()
            thread.join()
        for m in mailers:
            m.app.close()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def test_reshred_after_a_restore_erases_again_the_keys_and_the_outbox_files(
    system: System, soon: Definition, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    for name, value in store_env.items():
        monkeypatch.setenv(name, value)
    signup_id = confirmed(system, EMAIL, "session_1800")
    Mailer(system.signups, FolderTransport(data_dir / "outbox"), "Agora <agora@example.org>", "http://agora.test").step(datetime.now(UTC))
    backup_key = system.contact_keys.get(system.signups.get(signup_id).contact.key_id)
    backup_mail = {p.name: p.read_bytes() for p in (data_dir / "outbox").iterdir()}
    system.signups.erase(signup_id, token=None)
    FolderTransport(data_dir / "outbox").forget(str(signup_id))

    # A backup from before the erasure comes back: the key and the mail are readable again.
    contacts = system.contact_keys
    with contacts.datastore.transaction(commit=True) as c:
        c.execute(f"INSERT INTO {contacts.table} (key_id, key) VALUES ({contacts.p}, {contacts.p})", (system.signups.get(signup_id).contact.key_id, backup_key))
    for name, data in backup_mail.items():
        (data_dir / "outbox" / name).write_bytes(data)
    assert system.signups.contact(system.signups.get(signup_id)) is not None

    main(["keys", "reshred"])
    assert system.signups.contact(system.signups.get(signup_id)) is None
    assert list((data_dir / "outbox").iterdir()) == []


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_a_mailer_whose_lock_connection_dies_stops_sending_until_it_holds_the_lock_again(
    system: System, soon: Definition, store_env: dict[str, str], settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "outbox"
    mailer = Mailer(System(settings, store_env).signups, FolderTransport(folder), "Agora <agora@example.org>", "http://agora.test")
    stop = threading.Event()
    thread = threading.Thread(target=mailer.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: mailer.bell is not None)
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            # This store's lock only: other tests may hold mailer locks of their own meanwhile.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
                " AND objid = (hashtext(%(name)s)::bigint & 4294967295)::oid AND classid = ((hashtext(%(name)s)::bigint >> 32) & 4294967295)::oid",
                {"name": f"agora:{store_env['POSTGRES_SCHEMA']}:mailer"},
            )
        wait_for(lambda: "lost its lock" in caplog.text)
        system.signups.request(SESSIONS, "session_1800", NAME, EMAIL, True)
        wait_for(lambda: len(outbox(folder)) == 1)  # it took the free lock again, and sends
    finally:
        stop.set()
        thread.join()
        mailer.app.close()
