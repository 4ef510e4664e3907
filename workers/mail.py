"""Mail for the working sessions: calendar invites, messages, and the transports that send them.

The mailer worker builds one message per person and event and hands it to a transport
with a stable key (the signup id). Sending is at-least-once: after a crash the same
message goes out again with the same Message-ID, so mail clients and the folder
transport treat it as one message.

Names and addresses are personal data: they appear in no log line and in no exception
text raised here. The stdlib and icalendar quote addresses in their errors, so those
errors are replaced by ones of our own (`from None` keeps the original out of
tracebacks).
"""

from __future__ import annotations

import email.policy
import ipaddress
import os
import re
import smtplib
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from icalendar import Calendar, Event, vCalAddress

# CRLF line ends as on the wire. 7-bit transfer encodings because smtplib does not
# negotiate 8BITMIME: non-ASCII text goes quoted-printable or base64, never raw 8-bit.
POLICY = email.policy.SMTP.clone(cte_type="7bit")
# For files a person may read as they are (the outbox): the body's UTF-8 as it is, and lines
# up to the format's limit, so that links stay whole instead of quoted-printable soft breaks.
READABLE = email.policy.SMTP.clone(cte_type="8bit", max_line_length=998)

_KEY = re.compile(r"[0-9A-Za-z-]+")  # hex or uuid: no dots, no glob or path characters


class MailError(Exception):
    """Sending failed; the message names no recipient."""

    def __init__(self, text: str, code: int | None = None, refused: bool = False) -> None:
        super().__init__(f"{text} (SMTP {code})" if code else text)
        self.code = code  # the SMTP reply code if the server gave one: 4xx transient, 5xx permanent
        self.refused = refused  # the server refused this recipient or message for good: sending again cannot help


def calendar(
    uid: str,
    sequence: int,
    start: datetime,
    minutes: int,
    title: str,
    description: str,
    location: str,
    organizer: str,
    attendee: str,
    cancel: bool = False,
) -> bytes:
    """An iTIP request (or cancellation) of one event for one attendee, as iCalendar bytes.

    A change to an event is sent again with the same `uid` and a higher `sequence`;
    calendar programs then update the entry they have instead of adding another.
    `organizer` may be a bare address or, like a From header, "Name <address>".
    """
    if start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")  # astimezone() would assume local time
    organizer_name, organizer_email = parseaddr(organizer)
    try:
        organizer_address = vCalAddress(f"mailto:{organizer_email}")
        attendee_address = vCalAddress(f"mailto:{attendee}")
    except ValueError:
        raise ValueError("invalid organizer or attendee address") from None  # icalendar's text quotes it
    if organizer_name:
        organizer_address.params["CN"] = organizer_name
    start = start.astimezone(UTC)
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=minutes))
    event.add("summary", title)
    event.add("description", description)
    event.add("location", location)
    event.add("organizer", organizer_address)
    # No replies wanted: the signup itself is the acceptance.
    event.add("attendee", attendee_address, parameters={"RSVP": "FALSE"})
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    cal = Calendar()
    cal.add("prodid", "-//Agora//Working sessions//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancel else "REQUEST")
    cal.add_component(event)
    return cal.to_ical()


def _reads_back(to: Address, policy: email.policy.Policy) -> bool:
    """Whether a To header holding `to`, written under `policy`, reads back as that one address."""
    probe = EmailMessage(policy=policy)
    probe["To"] = to
    read = email.message_from_bytes(bytes(probe), policy=email.policy.default)["To"].addresses
    return [(a.display_name, a.addr_spec) for a in read] == [(to.display_name, to.addr_spec)]


def message(
    message_id: str,
    sender: str,
    to_name: str,
    to_email: str,
    subject: str,
    text: str,
    ics: bytes | None = None,
    cancel: bool = False,
    policy: email.policy.Policy = POLICY,
) -> EmailMessage:
    """A plain-text message to one person, with the calendar invite `ics` if given, encoded
    for `policy` (the transport's).

    Raises ValueError for a name with CR or LF (it could inject headers) or an invalid address.
    """
    try:
        to = Address(to_name, addr_spec=to_email)  # quotes or RFC 2047-encodes the name as needed, and refuses CR/LF
    except (ValueError, HeaderParseError):
        raise ValueError("invalid recipient name or address") from None  # the stdlib's text quotes them
    if not _reads_back(to, policy):
        # The header as written must read as this one address, or the message goes to the address alone:
        # a name holding an encoded word ("=?…?=", refused since: domain/text.py) is decoded into other
        # text, and CPython 3.11 folds a long quoted name with a comma into several addresses.
        to = Address(addr_spec=to_email)
    msg = EmailMessage(policy=policy)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    if ics is not None:
        params = {"method": "CANCEL" if cancel else "REQUEST"}
        # The invite goes in twice, as Google Calendar and Thunderbird send theirs: Outlook
        # treats a message as a meeting request only if text/calendar is an alternative
        # of the body, while other programs look only at attachments.
        msg.add_alternative(ics.decode(), subtype="calendar", params=params)
        msg.add_attachment(ics.decode(), subtype="calendar", params=params, filename="invite.ics")
    return msg


class Transport(Protocol):
    policy: email.policy.Policy  # how its messages are encoded

    def send(self, key: str, message: EmailMessage) -> None:
        """Send `message`; `key` is a stable id of the person's messages (a signup id)."""

    def forget(self, key: str) -> None:
        """Remove any copy of that person's messages this transport holds."""


class SMTPTransport:
    policy = POLICY

    """Hands messages to an SMTP server, one connection per message.

    smtp://[user[:password]@]host[:port] (port 25) upgrades with STARTTLS when the server
    offers it; smtps:// (port 465) is TLS from the start. Certificates are verified.
    User and password are percent-decoded; without a user there is no login.
    """

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)  # the URL holds the password: it goes in no error text
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the mail URL must be smtp://host or smtps://host")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.timeout = timeout

    def send(self, key: str, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        try:
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                secure = self.implicit_tls
                if not secure and smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()  # the capabilities may differ under TLS
                    secure = True
                if self.user:
                    if not (secure or _loopback(self.host)):
                        raise MailError("refusing to send the SMTP password in clear: the server offers no STARTTLS")
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            # The class name is generic; the exception's own text may hold addresses.
            code = _code(error)
            # A 5xx to the recipient or the message concerns this message only; to the sender or the
            # login, it is the set-up's fault, and every message would fail alike.
            refused = isinstance(error, (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)) and (code or 0) >= 500
            raise MailError(f"sending failed: {type(error).__name__}", code, refused) from None

    def forget(self, key: str) -> None:
        """Nothing to forget: a sent message has left us."""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _code(error: Exception) -> int | None:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # Keyed by address; a message has one recipient, so take its (code, text).
        return next(iter(error.recipients.values()))[0]
    return getattr(error, "smtp_code", None)


class FolderTransport:
    """Writes each message to `{folder}/{key}.{message id}.eml`, for a site without SMTP.

    The same message sent again overwrites its file, so at-least-once resends do not
    pile up. Files are private to the owner (0o600, in a 0o700 folder).
    """

    policy = READABLE

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def send(self, key: str, message: EmailMessage) -> None:
        message_id = message["Message-ID"]
        if not message_id:
            raise ValueError("the message has no Message-ID")
        name = re.sub(r"[^0-9A-Za-z.@_-]", "_", message_id.strip("<>"))
        path = self.folder / f"{_checked(key)}.{name}.eml"
        # Written whole under a temporary name, then renamed: a reader (or a crash) never
        # sees half a message. mkstemp creates the file with mode 0o600. The key prefix lets
        # forget() find a temporary file a crash left behind.
        fd, temp = tempfile.mkstemp(prefix=f"{key}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(message.as_bytes(policy=self.policy))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            _erase(Path(temp))
            raise
        _fsync_folder(self.folder)  # makes the rename itself durable

    def forget(self, key: str) -> None:
        """Delete every file of that key, overwritten with zeros first.

        The zeros keep the plain text out of the freed blocks of a simple file system.
        Journaling and copy-on-write file systems and SSDs may still keep copies of the
        old blocks: full-disk encryption is the answer there.
        """
        for path in self.folder.glob(f"{_checked(key)}.*"):
            _erase(path)
        _fsync_folder(self.folder)


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("a key must be a hex or uuid string")
    return key


def _erase(path: Path) -> None:
    """Overwrite and delete `path`; gone already is done (the mailer and `agora signups erase` may both forget a key)."""
    try:
        with open(path, "r+b") as file:
            file.write(bytes(os.fstat(file.fileno()).st_size))
            file.flush()
            os.fsync(file.fileno())
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def transport(smtp_url: str | None, folder: Path) -> Transport:
    """SMTP when a URL is configured, else files in `folder`."""
    return SMTPTransport(smtp_url) if smtp_url else FolderTransport(folder)
