"""A respondent's submitted answers. It holds no name, email or address: responses are anonymous."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.consultation import Answer


class Response(Aggregate):
    class Submitted(Aggregate.Created):
        consultation_id: UUID
        revision: int
        answers: dict[str, Answer]
        receipt_hash: str

    @event(Submitted)
    def __init__(self, consultation_id: UUID, revision: int, answers: dict[str, Answer], receipt_hash: str) -> None:
        self.consultation_id = consultation_id
        self.revision = revision
        self.answers = answers
        self.receipt_hash = receipt_hash
