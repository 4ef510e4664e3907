"""Consultations and their responses: loading and operating a consultation, submitting answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from domain.consultations.consultation import Answer, Consultation, Definition, check_draft_url, consultation_id
from domain.consultations.response import Response
from domain.core import Agora
from domain.errors import ConsultationNotFound, DomainError, IdempotencyKeyReused, ResponseNotFound
from domain.review.frame import CodingFrame
from domain.sealed import Vault


ATTEMPTS = 5  # of a submission batch, when a concurrent write refused it


class Submission(msgspec.Struct, frozen=True):
    slug: str
    answers: dict[str, Any]  # as received; the consultation checks each against its question
    key: str | None = None  # the client's Idempotency-Key: every retry with it is the same submission


class Receipt(msgspec.Struct, frozen=True):
    """A recorded response. The receipt is the respondent's secret: only its hash is stored."""

    id: UUID
    receipt: str
    position: Annotated[int, msgspec.Meta(description="Notification position; pass as `?after=` to read your write")]


def hash_receipt(receipt: str) -> str:
    return hashlib.sha256(receipt.encode()).hexdigest()


class Keyed:
    """What a keyed submission derives from its Idempotency-Key under the server's secret.

    Any retry, in any process, after any crash, arrives at the same response id and receipt, so
    the event store's own uniqueness of (id, version) decides that a response is recorded once.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _mac(self, *parts: str | bytes) -> bytes:
        message = b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def response_id(self, slug: str, key: str) -> UUID:
        return uuid.UUID(bytes=self._mac("response", slug, key)[:16], version=4)

    def receipt(self, response_id: UUID) -> str:
        return base64.urlsafe_b64encode(self._mac("receipt", response_id.bytes)[:24]).decode()

    def fingerprint(self, key: str, answers: dict[str, Any]) -> str:
        """What tells a retry from a key reused with other answers. The log keeps it for good, so it is
        keyed by the Idempotency-Key too (never stored): the server's secret alone cannot test guesses of
        a passage redacted since against it."""
        return hmac.new(self._mac("fingerprint", key), msgspec.json.encode(answers, order="sorted"), hashlib.sha256).hexdigest()

    def fingerprint_before(self, answers: dict[str, Any]) -> str:
        """The fingerprint responses recorded before 2026-12-01 keep (under the secret alone): a retry
        of one is compared with it; nothing is recorded with it any more."""
        return self._mac("answers", msgspec.json.encode(answers, order="sorted")).hex()


class Consultations:
    def __init__(self, app: Agora, texts: Vault, keyed: Keyed) -> None:
        self.app = app
        self.texts = texts  # the keys of free-text answers
        self.keyed = keyed
        # Each consultation as a submission batch last read it: a batch's first attempt checks against it
        # without reading the store, as the insert refuses the batch if the consultation changed since.
        self._checked: dict[str, Consultation] = {}

    def load(self, definition: Definition) -> tuple[UUID, bool]:
        """Create the consultation (with its coding frame) unless it exists; its id and whether it was created."""
        check_draft_url(definition.draft_url)  # here, not in Definition: recorded definitions are read back through it
        try:
            return self.get(definition.slug).id, False
        except ConsultationNotFound:
            consultation = Consultation(definition)
            try:
                self.app.save(consultation, CodingFrame(consultation_id=consultation.id, themes=definition.themes))
            except IntegrityError:  # another process created it meanwhile
                return consultation.id, False
            return consultation.id, True

    def get(self, slug: str) -> Consultation:
        consultation = self.app.find(consultation_id(slug), Consultation)
        if consultation is None:
            raise ConsultationNotFound(slug)
        return consultation

    def exists(self, slug: str) -> bool:
        """Whether the log holds a consultation of this slug (one query, no replay)."""
        return self.app.exists(consultation_id(slug))

    def by_id(self, consultation_id_: UUID) -> Consultation:
        consultation = self.app.find(consultation_id_, Consultation)
        assert consultation is not None, consultation_id_  # ids come from recorded events
        return consultation

    def slugs(self) -> list[str]:
        return [e.definition.slug for e in self.app.select_events(Consultation.Created)]

    def open(self, slug: str) -> int | None:
        return self._change(slug, Consultation.open)

    def close(self, slug: str) -> int | None:
        return self._change(slug, Consultation.close)

    def move_closing_time(self, slug: str, closes_at: datetime | None) -> int | None:
        return self._change(slug, lambda c: c.move_closing_time(closes_at))

    def set_draft_url(self, slug: str, draft_url: str) -> int | None:
        return self._change(slug, lambda c: c.set_draft_url(draft_url))

    def _change(self, slug: str, command: Callable[[Consultation], None]) -> int | None:
        """Apply a command to a consultation; the position of its event, or None if nothing changed."""
        consultation = self.get(slug)
        command(consultation)
        return self.app.record(consultation)

    # Responses

    def submit(self, slug: str, answers: dict[str, Any]) -> Receipt:
        (result,) = self.submit_batch([Submission(slug, answers)])
        if isinstance(result, DomainError):
            raise result
        return result

    def submit_batch(self, submissions: Sequence[Submission], now: datetime | None = None) -> list[Receipt | DomainError]:
        """Check each submission and record all accepted ones in one transaction (group commit).

        A refused submission gets its error in its place in the result; it does not stop the others.
        A keyed submission already recorded (by an earlier request, or earlier in this batch) gets its
        first receipt again and records nothing. The first attempt reads nothing from the store: it
        checks against each consultation as this process last read it, and looks up no id (a retry
        is rare). The store refuses the whole transaction if one of its consultations changed
        (closed) since, or if one of its ids is recorded already (by an earlier request, or another
        process meanwhile). Then, or if a consultation as last read refused a submission (it may have
        been opened since), the batch is checked again against the store, each id looked up first.
        """
        # Each submission's id and receipt, the same in every attempt: an attempt refused after it was recorded after
        # all (a commit whose answer was lost, store/postgres.py) is found by the next, never recorded twice.
        identities = [self._identity(s) for s in submissions]
        for attempt in range(ATTEMPTS - 1):
            try:
                return self._submit_batch(submissions, identities, now or datetime.now(UTC), look_up=attempt > 0)
            except (IntegrityError, _LastRead):
                pass  # the refused attempt recorded nothing, its keys neither
        return self._submit_batch(submissions, identities, now or datetime.now(UTC), look_up=True)

    def _identity(self, submission: Submission) -> _Identity:
        if submission.key is None:
            return _Identity(uuid.uuid4(), secrets.token_urlsafe(24), "", submission.answers)
        response_id = self.keyed.response_id(submission.slug, submission.key)
        return _Identity(response_id, self.keyed.receipt(response_id), self.keyed.fingerprint(submission.key, submission.answers), submission.answers)

    def _submit_batch(
        self, submissions: Sequence[Submission], identities: Sequence[_Identity], now: datetime, look_up: bool
    ) -> list[Receipt | DomainError]:
        consultations: dict[str, Consultation | DomainError] = {}
        checked: list[tuple[Consultation, dict[str, Answer], _Identity] | Receipt | DomainError | _Repeat] = []
        first: dict[UUID, tuple[str, int]] = {}  # an id's fingerprint, and where in this batch it was first
        for submission, identity in zip(submissions, identities, strict=True):
            done = self._repeat(identity, first, len(checked), look_up)
            if done is not None:
                checked.append(done)
                continue
            if submission.slug not in consultations:
                try:
                    if look_up or submission.slug not in self._checked:
                        self._checked[submission.slug] = self.get(submission.slug)
                    consultations[submission.slug] = self._checked[submission.slug]
                except ConsultationNotFound as e:
                    consultations[submission.slug] = e
            consultation = consultations[submission.slug]
            try:
                if isinstance(consultation, DomainError):
                    raise consultation
                checked.append((consultation, consultation.check_response(submission.answers, now), identity))
            except DomainError as e:
                if not look_up and not isinstance(consultation, DomainError):
                    # Refused by the consultation as last read: only the store's may refuse (it may have been
                    # opened or revised since), and a keyed retry of a response recorded before it closed is looked up.
                    raise _LastRead from e
                checked.append(e)
        # Free text is sealed under a key per answer, bound to its question; the keys are recorded in the events' transaction.
        texts = [(q, a) for c in checked if isinstance(c, tuple) for q, a in c[1].items() if q in c[0].text_questions]
        sealed_all, keys = self.texts.seal_for_save(texts)
        sealed = iter(sealed_all)
        results: list[tuple[Response, str] | Receipt | DomainError | _Repeat] = []
        for c in checked:
            if not isinstance(c, tuple):
                results.append(c)
                continue
            consultation, answers, identity = c
            plain = {q: a for q, a in answers.items() if q not in consultation.text_questions}
            sealed_texts = {q: next(sealed) for q in answers if q in consultation.text_questions}
            # Recorded at the time its rules were checked at: never past a closing time they allowed (an operator's).
            response = Response._create(
                Response.Submitted, id=identity.response_id, timestamp=now, consultation_id=consultation.id, revision=consultation.revision,
                answers=plain, texts=sealed_texts, receipt_hash=hash_receipt(identity.receipt), fingerprint=identity.fingerprint,
            )
            results.append((response, identity.receipt))
        accepted = [r[0] for r in results if isinstance(r, tuple)]
        # Recorded only if none of their consultations changed since checked (store/consistency.py).
        expect = {c[0].id: c[0].version for c in checked if isinstance(c, tuple)}
        # Their events rather than the aggregates: the library checks each against its protocols, which costs less for an event.
        events = [e for r in accepted for e in r.collect_events()]
        positions = {r.domain_event.originator_id: r.notification.id for r in self.app.save(*events, expect=expect, keys=keys)} if events else {}
        receipts = [Receipt(r[0].id, r[1], positions[r[0].id]) if isinstance(r, tuple) else r for r in results]
        # A repeat of a key first seen in this batch answers as its first did.
        return [receipts[r.index] if isinstance(r, _Repeat) else r for r in receipts]  # type: ignore[misc]

    def _repeat(self, identity: _Identity, first: dict[UUID, tuple[str, int]], index: int, look_up: bool) -> Receipt | DomainError | _Repeat | None:
        """A submission's earlier outcome: a pointer to its first occurrence in this batch (the same key; or a
        refusal of other answers under it), else if `look_up`, its recorded receipt (or that refusal); None if
        it is new, as far as looked."""
        if identity.response_id in first:
            earlier, at = first[identity.response_id]
            return _Repeat(at) if earlier == identity.fingerprint else _reused()
        recorded = self._recorded(identity) if look_up else None
        if recorded is None:
            first[identity.response_id] = (identity.fingerprint, index)
        return recorded

    def _recorded(self, identity: _Identity) -> Receipt | DomainError | None:
        """A submission's recorded receipt, a refusal if other answers were recorded under its key, or None."""
        recorded = self.app.find(identity.response_id, Response)
        if recorded is None:
            return None
        if recorded.fingerprint != identity.fingerprint and recorded.fingerprint != self.keyed.fingerprint_before(identity.answers):
            return _reused()
        # Its position is not kept with the aggregate; the head is at or past it, which is what `?after=` needs.
        return Receipt(identity.response_id, identity.receipt, self.app.head())

    def response(self, response_id: UUID) -> Response:
        response = self.app.find(response_id, Response)
        if response is None:  # no such id, or the id of something else
            raise ResponseNotFound(response_id)
        return response


class _LastRead(Exception):
    """A submission refused by its consultation as a batch last read it: check the batch again against the store's."""


class _Identity(msgspec.Struct, frozen=True):
    """A submission's id and receipt, kept through a batch's attempts: derived from its Idempotency-Key
    (`Keyed`), else drawn at random."""

    response_id: UUID
    receipt: str
    fingerprint: str  # "" without a key
    answers: dict[str, Any]  # as received: a retry of a response recorded before is compared by its fingerprint then


class _Repeat(msgspec.Struct, frozen=True):
    """A keyed submission repeated within one batch: it answers as the one at `index` did."""

    index: int


def _reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused("This Idempotency-Key was used with different answers.")
