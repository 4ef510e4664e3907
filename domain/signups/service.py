"""Working-session signups: asking for a seat, confirming it by link, cancelling, erasure.

A signup is never linked to a response. Its name and email are sealed under a key of the
person's own, found again by a digest of the address; erasing destroys that key.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from uuid import UUID, uuid4

import email_validator
import msgspec
from eventsourcing.persistence import PersistenceError

from domain.consultations.consultation import Consultation, Session
from domain.consultations.service import Consultations
from domain.core import Agora
from domain.errors import (
    FieldError, InvalidInput, NotAcceptingResponses, SessionFull, SessionNotFound, SessionStarted, ShredIncomplete, SignupLinkInvalid,
)
from domain.sealed import Vault
from domain.signups.signup import (
    Availability, Contact, LinkTokens, Purpose, Seats, SessionGone, Signup, State, check_contact, normal_email, seats_id, when,
)

# Why a link does not work. Only a link we sent learns more than INVALID_LINK, so an unknown id
# or a guessed token reveals nothing about who signed up.
INVALID_LINK = (
    "This link is not valid. Some mail programs cut long links: copy the whole link from the email. "
    "If it still does not work, sign up again where you found this consultation."
)
REPLACED = "This link was replaced by a newer one when you asked again: use the link in the latest email."
VOIDED = "You cancelled this signup, so this link no longer confirms it. To take a seat again, sign up again where you found this consultation."
ERASING = (
    "You asked us to erase this signup: your seat is freed, and we erase your name and email as soon as the calendar "
    "cancellation is sent, so its links no longer work. To take part again, sign up again where you found this consultation."
)
ERASED = (
    "You erased this signup: we no longer hold your name or email, and its links no longer work. "
    "To take part again, sign up again where you found this consultation."
)


class Signups:
    def __init__(self, app: Agora, consultations: Consultations, contacts: Vault, links: LinkTokens) -> None:
        self.app = app
        self.consultations = consultations
        self.contacts = contacts  # the keys of names and emails, indexed by a digest of the email
        self.links = links

    def request(self, slug: str, session_id: str, name: str, email: str, consent: bool, now: datetime | None = None) -> UUID:
        """Record a request to join a session; the mailer then sends a link to confirm it.

        One signup per email and consultation: asking again re-sends what fits its state.
        """
        now = now or datetime.now(UTC)
        consultation = self.consultations.get(slug)
        consultation.check_accepting(now)
        errors: list[FieldError] = []
        try:
            contact = check_contact(name, email, consent, consultation.definition.signup_consent)
        except InvalidInput as e:
            errors = e.errors
        try:
            session = consultation.session(session_id, now)
        except InvalidInput as e:
            raise InvalidInput(e.errors + errors) from None
        if errors:
            raise InvalidInput(errors)
        candidate = str(uuid4())
        owner, key_id = self.contacts.find_or_create(_email_digest(consultation.id, contact.email), candidate)
        signup_id = UUID(owner)

        def command() -> tuple[Signup]:
            signup = self._find(signup_id)
            if signup is None:
                sealed = self.contacts.seal_with(key_id, msgspec.json.encode(contact).decode(), f"contact:{signup_id}")
                confirm, manage = self.links.hash(Purpose.CONFIRM, signup_id, 1), self.links.hash(Purpose.MANAGE, signup_id)
                return (Signup(signup_id, consultation.id, session.id, sealed, 1, confirm, manage),)
            last_asked = self.app.recorded_at(signup.id, signup.asked_version)
            signup.request_again(session.id, self.links.hash(Purpose.CONFIRM, signup_id, signup.request + 1), now, last_asked)
            return (signup,)

        try:
            self.app.retrying(command)
        except Exception:
            if owner == candidate and self._find(signup_id) is None:
                self.contacts.destroy([key_id], scrub=False)  # leave no key or email digest behind a signup never recorded
            raise
        return signup_id

    def confirm(self, signup_id: UUID, token: str, session_id: str | None = None, now: datetime | None = None) -> Signup:
        """Take a seat in the requested session, or in `session_id` instead (say, when that one is full)."""
        now = now or datetime.now(UTC)

        def command() -> tuple[Signup, ...]:
            signup = self.opened(signup_id, Purpose.CONFIRM, token)
            if signup.state is State.CONFIRMED:  # a second click: nothing more to do
                return (signup,)
            session, seats = self.seat(signup, session_id, now)  # refuses a full session, from these seats
            seats.take(signup.id, session.capacity)
            signup.confirm(session.id)
            return signup, seats

        return self.app.retrying(command)[0]

    def cancel(self, signup_id: UUID, token: str) -> Signup:
        """Withdraw, giving back the seat if one was taken. Cancelling again changes nothing."""

        def command() -> tuple[Signup, ...]:
            signup = self.opened(signup_id, Purpose.MANAGE, token)
            seats = self._release_seat(signup)
            signup.cancel()
            return (signup, *seats)

        return self.app.retrying(command)[0]

    def erase(self, signup_id: UUID, token: str | None) -> Signup:
        """Forget the person: record the erasure, then destroy their key. `token` None: the operator, or
        the mailer finishing an erasure asked for; at once.

        By a link, a person holding a seat only asks for it (State.ERASING): the seat is freed now, and
        the mailer erases once their calendar cancellation is out (or within ERASE_WITHIN, if it cannot
        be). Erasing again destroys again, finishing a scrub that failed.
        """

        def command() -> tuple[Signup, ...]:
            signup = self.get(signup_id)
            if token is not None:
                self.opened(signup_id, Purpose.MANAGE, token, erased_ok=True, signup=signup)
            seats = self._release_seat(signup)
            signup.erase(at_once=token is None)
            return (signup, *seats)

        signup = self.app.retrying(command)[0]
        if signup.state is State.ERASING:
            return signup
        try:
            self.contacts.destroy([signup.contact.key_id])
        except PersistenceError as e:
            raise ShredIncomplete(f"The erasure is recorded but not finished ({e}); erase again to finish it.") from e
        return signup

    def record_sent(self, signup_id: UUID, message_id: str) -> None:
        def command() -> tuple[Signup]:
            signup = self.get(signup_id)
            signup.record_sent(message_id)
            return (signup,)

        self.app.retrying(command)

    # Reading

    def get(self, signup_id: UUID) -> Signup:
        """The signup; an unknown id is refused like a wrong token, so links reveal nothing."""
        signup = self._find(signup_id)
        if signup is None:
            raise SignupLinkInvalid(INVALID_LINK)
        return signup

    def opened(
        self, signup_id: UUID, purpose: Purpose, token: str, erased_ok: bool = False, signup: Signup | None = None
    ) -> Signup:
        """The signup an emailed link names, or SignupLinkInvalid saying why the link does not work."""
        signup = signup or self.get(signup_id)
        try:
            signup.check(purpose, token, erased_ok)
        except SignupLinkInvalid:
            raise SignupLinkInvalid(self._why_invalid(signup, purpose, token)) from None
        return signup

    def seat(self, signup: Signup, session_id: str | None, now: datetime) -> tuple[Session, Seats]:
        """The session `signup` would confirm into (its own, or `session_id`) and its seats, or why it cannot:
        seats are confirmed only while the consultation takes signups (they close with it), in a session
        not started yet, with a seat left. Reads only: a link's page checks before its button is shown."""
        consultation = self.consultations.by_id(signup.consultation_id)
        try:
            consultation.check_accepting(now)
        except NotAcceptingResponses:
            raise NotAcceptingResponses(
                f"“{consultation.definition.title}” is no longer taking signups, so seats can no longer be confirmed. "
                "Cancelling and erasing still work."
            ) from None
        try:
            session = consultation.session(session_id or signup.session_id, now)
        except SessionStarted:
            started = next(s for s in consultation.definition.sessions if s.id == (session_id or signup.session_id))
            raise SessionGone(
                f"“{started.title}” started on {when(started.starts_at, started.duration_minutes)}: it is too late to join it.",
                self.alternatives(consultation.id, started.id, now),
            ) from None
        seats = self._seats(consultation.id, session.id)
        if signup.id not in seats.holders and len(seats.holders) >= session.capacity:
            raise self._full(consultation.id, session, now)
        return session, seats

    def _full(self, consultation_id: UUID, session: Session, now: datetime) -> SessionFull:
        return SessionFull(f"Every seat of “{session.title}” is taken.", self.alternatives(consultation_id, session.id, now))

    def alternatives(self, consultation_id: UUID, session_id: str, now: datetime) -> tuple[Availability, ...]:
        """The other sessions that still have seats."""
        return tuple(a for a in self.availability(consultation_id, now) if a.session_id != session_id and a.seats_left)

    def exists(self, signup_id: UUID) -> bool:
        return self._find(signup_id) is not None

    def find(self, slug: str, email: str) -> UUID | None:
        """The signup of this email address for this consultation, unless none or erased."""
        consultation = self.consultations.get(slug)
        try:
            email = normal_email(email)
        except email_validator.EmailNotValidError:
            return None
        owner = self.contacts.owner(_email_digest(consultation.id, email))
        return UUID(owner) if owner else None

    def consultation_of(self, signup: Signup) -> Consultation:
        return self.consultations.by_id(signup.consultation_id)

    def confirmed_at(self, signup: Signup) -> datetime:
        """When the signup's current confirmation was recorded."""
        return self.app.recorded_at(signup.id, signup.confirmed_version)

    def contact(self, signup: Signup) -> Contact | None:
        """Who signed up, or None once erased."""
        text = self.contacts.unseal(signup.contact, f"contact:{signup.id}")
        return None if text is None else msgspec.json.decode(text, type=Contact)

    def availability(self, consultation_id: UUID, now: datetime) -> list[Availability]:
        """Each session not yet started, with its seats left."""
        consultation = self.consultations.by_id(consultation_id)
        return [
            Availability(s.id, s.title, s.starts_at, s.capacity - len(self._seats(consultation_id, s.id).holders), s.duration_minutes)
            for s in consultation.definition.sessions
            if now < s.starts_at
        ]

    def attendees(self, slug: str, session_id: str) -> list[tuple[Signup, Contact]]:
        """The confirmed signups of a session with who they are, in the order they confirmed."""
        consultation = self.consultations.get(slug)
        if session_id not in {s.id for s in consultation.definition.sessions}:
            raise SessionNotFound(session_id)
        return [(s, c) for s in self.confirmed(consultation.id, session_id) if (c := self.contact(s))]

    def confirmed(self, consultation_id: UUID, session_id: str) -> list[Signup]:
        """The signups holding a seat in a session, in the order they confirmed."""
        return [self.get(i) for i in self._seats(consultation_id, session_id).holders]

    def erased(self) -> list[Signup.Erased]:
        """Every erasure in the log: what to destroy again after restoring a backup."""
        return list(self.app.select_events(Signup.Erased))

    def _why_invalid(self, signup: Signup, purpose: Purpose, token: str) -> str:
        requests = range(1, signup.request + 1) if purpose is Purpose.CONFIRM else (0,)
        sent = token.encode("utf-8", "surrogatepass")  # compared as bytes: any text a link is given (é, a lone surrogate) is just wrong
        genuine = next((n for n in requests if hmac.compare_digest(self.links.token(purpose, signup.id, n).encode(), sent)), None)
        if genuine is None:
            return INVALID_LINK
        if signup.state is State.ERASING:
            return ERASING
        if signup.state is State.ERASED or purpose is Purpose.MANAGE:  # a manage link fails only once erased
            return ERASED
        return REPLACED if genuine < signup.request else VOIDED

    def _find(self, signup_id: UUID) -> Signup | None:
        return self.app.find(signup_id, Signup)

    def _seats(self, consultation_id: UUID, session_id: str) -> Seats:
        return self.app.find(seats_id(consultation_id, session_id), Seats) or Seats(consultation_id, session_id)

    def _release_seat(self, signup: Signup) -> tuple[Seats, ...]:
        if signup.state is not State.CONFIRMED:
            return ()
        seats = self._seats(signup.consultation_id, signup.session_id)
        seats.free(signup.id)
        return (seats,)


def _email_digest(consultation_id: UUID, email: str) -> str:
    """How a signup is found again by its email; most mail systems ignore case, so this does too."""
    return hashlib.sha256(f"{consultation_id}:{email.casefold()}".encode()).hexdigest()
