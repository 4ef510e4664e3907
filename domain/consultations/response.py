"""A respondent's submitted answers. It holds no name, email or address: responses are anonymous.

Free text may name people anyway, so it is kept only as ciphertext, each answer under a data key
of its own (store/keys.py): destroying the key erases the text from the immutable log.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain.consultations.consultation import Answer
from domain.sealed import Sealed


@stored_as("domain.response")
class Response(Aggregate):
    class Submitted(Aggregate.Created):
        class_version = 3
        consultation_id: UUID
        revision: int
        answers: dict[str, Answer]  # choices and yes/no, in clear: they name no one
        texts: dict[str, Sealed]
        receipt_hash: str
        # A keyed submission's answers as sent, MACed under the server's secret (never a bare hash
        # of text that may name people): a retry with the same key must carry the same answers.
        fingerprint: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["texts"] = {}  # version 1 kept free text among the answers, in clear

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["fingerprint"] = ""  # before version 3, retries were told apart in Redis only

    @event(Submitted)
    def __init__(
        self,
        consultation_id: UUID,
        revision: int,
        answers: dict[str, Answer],
        texts: dict[str, Sealed],
        receipt_hash: str,
        fingerprint: str = "",
        id: UUID | None = None,  # noqa: A002 - eventsourcing's name for a chosen aggregate id
    ) -> None:
        self.consultation_id = consultation_id
        self.revision = revision
        self.answers = answers
        self.texts = texts
        self.receipt_hash = receipt_hash
        self.fingerprint = fingerprint
