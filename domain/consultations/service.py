"""Consultations and their responses: loading and operating a consultation, submitting answers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from domain.consultations.consultation import Answer, Consultation, Definition, consultation_id
from domain.consultations.response import Response
from domain.core import Agora
from domain.errors import ConsultationNotFound, DomainError, ResponseNotFound
from domain.review.frame import CodingFrame
from domain.sealed import Vault


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


class Consultations:
    def __init__(self, app: Agora, texts: Vault) -> None:
        self.app = app
        self.texts = texts  # the keys of free-text answers

    def load(self, definition: Definition) -> tuple[UUID, bool]:
        """Create the consultation (with its coding frame) unless it exists; its id and whether it was created."""
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
        """
        now = now or datetime.now(UTC)
        consultations: dict[str, Consultation | DomainError] = {}
        checked: list[tuple[Consultation, dict[str, Answer]] | DomainError] = []
        for submission in submissions:
            if submission.slug not in consultations:
                try:
                    consultations[submission.slug] = self.get(submission.slug)
                except ConsultationNotFound as e:
                    consultations[submission.slug] = e
            consultation = consultations[submission.slug]
            try:
                if isinstance(consultation, DomainError):
                    raise consultation
                checked.append((consultation, consultation.check_response(submission.answers, now)))
            except DomainError as e:
                checked.append(e)
        # Free text is sealed under a key per answer, bound to its question; the batch's keys are recorded in one transaction.
        texts = [(q, a) for c in checked if isinstance(c, tuple) for q, a in c[1].items() if q in c[0].text_questions]
        sealed = iter(self.texts.seal(texts))
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
        positions = {rec.domain_event.originator_id: rec.notification.id for rec in self.app.save(*accepted)} if accepted else {}
        return [Receipt(r[0].id, r[1], positions[r[0].id]) if isinstance(r, tuple) else r for r in results]

    def response(self, response_id: UUID) -> Response:
        response = self.app.find(response_id, Response)
        if response is None:  # no such id, or the id of something else
            raise ResponseNotFound(response_id)
        return response
