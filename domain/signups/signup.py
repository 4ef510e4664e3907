"""Signing up for a working session: the only personal data Agora holds, and how it is forgotten.

A signup is kept apart from responses: a random id, no reference to any response. The name
and email are sealed under a data key of the person's own (domain/sealed.py); erasure destroys
that key, so the immutable log keeps the signup's shape and loses who it was.

Links in emails carry tokens derived from a server secret (`LinkTokens`); events hold only
their hashes. A session's confirmed seats are counted by a `Seats` aggregate of its own, saved
in the same transaction as the confirmation, so concurrent confirmations cannot overfill it.

A person who holds a seat and asks to be erased is written to once more: the seat is freed at
once (`ErasureRequested`), the mailer sends the calendar cancellation, then erases. Their data
outlives their asking by the time that takes, and never by more than ERASE_WITHIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import Enum
from uuid import NAMESPACE_URL, UUID, uuid5

import email_validator
import msgspec
from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain.errors import FieldError, InvalidInput, SessionFull, SessionStarted, SignupLinkInvalid
from domain import text
from domain.sealed import Sealed


RESEND_AFTER = timedelta(minutes=10)
ERASE_WITHIN = timedelta(hours=24)  # an erasure waits this long at most for its calendar cancellation to go out
REMIND_BEFORE = timedelta(hours=24)


def reminded(at: datetime, starts_at: datetime) -> bool:
    """Whether a seat confirmed at `at` gets a reminder: only if confirmed before reminders fall due (confirmed
    later, its details came within the day). The mailer sends by it; a confirmation, or the details asked for
    again at `at`, promise by it."""
    return at < starts_at - REMIND_BEFORE


def normal_email(address: str) -> str:
    """The address as recorded, or EmailNotValidError: ASCII before the @ and the domain in its
    ASCII form, which every mail server delivers."""
    return email_validator.validate_email(address, check_deliverability=False, allow_smtputf8=False).ascii_email


class Contact(msgspec.Struct, frozen=True):
    name: str
    email: str


def check_contact(name: str, email: str, consent: bool, consent_text: str) -> Contact:
    """The contact as it will be recorded, or the reasons it cannot be; `consent_text` is what
    the person must agree to (none if empty)."""
    errors = []
    name = text.name(name)  # one line: it goes into mail headers
    if problem := text.name_problem(name):
        errors.append(FieldError("name", problem))
    try:
        email = normal_email(email)
    except email_validator.EmailNotValidError as e:
        errors.append(FieldError("email", f"Expected an email address: {e}"))
    if consent_text and consent is not True:
        errors.append(FieldError("consent", f"Signing up needs your consent: {consent_text}"))
    if errors:
        raise InvalidInput(errors)
    return Contact(name, email)


def when(starts_at: datetime, minutes: int) -> str:
    """A session's time as emails and pages write it for people: "Thursday 8 May 2031, 18:00–19:30 UTC"."""
    start = starts_at.astimezone(UTC)
    end = start + timedelta(minutes=minutes)
    return f"{start:%A} {start.day} {start:%B %Y, %H:%M}–{end:%H:%M} UTC"


class SessionGone(SessionStarted):
    """Too late for this session; `alternatives` are the sessions that still have seats."""

    def __init__(self, detail: str, alternatives: tuple[object, ...] = ()) -> None:
        super().__init__(detail)
        self.alternatives = alternatives


class Availability(msgspec.Struct, frozen=True):
    """A session not started yet, and how many seats it has left."""

    session_id: str
    title: str
    starts_at: datetime
    seats_left: int
    duration_minutes: int


class State(str, Enum):
    PENDING = "pending"  # waiting for the person to confirm by the link sent to them
    CONFIRMED = "confirmed"  # holds a seat
    CANCELLED = "cancelled"
    ERASING = "erasing"  # asked to be erased while holding a seat: freed, the cancellation on its way, then erased
    ERASED = "erased"


class Purpose(str, Enum):
    CONFIRM = "confirm"  # single use: confirms one request
    MANAGE = "manage"  # cancel or erase, from any email, until erased


class LinkTokens:
    """The tokens in emailed links: HMACs of the signup and purpose, so the mailer can put them
    in a message again after a restart while the log holds only their hashes."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"agora signup links", hashlib.sha256).digest()

    def token(self, purpose: Purpose, signup_id: UUID, request: int = 0) -> str:
        mac = hmac.new(self._key, f"{purpose.value}:{signup_id}:{request}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def hash(self, purpose: Purpose, signup_id: UUID, request: int = 0) -> str:
        return hash_token(self.token(purpose, signup_id, request))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@stored_as("domain.signup")
class Signup(Aggregate):
    class Requested(Aggregate.Created):
        consultation_id: UUID
        session_id: str
        contact: Sealed
        request: int
        confirm_hash: str
        manage_hash: str

    class Rerequested(Aggregate.Event):
        """Asked again while unconfirmed or after cancelling: a fresh confirmation link replaces the last."""

        session_id: str
        request: int
        confirm_hash: str

    class DetailsRequested(Aggregate.Event):
        """Asked again while confirmed: the session's details are sent again."""

    class Confirmed(Aggregate.Event):
        session_id: str  # the one requested, or another chosen when that one was full

    class Cancelled(Aggregate.Event):
        freed: str | None  # the session whose seat was given back, if one was held

    class ErasureRequested(Aggregate.Event):
        """Asked to be erased while holding a seat: the seat is freed; the mailer sends the cancellation, then erases."""

        freed: str

    class Erased(Aggregate.Event):
        key_id: str  # destroyed: the contact can no longer be read
        freed: str | None

    class MessageSent(Aggregate.Event):
        message_id: str

    @event(Requested)
    def __init__(
        self, id: UUID, consultation_id: UUID, session_id: str, contact: Sealed, request: int, confirm_hash: str, manage_hash: str
    ) -> None:
        self.consultation_id = consultation_id
        self.session_id = session_id
        self.contact = contact
        self.request = request
        self.confirm_hash: str | None = confirm_hash
        self.manage_hash = manage_hash
        self.state = State.PENDING
        self.sent: set[str] = set()
        self.asked_version = 1  # the last event that asked for mail; it tells when

    def request_again(self, session_id: str, confirm_hash: str, now: datetime, last_asked: datetime) -> None:
        """Send what fits the signup's state again, at most once per RESEND_AFTER: anyone can ask
        with someone else's address, so asking must not become a way to flood their inbox. The
        name stays the one first given, for the same reason. After a cancellation, it starts over."""
        if self.state in (State.ERASING, State.ERASED) or (self.state is not State.CANCELLED and now - last_asked < RESEND_AFTER):
            return
        if self.state is State.CONFIRMED:
            self._details_requested()
        else:
            self._rerequest(session_id, self.request + 1, confirm_hash)

    def check(self, purpose: Purpose, token: str, erased_ok: bool = False) -> None:
        """Refuse a wrong token; once erased (or erasing), only erasing again (to finish a scrub) is allowed."""
        expected = self.confirm_hash if purpose is Purpose.CONFIRM else self.manage_hash
        erased = self.state in (State.ERASING, State.ERASED) and not erased_ok
        if erased or expected is None or not hmac.compare_digest(expected, hash_token(token)):
            raise SignupLinkInvalid("This link is not valid: it may have been used already, or replaced by a newer one.")

    def confirm(self, session_id: str) -> None:
        self._confirm(session_id)

    def cancel(self) -> None:
        if self.state in (State.PENDING, State.CONFIRMED):
            self._cancel(self.session_id if self.state is State.CONFIRMED else None)

    def erase(self, at_once: bool = False) -> None:
        """Forget the person. Holding a seat, unless `at_once`, this only asks for it: the seat is
        freed, and the erasure follows its calendar cancellation (`at_once` then finishes it)."""
        if self.state is State.ERASED or (self.state is State.ERASING and not at_once):
            return
        if self.state is State.CONFIRMED and not at_once:
            self._request_erasure(self.session_id)
        else:
            self._erase(self.contact.key_id, self.session_id if self.state is State.CONFIRMED else None)

    def record_sent(self, message_id: str) -> None:
        if message_id not in self.sent:
            self._record_sent(message_id)

    @event(Rerequested)
    def _rerequest(self, session_id: str, request: int, confirm_hash: str) -> None:
        self.session_id = session_id
        self.request = request
        self.confirm_hash = confirm_hash
        self.state = State.PENDING
        self.asked_version = self.version + 1

    @event(DetailsRequested)
    def _details_requested(self) -> None:
        self.asked_version = self.version + 1

    @event(Confirmed)
    def _confirm(self, session_id: str) -> None:
        # The link stays valid while the seat is held, so a second click answers "confirmed" again.
        self.session_id = session_id
        self.state = State.CONFIRMED
        self.confirmed_version = self.version + 1  # this event's; it tells when

    @event(Cancelled)
    def _cancel(self, freed: str | None) -> None:
        self.confirm_hash = None
        self.state = State.CANCELLED

    @event(ErasureRequested)
    def _request_erasure(self, freed: str) -> None:
        self.confirm_hash = None
        self.state = State.ERASING

    @event(Erased)
    def _erase(self, key_id: str, freed: str | None) -> None:
        self.confirm_hash = None
        self.state = State.ERASED

    @event(MessageSent)
    def _record_sent(self, message_id: str) -> None:
        self.sent.add(message_id)


def seats_id(consultation_id: UUID, session_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agora:seats:{consultation_id}:{session_id}")


@stored_as("domain.signup")
class Seats(Aggregate):
    """The confirmed seats of one session: who holds them, never more than its capacity."""

    class Opened(Aggregate.Created):
        consultation_id: UUID
        session_id: str

    class Taken(Aggregate.Event):
        consultation_id: UUID  # repeated on each change, so the form's view needs no lookups
        session_id: str
        signup_id: UUID

    class Freed(Aggregate.Event):
        consultation_id: UUID
        session_id: str
        signup_id: UUID

    @staticmethod
    def create_id(consultation_id: UUID, session_id: str) -> UUID:
        return seats_id(consultation_id, session_id)

    @event(Opened)
    def __init__(self, consultation_id: UUID, session_id: str) -> None:
        self.consultation_id = consultation_id
        self.session_id = session_id
        self.holders: list[UUID] = []  # in the order they confirmed

    def take(self, signup_id: UUID, capacity: int) -> None:
        if signup_id in self.holders:
            return
        if len(self.holders) >= capacity:
            raise SessionFull("This session is full.")
        self._take(self.consultation_id, self.session_id, signup_id)

    def free(self, signup_id: UUID) -> None:
        if signup_id in self.holders:
            self._free(self.consultation_id, self.session_id, signup_id)

    @event(Taken)
    def _take(self, consultation_id: UUID, session_id: str, signup_id: UUID) -> None:
        self.holders.append(signup_id)

    @event(Freed)
    def _free(self, consultation_id: UUID, session_id: str, signup_id: UUID) -> None:
        self.holders.remove(signup_id)

