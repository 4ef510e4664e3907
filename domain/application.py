"""The Agora application: every command on consultations and responses, one notification log."""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any
from uuid import UUID, uuid4

import argon2
import email_validator
import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError
from eventsourcing.utils import get_topic

import store

from domain.codec import MsgspecMapper, MsgspecTranscoder
from store.keys import KeyStore, Sealed, seal, unseal
from domain.consultation import Answer, Consultation, Definition, Theme, consultation_id
from domain.frame import CodingFrame, frame_id
from domain.errors import (
    ConsultationNotFound,
    DomainError,
    FieldError,
    InvalidInput,
    NotAuthenticated,
    ResponseNotFound,
    SessionFull,
    ShredIncomplete,
    SignupLinkInvalid,
    StaffNotFound,
)
from domain.response import Response
from domain.review import ClaimConflict, Flag, Outcome, ReviewCase, case_id
from domain.signup import Availability, Contact, LinkTokens, Purpose, Seats, Signup, State, normal_email, seats_id
from domain.staff import Role, StaffConflict, StaffMember, staff_id



class Submission(msgspec.Struct, frozen=True):
    slug: str
    answers: dict[str, Any]  # as received; the consultation checks each against its question


class Receipt(msgspec.Struct, frozen=True):
    """A recorded response. The receipt is the respondent's secret: only its hash is stored."""

    id: UUID
    receipt: str
    position: Annotated[int, msgspec.Meta(description="Notification position; pass as `?after=` to read your write")]


def hash_receipt(receipt: str) -> str:
    return hashlib.sha256(receipt.encode()).hexdigest()


class Agora(Application[UUID]):
    name = "agora"
    # Consultations are read on every submission batch; the cache fast-forwards from
    # the store, so a close recorded by another process is still seen.
    env = {"AGGREGATE_CACHE_MAXSIZE": "256"}

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        # argon2id with RFC 9106's low-memory profile; a test suite may choose a cheaper one.
        profile = self.env.get("AGORA_PASSWORD_PROFILE", "RFC_9106_LOW_MEMORY")
        self.passwords = argon2.PasswordHasher.from_parameters(getattr(argon2.profiles, profile))
        self.keys = KeyStore(self.factory, "data_keys")  # free-text answers
        self.contacts = KeyStore(self.factory, "contact_keys")  # signups' names and emails, indexed by email
        self.links = LinkTokens(self.env.get("AGORA_SECRET") or store.local_secret())

    @cached_property
    def _dummy_hash(self) -> str:
        return self.passwords.hash(secrets.token_urlsafe(16))

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=MsgspecTranscoder(), mapper_class=MsgspecMapper)

    # Consultations

    def load(self, definition: Definition) -> tuple[UUID, bool]:
        """Create the consultation unless it exists; returns its id and whether it was created."""
        try:
            return self._consultation(definition.slug).id, False
        except ConsultationNotFound:
            consultation = Consultation(definition)
            try:
                self.save(consultation, CodingFrame(consultation_id=consultation.id, themes=definition.themes))
            except IntegrityError:  # another process created it meanwhile
                return consultation.id, False
            return consultation.id, True

    def consultation(self, slug: str) -> Consultation:
        return self._consultation(slug)

    def open_consultation(self, slug: str) -> int | None:
        return self._change(slug, Consultation.open)

    def close_consultation(self, slug: str) -> int | None:
        return self._change(slug, Consultation.close)

    def move_closing_time(self, slug: str, closes_at: datetime | None) -> int | None:
        return self._change(slug, lambda c: c.move_closing_time(closes_at))

    def set_draft_url(self, slug: str, draft_url: str) -> int | None:
        return self._change(slug, lambda c: c.set_draft_url(draft_url))

    # Responses

    def submit(self, slug: str, answers: dict[str, Any]) -> Receipt:
        (result,) = self.submit_batch([Submission(slug, answers)])
        if isinstance(result, DomainError):
            raise result
        return result

    def submit_batch(self, submissions: Sequence[Submission], now: datetime | None = None) -> list[Receipt | DomainError]:
        """Check each submission and record all accepted ones in one transaction (group commit).

        A refused submission gets its error in its place in the result; it does not stop the others.
        """
        now = now or datetime.now(UTC)
        consultations: dict[str, Consultation | DomainError] = {}
        checked: list[tuple[Consultation, dict[str, Answer]] | DomainError] = []
        for submission in submissions:
            if submission.slug not in consultations:
                try:
                    consultations[submission.slug] = self._consultation(submission.slug)
                except ConsultationNotFound as e:
                    consultations[submission.slug] = e
            consultation = consultations[submission.slug]
            try:
                if isinstance(consultation, DomainError):
                    raise consultation
                checked.append((consultation, consultation.check_response(submission.answers, now)))
            except DomainError as e:
                checked.append(e)
        # Free text is sealed under a key per answer; the batch's keys are recorded in one transaction.
        texts = [(q, a) for c in checked if isinstance(c, tuple) for q, a in c[1].items() if q in c[0].text_questions]
        sealed = iter(self._seal(texts))
        results: list[tuple[Response, str] | DomainError] = []
        for c in checked:
            if isinstance(c, DomainError):
                results.append(c)
                continue
            consultation, answers = c
            receipt = secrets.token_urlsafe(24)
            plain = {q: a for q, a in answers.items() if q not in consultation.text_questions}
            sealed_texts = {q: next(sealed) for q in answers if q in consultation.text_questions}
            response = Response(consultation.id, consultation.revision, plain, sealed_texts, hash_receipt(receipt))
            results.append((response, receipt))
        accepted = [r[0] for r in results if isinstance(r, tuple)]
        positions = {rec.domain_event.originator_id: rec.notification.id for rec in self.save(*accepted)} if accepted else {}
        return [Receipt(r[0].id, r[1], positions[r[0].id]) if isinstance(r, tuple) else r for r in results]

    def answers(self, response_id: UUID) -> dict[str, Answer | None]:
        """A response's answers as they now read: texts decrypted, redactions applied; None where erased."""
        response = self._response(response_id)
        texts = dict(response.texts)
        case = self._existing_case(response_id)
        if case:
            texts.update({q: versions[-1] for q, versions in case.redactions.items()})
        return {**response.answers, **{q: self._unseal(q, sealed) for q, sealed in texts.items()}}

    def response(self, response_id: UUID) -> Response:
        return self._response(response_id)

    # Staff

    def enrol(self, email: str, name: str, password: str, roles: Sequence[Role], by: UUID | None) -> UUID:
        """Enrol a staff member; `by` is the admin doing it (None: the operator's bootstrap)."""
        if by is not None:
            self.staff(by).require(Role.ADMIN)
        _check_credentials(email, name, password)
        if self._exists(staff_id(email)):
            raise StaffConflict(f"{email} is already enrolled.")
        member = StaffMember(email=email.strip().lower(), name=name.strip(), password_hash=self.passwords.hash(password), roles=tuple(roles), by=by)
        self.save(member)
        return member.id

    def staff(self, member_id: UUID) -> StaffMember:
        try:
            member = self.repository.get(member_id)
        except AggregateNotFoundError:
            member = None
        if not isinstance(member, StaffMember):
            raise StaffNotFound(member_id)
        return member

    def authenticate(self, email: str, password: str) -> StaffMember:
        refused = NotAuthenticated("Wrong email or password, or the account is deactivated.")
        try:
            member = self.staff(staff_id(email))
        except StaffNotFound:
            # Verify anyway, so that an unknown address takes as long as a wrong password.
            member, hash_ = None, self._dummy_hash
        else:
            hash_ = member.password_hash
        try:
            self.passwords.verify(hash_, password)
        except argon2.exceptions.VerificationError:
            raise refused from None
        if member is None:
            raise refused
        if not member.active:
            raise refused
        return member

    def grant(self, member_id: UUID, role: Role, by: UUID) -> None:
        member = self.staff(member_id)
        member.grant(role, self.staff(by))
        self.save(member)

    def revoke(self, member_id: UUID, role: Role, by: UUID) -> None:
        member = self.staff(member_id)
        member.revoke(role, self.staff(by))
        self.save(member)

    def deactivate(self, member_id: UUID, by: UUID) -> None:
        member = self.staff(member_id)
        member.deactivate(self.staff(by))
        self.save(member)

    # Review

    def claim(self, response_id: UUID, by: UUID, lease: timedelta) -> tuple[datetime, int]:
        """Claim a response for review; returns when the lease ends, and the event's position."""
        case = self._case(response_id, create=True)
        position = self._act(case, by, Role.REVIEWER, lambda now: case.claim(by, now, lease))
        assert case.until is not None and position is not None  # a claim always records
        return case.until, position

    def release(self, response_id: UUID, by: UUID) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.release(by, now))

    def note(self, response_id: UUID, by: UUID, text: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.note(by, text, now))

    def tag(self, response_id: UUID, by: UUID, theme_id: str) -> int | None:
        case = self._case(response_id)
        self.frame(self._response(response_id).consultation_id).active(theme_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.tag(by, theme_id, now))

    def untag(self, response_id: UUID, by: UUID, theme_id: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.untag(by, theme_id, now))

    def flag(self, response_id: UUID, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None) -> int | None:
        case = self._case(response_id)
        if duplicate_of is not None:
            self._response(duplicate_of)
        return self._act(case, by, Role.REVIEWER, lambda now: case.flag(by, flag, reason, duplicate_of, now))

    def mark_quote(self, response_id: UUID, by: UUID, question_id: str, start: int, end: int) -> int | None:
        case = self._case(response_id)
        text = self._text(response_id, question_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.mark_quote(by, question_id, start, end, text, now))

    def redact(self, response_id: UUID, by: UUID, question_id: str, start: int, end: int, reason: str) -> int | None:
        """Replace a span of a text answer; the earlier version stays readable until an admin shreds it."""
        case = self._case(response_id)
        text = self._text(response_id, question_id)

        def seal_(redacted: str) -> Sealed:
            return self._seal([(question_id, redacted)])[0]

        return self._act(case, by, Role.REVIEWER, lambda now: case.redact(by, question_id, start, end, reason, text, seal_, now))

    def shred_originals(self, response_id: UUID, by: UUID, question_id: str) -> int:
        """Confirm a redaction: destroy the keys of every earlier version of the answer, for good."""
        self.staff(by).require(Role.ADMIN)
        case = self._case(response_id, create=True)  # never reviewed, so never redacted: the case says so
        original = self._response(response_id).texts.get(question_id)
        if original is None:
            raise InvalidInput([FieldError("question_id", "This response has no such text answer.")])
        key_ids = case.superseded_keys(question_id, original)
        case.shred_originals(by, question_id, key_ids)
        position = self.save(case)[-1].notification.id  # the record comes first; destroying again is harmless
        try:
            self.keys.destroy(key_ids)
        except PersistenceError as e:
            raise ShredIncomplete(f"The shredding is recorded but not finished ({e}); shred again to finish it.") from e
        return position

    def complete(self, response_id: UUID, by: UUID, outcome: Outcome, reason: str) -> int | None:
        case = self._case(response_id)
        return self._act(case, by, Role.REVIEWER, lambda now: case.complete(by, outcome, reason, now))

    def reopen(self, response_id: UUID, by: UUID, reason: str) -> int | None:
        case = self._case(response_id, create=True)  # a response never reviewed has nothing to reopen: the case says so
        return self._act(case, by, Role.EDITOR, lambda now: case.reopen(by, reason))

    def reshred(self) -> int:
        """Destroy again every key the log says was destroyed: run after restoring the key store from a backup."""
        texts = [k for e in self.select_events(ReviewCase.OriginalsShredded) for k in e.key_ids]
        contacts = [e.key_id for e in self.select_events(Signup.Erased)]
        self.keys.destroy(texts)
        self.contacts.destroy(contacts)
        return len(texts) + len(contacts)

    def select_events(self, *classes: type) -> Iterator[Any]:
        """Every recorded event of these classes, oldest first."""
        topics = [get_topic(cls) for cls in classes]
        start = 1
        while batch := self.recorder.select_notifications(start=start, limit=1000, topics=topics):
            yield from (self.mapper.to_domain_event(n) for n in batch)
            start = batch[-1].id + 1

    # Signups

    def request_signup(self, slug: str, session_id: str, name: str, email: str, consent: bool, now: datetime | None = None) -> UUID:
        """Record a request to join a session; the mailer then sends a link to confirm it.

        One signup per email and consultation: asking again re-sends what fits its state.
        """
        now = now or datetime.now(UTC)
        consultation = self._consultation(slug)
        session, contact = consultation.check_signup(session_id, name, email, consent, now)
        candidate = str(uuid4())
        owner, key_id, key = self.contacts.find_or_create(_email_digest(consultation.id, contact.email), candidate, uuid4().hex)
        signup_id = UUID(owner)

        def command() -> tuple[Signup]:
            signup = self._signup(signup_id, missing_ok=True)
            if signup is None:
                sealed = Sealed(key_id, seal(key, msgspec.json.encode(contact).decode(), f"contact:{signup_id}"))
                confirm, manage = self.links.hash(Purpose.CONFIRM, signup_id, 1), self.links.hash(Purpose.MANAGE, signup_id)
                return (Signup(signup_id, consultation.id, session.id, sealed, 1, confirm, manage),)
            last_asked = self._recorded_at(signup, signup.asked_version)
            signup.request_again(session.id, self.links.hash(Purpose.CONFIRM, signup_id, signup.request + 1), now, last_asked)
            return (signup,)

        try:
            self._retrying(command)
        except Exception:
            if owner == candidate and self._signup(signup_id, missing_ok=True) is None:
                self.contacts.destroy([key_id])  # leave no key or email digest behind a signup never recorded
            raise
        return signup_id

    def confirm_signup(self, signup_id: UUID, token: str, session_id: str | None = None, now: datetime | None = None) -> Signup:
        """Take a seat in the requested session, or in `session_id` instead (say, when that one is full)."""
        now = now or datetime.now(UTC)

        def command() -> tuple[Signup, ...]:
            signup = self._signup(signup_id)
            signup.check(Purpose.CONFIRM, token)
            if signup.state is State.CONFIRMED:  # a second click: nothing more to do
                return (signup,)
            consultation = self._consultation_by_id(signup.consultation_id)
            session = consultation.session(session_id or signup.session_id, now)
            seats = self._seats(consultation.id, session.id)
            try:
                seats.take(signup.id, session.capacity)
            except SessionFull:
                others = [a for a in self.availability(consultation.id, now) if a.session_id != session.id and a.seats_left]
                raise SessionFull(f"Every seat of '{session.title}' is taken.", tuple(others)) from None
            signup.confirm(session.id)
            return signup, seats

        return self._retrying(command)[0]

    def cancel_signup(self, signup_id: UUID, token: str) -> Signup:
        """Withdraw, giving back the seat if one was taken. Cancelling again changes nothing."""

        def command() -> tuple[Signup, ...]:
            signup = self._signup(signup_id)
            signup.check(Purpose.MANAGE, token)
            seats = self._release_seat(signup)
            signup.cancel()
            return (signup, *seats)

        return self._retrying(command)[0]

    def erase_signup(self, signup_id: UUID, token: str | None) -> Signup:
        """Forget the person: record the erasure, then destroy their key. `token` None: the operator.

        Erasing again destroys again, finishing a scrub that failed.
        """

        def command() -> tuple[Signup, ...]:
            signup = self._signup(signup_id)
            if token is not None:
                signup.check(Purpose.MANAGE, token, erased_ok=True)
            seats = self._release_seat(signup)
            signup.erase()
            return (signup, *seats)

        signup = self._retrying(command)[0]
        try:
            self.contacts.destroy([signup.contact.key_id])
        except PersistenceError as e:
            raise ShredIncomplete(f"The erasure is recorded but not finished ({e}); erase again to finish it.") from e
        return signup

    def find_signup(self, slug: str, email: str) -> UUID | None:
        """The signup of this email address for this consultation, unless none or erased."""
        consultation = self._consultation(slug)
        try:
            email = normal_email(email)
        except email_validator.EmailNotValidError:
            return None
        owner = self.contacts.owner(_email_digest(consultation.id, email))
        return UUID(owner) if owner else None

    def signup(self, signup_id: UUID) -> Signup:
        return self._signup(signup_id)

    def has_signup(self, signup_id: UUID) -> bool:
        try:
            return self._signup(signup_id, missing_ok=True) is not None
        except SignupLinkInvalid:  # the id of something else
            return False

    def consultation_of(self, signup: Signup) -> Consultation:
        return self._consultation_by_id(signup.consultation_id)

    def confirmed_at(self, signup: Signup) -> datetime:
        """When the signup's current confirmation was recorded."""
        return self._recorded_at(signup, signup.confirmed_version)

    def _recorded_at(self, signup: Signup, version: int) -> datetime:
        (recorded,) = self.events.get(signup.id, gt=version - 1, lte=version)
        return recorded.timestamp

    def contact(self, signup: Signup) -> Contact | None:
        """Who signed up, or None once erased."""
        key = self.contacts.get(signup.contact.key_id)
        if key is None:
            return None
        return msgspec.json.decode(unseal(key, signup.contact.data, f"contact:{signup.id}"), type=Contact)

    def record_sent(self, signup_id: UUID, message_id: str) -> None:
        def command() -> tuple[Signup]:
            signup = self._signup(signup_id)
            signup.record_sent(message_id)
            return (signup,)

        self._retrying(command)

    def availability(self, consultation_id: UUID, now: datetime) -> list[Availability]:
        """Each session not yet started, with its seats left."""
        consultation = self._consultation_by_id(consultation_id)
        return [
            Availability(s.id, s.title, s.starts_at, s.capacity - len(self._seats(consultation_id, s.id).holders))
            for s in consultation.definition.sessions
            if now < s.starts_at
        ]

    def attendees(self, slug: str, session_id: str) -> list[tuple[Signup, Contact]]:
        """The confirmed signups of a session with who they are, in the order they confirmed."""
        consultation = self._consultation(slug)
        if session_id not in {s.id for s in consultation.definition.sessions}:
            raise InvalidInput([FieldError("session", "There is no such session.")])
        return [(s, c) for s in self.confirmed(consultation.id, session_id) if (c := self.contact(s))]

    def confirmed(self, consultation_id: UUID, session_id: str) -> list[Signup]:
        """The signups holding a seat in a session, in the order they confirmed."""
        return [self._signup(i) for i in self._seats(consultation_id, session_id).holders]

    # Coding frame

    def frame(self, consultation_id: UUID) -> CodingFrame:
        """The consultation's coding frame; an empty one, saved with its first theme, if it was recorded without."""
        try:
            return self.repository.get(frame_id(consultation_id))
        except AggregateNotFoundError:
            return CodingFrame(consultation_id=consultation_id, themes=())

    def add_theme(self, slug: str, theme: Theme, by: UUID) -> int:
        return self._edit_frame(slug, by, lambda f: f.add(theme, by))

    def revise_theme(self, slug: str, theme: Theme, by: UUID) -> int | None:
        return self._edit_frame(slug, by, lambda f: f.revise(theme, by))

    def retire_theme(self, slug: str, theme_id: str, by: UUID) -> int:
        return self._edit_frame(slug, by, lambda f: f.retire(theme_id, by))

    def history(self, response_id: UUID) -> list[Any]:
        """Every recorded event about a response, oldest first: its submission, then its review."""
        return [*self.events.get(self._response(response_id).id), *self.events.get(case_id(response_id))]

    # Log

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def _consultation(self, slug: str) -> Consultation:
        try:
            return self.repository.get(consultation_id(slug))
        except AggregateNotFoundError:
            raise ConsultationNotFound(slug) from None

    def _edit_frame(self, slug: str, by: UUID, command: Any) -> Any:
        self.staff(by).require(Role.EDITOR)
        frame = self.frame(self._consultation(slug).id)
        command(frame)
        recordings = self.save(frame)
        return recordings[-1].notification.id if recordings else None

    def _text(self, response_id: UUID, question_id: str) -> str:
        text = self.answers(response_id).get(question_id)
        if question_id not in self._response(response_id).texts or not isinstance(text, str):
            raise InvalidInput([FieldError("question_id", "Choose a text answer of this response that is not erased.")])
        return text

    def _seal(self, texts: list[tuple[str, str]]) -> list[Sealed]:
        """Encrypt each (question id, text) under a new key; the question id is bound in as associated data."""
        keys = self.keys.create(uuid4().hex for _ in texts)
        return [Sealed(key_id, seal(key, text, question_id)) for (key_id, key), (question_id, text) in zip(keys.items(), texts, strict=True)]

    def _unseal(self, question_id: str, sealed: Sealed) -> str | None:
        key = self.keys.get(sealed.key_id)
        return unseal(key, sealed.data, question_id) if key else None

    def _consultation_by_id(self, consultation_id: UUID) -> Consultation:
        consultation = self.repository.get(consultation_id)
        assert isinstance(consultation, Consultation)
        return consultation

    def _signup(self, signup_id: UUID, missing_ok: bool = False) -> Any:
        """The signup; an unknown id is refused like a wrong token, so links reveal nothing."""
        try:
            signup = self.repository.get(signup_id)
        except AggregateNotFoundError:
            signup = None
        if isinstance(signup, Signup) or (signup is None and missing_ok):
            return signup
        raise SignupLinkInvalid("This link is not valid: it may have been used already, or replaced by a newer one.")

    def _seats(self, consultation_id: UUID, session_id: str) -> Seats:
        try:
            return self.repository.get(seats_id(consultation_id, session_id))
        except AggregateNotFoundError:
            return Seats(consultation_id, session_id)

    def _release_seat(self, signup: Signup) -> tuple[Seats, ...]:
        if signup.state is not State.CONFIRMED:
            return ()
        seats = self._seats(signup.consultation_id, signup.session_id)
        seats.free(signup.id)
        return (seats,)

    def _retrying(self, command: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        """Run a command on fresh copies of its aggregates and save them together, again if another
        writer got there first (optimistic concurrency). Confirmations of one session all write to
        its seats: under a rush they collide, and back off at random so that each gets its turn."""
        for attempt in itertools.count():
            aggregates = command()
            try:
                self.save(*aggregates)
                return aggregates
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 7)))  # at most a quarter second

    def _existing_case(self, response_id: UUID) -> ReviewCase | None:
        try:
            return self.repository.get(case_id(response_id))
        except AggregateNotFoundError:
            return None

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _response(self, response_id: UUID) -> Response:
        try:
            response = self.repository.get(response_id)
        except AggregateNotFoundError:
            response = None
        if not isinstance(response, Response):  # no such id, or the id of something else
            raise ResponseNotFound(response_id)
        return response

    def _case(self, response_id: UUID, create: bool = False) -> ReviewCase:
        self._response(response_id)
        case = self._existing_case(response_id)
        if case is not None:
            return case
        if not create:
            raise ClaimConflict("Claim the response first: only the holder of a live claim can act on it.")
        return ReviewCase(response_id)

    def _act(self, case: ReviewCase, by: UUID, role: Role, command: Any) -> int | None:
        """Run a review command as `by`, who needs `role`; the position of its event, or None if it changed nothing."""
        self.staff(by).require(role)
        try:
            command(datetime.now(UTC))
        except ClaimConflict as e:
            if e.holder is None or e.until is None:
                raise
            holder = self.staff(e.holder).name  # say who, in words a colleague recognises
            raise ClaimConflict(f"Claimed by {holder} until {e.until.isoformat()}.", e.holder, e.until) from None
        try:
            recordings = self.save(case)
        except IntegrityError:  # another action on this case was recorded first
            raise ClaimConflict("Someone else acted on this response a moment ago; look again.") from None
        return recordings[-1].notification.id if recordings else None

    def _change(self, slug: str, command: Any) -> int | None:
        """Apply a command to a consultation; returns the position of its event, or None if nothing changed."""
        consultation = self._consultation(slug)
        command(consultation)
        recordings = self.save(consultation)
        return recordings[-1].notification.id if recordings else None


_ATTEMPTS = 30


def _email_digest(consultation_id: UUID, email: str) -> str:
    """How a signup is found again by its email; most mail systems ignore case, so this does too."""
    return hashlib.sha256(f"{consultation_id}:{email.casefold()}".encode()).hexdigest()


def _check_credentials(email: str, name: str, password: str) -> None:
    errors = []
    if not _EMAIL.fullmatch(email.strip()):
        errors.append(FieldError("email", "Expected an email address."))
    if not 1 <= len(name.strip()) <= 200:
        errors.append(FieldError("name", "A name needs between 1 and 200 characters."))
    if not 12 <= len(password) <= 1024:
        errors.append(FieldError("password", "A password needs at least 12 characters."))
    if errors:
        raise InvalidInput(errors)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
