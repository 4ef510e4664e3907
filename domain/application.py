"""The Agora application: every command on consultations and responses, one notification log."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper

from domain.codec import MsgspecMapper, MsgspecTranscoder
from domain.consultation import Consultation, Definition, consultation_id
from domain.errors import ConsultationNotFound, DomainError
from domain.response import Response


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
                self.save(consultation)
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
        results: list[Receipt | DomainError | tuple[Response, str]] = []
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
                answers = consultation.check_response(submission.answers, now)
            except DomainError as e:
                results.append(e)
                continue
            receipt = secrets.token_urlsafe(24)
            results.append((Response(consultation.id, consultation.revision, answers, hash_receipt(receipt)), receipt))
        accepted = [r[0] for r in results if isinstance(r, tuple)]
        positions = {rec.domain_event.originator_id: rec.notification.id for rec in self.save(*accepted)} if accepted else {}
        return [
            Receipt(r[0].id, r[1], positions[r[0].id]) if isinstance(r, tuple) else r
            for r in results
        ]

    def response(self, response_id: UUID) -> Response:
        return self.repository.get(response_id)

    # Log

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def _consultation(self, slug: str) -> Consultation:
        try:
            return self.repository.get(consultation_id(slug))
        except AggregateNotFoundError:
            raise ConsultationNotFound(slug) from None

    def _change(self, slug: str, command: Any) -> int | None:
        """Apply a command to a consultation; returns the position of its event, or None if nothing changed."""
        consultation = self._consultation(slug)
        command(consultation)
        recordings = self.save(consultation)
        return recordings[-1].notification.id if recordings else None
