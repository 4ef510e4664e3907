"""Mail: invites and messages sent to a real SMTP server (aiosmtpd) and written to a folder."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import threading
import socket
import ssl
import stat
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session, SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from icalendar import Calendar

from tests.conftest import Inbox, free_port, text
from workers.mail import (
    FolderTransport,
    MailError,
    SMTPTransport,
    calendar,
    message,
    transport,
)

START = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 09:00 UTC
EMAIL = "zoe.nunez@example.org"
SENDER = "Agora <noreply@agora.example>"


class Refusing(Inbox):
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        return "550 no such user"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A test CA's certificate file, and a server context with a certificate it signed for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agora test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(2).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


def invite(cancel: bool = False, attendee: str = EMAIL) -> bytes:
    return calendar(
        "s-1.session-7@agora.example", 0, START, 90, "Working session 1", "Bring your notes.\nSee you there.",
        "https://meet.example.org/s1", SENDER, attendee, cancel=cancel,
    )


def invitation(name: str = "Zoë Ñúñez", address: str = EMAIL, message_id: str = "<s-1.invite.1@agora.example>") -> EmailMessage:
    body = "Hello,\nsee you on Sunday.\n"
    return message(message_id, SENDER, name, address, "Your working session", body, invite(attendee=address))


def test_an_invite_sent_over_smtp_arrives(smtpd: Callable[..., int]) -> None:
    inbox = Inbox()
    port = smtpd(inbox)
    SMTPTransport(f"smtp://127.0.0.1:{port}").send("0a1b", invitation())

    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == [EMAIL]
    [got] = inbox.received()
    assert got["Message-ID"] == "<s-1.invite.1@agora.example>"
    assert got["Subject"] == "Your working session"
    assert got["To"].addresses[0].addr_spec == EMAIL
    assert got["Date"].datetime.tzinfo is not None
    assert got.get_body(("plain",)).get_content_charset() == "utf-8"
    assert text(got) == "Hello,\nsee you on Sunday.\n"
    [attachment] = got.iter_attachments()
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_param("method") == "REQUEST"
    assert text(got, "calendar") == text(attachment)  # the copy Outlook looks for, beside the text

    cal = Calendar.from_ical(attachment.get_content())
    assert cal["METHOD"] == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert event["UID"] == "s-1.session-7@agora.example"
    assert event["DTSTART"].dt == START and event["DTSTART"].dt.utcoffset() == dt.timedelta(0)
    assert event["DTEND"].dt - event["DTSTART"].dt == dt.timedelta(minutes=90)
    assert str(event["ATTENDEE"]) == f"mailto:{EMAIL}" and event["ATTENDEE"].params["RSVP"] == "FALSE"
    assert event["STATUS"] == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:noreply@agora.example" and event["ORGANIZER"].params["CN"] == "Agora"
    assert event["DESCRIPTION"] == "Bring your notes.\nSee you there."


@pytest.mark.parametrize("name", ["Zoë Ñúñez", 'O"Brien, Pat', "Dr. Müller-Lüdenscheidt (Moderation)"])
def test_names_arrive_intact(smtpd: Callable[..., int], name: str) -> None:
    inbox = Inbox()
    port = smtpd(inbox)
    SMTPTransport(f"smtp://127.0.0.1:{port}").send("0a1b", invitation(name))

    [got] = inbox.received()
    [to] = got["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, EMAIL)


@pytest.mark.parametrize("name", [
    "=?utf-8?b?QW5uDQpSZXBseS1UbzogYm9zc0BldmlsLmV4YW1wbGUNCg0KUGhpc2g=?=", "=?utf-8?q?evil=40evil=2Eorg=2C?=",
    "Alice Smith, for the Association of Responsible Technology Governance and Open Standards, mallory@evil.example",
], ids=["encoded-crlf", "encoded-comma", "folded-comma"])
def test_a_name_that_would_not_read_back_as_one_address_is_left_out_of_the_header(name: str) -> None:
    """Decoded when the header is written, an encoded word added a Reply-To and a body (CVE-2024-6923), or another
    recipient; folded by CPython 3.11, a long quoted name with commas read as three addresses (testers' both)."""
    written = bytes(invitation(name))
    head = written.split(b"\r\n\r\n", 1)[0]
    assert f"\r\nTo: {EMAIL}\r\n".encode() in head and b"Reply-To" not in head and b"evil" not in written


def test_a_name_cannot_inject_a_header() -> None:
    with pytest.raises(ValueError) as refused:  # refused before anything could be sent
        invitation("Eve\r\nBcc: x@y")
    assert "x@y" not in str(refused.value) and EMAIL not in str(refused.value)


@pytest.mark.parametrize("address", ["zoe nunez@example.org", "zoe@@example.org", "zoe@example.org\r\nBcc: x@y"])
def test_an_invalid_address_is_refused_without_quoting_it(address: str) -> None:
    with pytest.raises(ValueError) as refused:
        invitation(address=address)
    assert "zoe" not in str(refused.value)


def test_a_line_break_in_a_calendar_address_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as refused:
        calendar("u", 0, START, 60, "t", "d", "l", "noreply@agora.example", "zoe@example.org\r\nX-Evil: 1")
    assert "zoe" not in str(refused.value)


def test_login_with_a_percent_encoded_password(smtpd: Callable[..., int]) -> None:
    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        # handled=False: aiosmtpd then answers a failure with 535 itself.
        return AuthResult(success=data == LoginPassword(b"agora", b"p@ss"), handled=False)

    inbox = Inbox()
    port = smtpd(inbox, authenticator=authenticator, auth_require_tls=False)
    SMTPTransport(f"smtp://agora:p%40ss@127.0.0.1:{port}").send("0a1b", invitation())
    assert inbox.authenticated == [True]

    with pytest.raises(MailError) as failed:
        SMTPTransport(f"smtp://agora:wrong-secret@127.0.0.1:{port}").send("0a1b", invitation())
    assert failed.value.code == 535
    assert "wrong-secret" not in str(failed.value) and EMAIL not in str(failed.value)
    assert inbox.authenticated == [True]

    SMTPTransport(f"smtp://127.0.0.1:{port}").send("0a1b", invitation())  # no user: no login
    assert inbox.authenticated == [True, False]


def test_a_password_is_never_sent_in_clear_beyond_this_machine(smtpd: Callable[..., int]) -> None:
    # This machine's own address towards the network (no packet is sent): not loopback.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("203.0.113.1", 9))
        address = probe.getsockname()[0]
    assert not ipaddress.ip_address(address).is_loopback
    inbox = Inbox()
    port = smtpd(inbox, hostname=address)  # offers no STARTTLS
    with pytest.raises(MailError, match="in clear") as failed:
        SMTPTransport(f"smtp://agora:p%40ss@{address}:{port}").send("0a1b", invitation())
    assert "p@ss" not in str(failed.value) and inbox.envelopes == []
    SMTPTransport(f"smtp://{address}:{port}").send("0a1b", invitation())  # no password to protect: sent
    assert len(inbox.envelopes) == 1


def test_a_refused_recipient_is_not_named(smtpd: Callable[..., int]) -> None:
    port = smtpd(Refusing())
    with pytest.raises(MailError) as failed:
        SMTPTransport(f"smtp://127.0.0.1:{port}").send("0a1b", invitation())
    assert failed.value.code == 550 and failed.value.refused
    assert EMAIL not in str(failed.value) and "Ñúñez" not in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_no_server_listening() -> None:
    with pytest.raises(MailError) as failed:
        SMTPTransport(f"smtp://127.0.0.1:{free_port()}", timeout=5).send("0a1b", invitation())
    assert failed.value.code is None and EMAIL not in str(failed.value)


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_tls_with_a_verified_certificate(
    smtpd: Callable[..., int], certificates: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    ca, context = certificates
    inbox = Inbox()
    # smtp:// is upgraded with STARTTLS because the server offers it; smtps:// is TLS from the start.
    port = smtpd(inbox, tls_context=context) if scheme == "smtp" else smtpd(inbox, ssl_context=context)
    url = f"{scheme}://127.0.0.1:{port}"

    with pytest.raises(MailError):  # the test CA is not trusted yet: nothing goes out, not even in clear
        SMTPTransport(url, timeout=5).send("0a1b", invitation())
    assert inbox.envelopes == []

    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # read by ssl.create_default_context()
    SMTPTransport(url, timeout=5).send("0a1b", invitation())
    assert inbox.tls == [True]


def test_a_mail_url_needs_a_known_scheme_and_keeps_its_password_out_of_errors() -> None:
    with pytest.raises(ValueError) as refused:
        SMTPTransport("smtq://agora:hunter2@mail.example.org")
    assert "hunter2" not in str(refused.value)
    transport_ = SMTPTransport("smtps://agora:p%40ss%3Aword@mail.example.org")
    assert (transport_.port, transport_.user, transport_.password) == (465, "agora", "p@ss:word")
    assert SMTPTransport("smtp://mail.example.org").port == 25


def test_the_folder_keeps_one_private_file_per_message(tmp_path: Path) -> None:
    folder = FolderTransport(tmp_path / "outbox")
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    sent = invitation()
    folder.send("0a1b", sent)
    folder.send("0a1b", sent)  # a resend after a crash

    [path] = (tmp_path / "outbox").iterdir()
    assert path.name.startswith("0a1b.") and path.suffix == ".eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    got = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert got["Message-ID"] == sent["Message-ID"]
    assert got["To"].addresses[0].display_name == "Zoë Ñúñez"
    assert text(got) == "Hello,\nsee you on Sunday.\n"
    [attachment], [sent_attachment] = got.iter_attachments(), sent.iter_attachments()
    assert attachment.get_filename() == "invite.ics"
    assert text(attachment) == text(sent_attachment)


def test_forget_erases_only_that_persons_files(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    folder = FolderTransport(outbox)
    folder.send("0a1b", invitation())
    cancelled = message("<s-1.cancel.2@agora.example>", SENDER, "Zoë Ñúñez", EMAIL, "Cancelled", "Sorry.", invite(True), True)
    folder.send("0a1b", cancelled)
    folder.send("9f9f", invitation("Pat", "pat@example.org", "<s-2.invite.1@agora.example>"))
    (outbox / "0a1b.left-by-a-crash.tmp").write_bytes(EMAIL.encode())
    assert len(list(outbox.glob("0a1b.*.eml"))) == 2
    # A second name for one file's blocks shows whether they were overwritten before the unlink.
    os.link(next(outbox.glob("0a1b.*.eml")), tmp_path / "same-blocks")

    folder.forget("0a1b")

    assert [p.name for p in outbox.iterdir()] == ["9f9f.s-2.invite.1@agora.example.eml"]
    assert set((tmp_path / "same-blocks").read_bytes()) == {0}
    assert all(EMAIL.encode() not in p.read_bytes() for p in outbox.iterdir())
    folder.forget("0a1b")  # nothing left: no error


def test_two_processes_forgetting_one_person_at_once_both_finish(tmp_path: Path) -> None:
    """The mailer forgets a person after their cancellation went out while `agora signups erase`
    may be forgetting them too: a file the other deleted first is done, not an error."""
    outbox = tmp_path / "outbox"
    for i in range(300):
        (outbox if outbox.exists() else FolderTransport(outbox).folder).joinpath(f"0a1b.{i}.eml").write_bytes(EMAIL.encode())
    both = [FolderTransport(outbox), FolderTransport(outbox)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def forget(folder: FolderTransport) -> None:
        start.wait()
        try:
            folder.forget("0a1b")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=forget, args=(f,)) for f in both]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and list(outbox.iterdir()) == []


def test_keys_cannot_reach_outside_the_folder(tmp_path: Path) -> None:
    folder = FolderTransport(tmp_path)
    for key in ["../x", "*", "0a1b.x"]:
        with pytest.raises(ValueError):
            folder.send(key, invitation())
        with pytest.raises(ValueError):
            folder.forget(key)


def test_cancellation() -> None:
    cal = Calendar.from_ical(invite(cancel=True))
    assert cal["METHOD"] == "CANCEL"
    assert cal.walk("VEVENT")[0]["STATUS"] == "CANCELLED"
    cancelled = message("<s-1.cancel.2@agora.example>", SENDER, "Zoë", EMAIL, "Cancelled", "Sorry.", invite(True), cancel=True)
    [attachment] = cancelled.iter_attachments()
    assert attachment.get_param("method") == "CANCEL"


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError):
        calendar("u", 0, START.replace(tzinfo=None), 60, "t", "d", "l", "noreply@agora.example", EMAIL)


def test_transport_choice(tmp_path: Path) -> None:
    assert isinstance(transport("smtp://mail.example.org", tmp_path), SMTPTransport)
    assert isinstance(transport("", tmp_path), FolderTransport)
    assert isinstance(transport(None, tmp_path), FolderTransport)
