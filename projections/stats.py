"""Public statistics: responses counted, and answers counted per option of each choice question."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from domain.consultations.consultation import Consultation, Kind
from domain.consultations.response import Response
from projections.form import FormReader
from projections.view import POSITION, RedisView, ViewReader, pairs

COUNTED = (Kind.SINGLE_CHOICE, Kind.YES_NO)


class StatsView(RedisView):
    name = "stats"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted: dict[UUID, tuple[str, frozenset[str]]] = {}  # per consultation: its hash, its counted questions

    def forget(self) -> None:
        self._counted.clear()

    def count_questions(self, tracking: Tracking, consultation_id: UUID, question_ids: list[str]) -> None:
        self._counted[consultation_id] = (f"stats:{consultation_id}", frozenset(question_ids))
        self.sadd(tracking, f"counted:{consultation_id}", *question_ids)

    def count_response(self, tracking: Tracking, consultation_id: UUID, answers: dict[str, str | bool]) -> None:
        suffix, counted = self._counted_questions(consultation_id)
        self.hincrby(tracking, suffix, "responses")
        for question_id in counted & answers.keys():
            self.hincrby(tracking, suffix, answer_field(question_id, answers[question_id]))

    def _counted_questions(self, consultation_id: UUID) -> tuple[str, frozenset[str]]:
        """Which questions of a consultation are counted; read back once after a restart."""
        if consultation_id not in self._counted:
            members = self.redis.smembers(self.keys.key(self.generation, f"counted:{consultation_id}"))
            self._counted[consultation_id] = (f"stats:{consultation_id}", frozenset(m.decode() for m in members))
        return self._counted[consultation_id]


def answer_value(value: str | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else value


def answer_field(question_id: str, value: str | bool) -> str:
    return f"{question_id}={answer_value(value)}"


class StatsProjection(Projection[StatsView]):
    name = "stats"
    topics = (get_topic(Consultation.Created), get_topic(Response.Submitted))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Consultation.Created, tracking: Tracking) -> None:
        counted = [q.id for q in e.definition.questions if q.kind in COUNTED]
        self.view.count_questions(tracking, e.originator_id, counted)

    @process_event.register
    def _(self, e: Response.Submitted, tracking: Tracking) -> None:
        self.view.count_response(tracking, e.consultation_id, e.answers)


class Stats(msgspec.Struct, frozen=True):
    """Public statistics, as served by `GET /consultations/{slug}/stats`."""

    responses: int
    answers: dict[str, dict[str, int]]
    position: int


class StatsReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, StatsView.name)
        self._forms = FormReader(client, prefix)

    async def stats(self, consultation_id: UUID, application_name: str) -> Stats | None:
        form = await self._forms.form(consultation_id)
        if form is None:
            return None
        counts, position = await self.read(
            ("HGETALL", f"stats:{consultation_id}", ()), ("HGET", POSITION, (application_name,))
        )
        counted = {k.decode(): int(v) for k, v in pairs(counts).items()}
        answers = {}
        for q in form.definition.questions:
            if q.kind in COUNTED:
                values = [o.id for o in q.options] if q.kind is Kind.SINGLE_CHOICE else [True, False]
                answers[q.id] = {answer_value(v): counted.get(answer_field(q.id, v), 0) for v in values}
        return Stats(responses=counted.get("responses", 0), answers=answers, position=int(position or 0))
