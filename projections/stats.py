"""Public statistics' fold: responses counted, and answers counted per option of each choice question.

Pure: events in, per consultation a set of its counted questions (`counted:{id}`) and a hash of
counts (`stats:{id}`) out; `tally` turns those counts into `Stats` by the counting rules, for the
API, a point-in-time replay or a report alike. The Redis writer and reader are in projections.live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from domain.consultations.consultation import Consultation, Definition, Kind
from domain.consultations.response import Response
from projections.state import State

COUNTED = (Kind.SINGLE_CHOICE, Kind.YES_NO)


def stats_key(consultation_id: UUID | str) -> str:
    return f"stats:{consultation_id}"


def counted_key(consultation_id: UUID | str) -> str:
    return f"counted:{consultation_id}"


def answer_value(value: str | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else value


def answer_field(question_id: str, value: str | bool) -> str:
    return f"{question_id}={answer_value(value)}"


class StatsProjection(Projection[State]):
    name = "stats"
    topics = (get_topic(Consultation.Created), get_topic(Response.Submitted))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Consultation.Created, tracking: Tracking) -> None:
        counted = [q.id for q in e.definition.questions if q.kind in COUNTED]
        self.view.sadd(tracking, counted_key(e.originator_id), *counted)

    @process_event.register
    def _(self, e: Response.Submitted, tracking: Tracking) -> None:
        counted = self.view.members(counted_key(e.consultation_id))
        suffix = stats_key(e.consultation_id)
        self.view.hincrby(tracking, suffix, "responses")
        for question_id, value in e.answers.items():
            if question_id in counted:
                self.view.hincrby(tracking, suffix, answer_field(question_id, value))


class Stats(msgspec.Struct, frozen=True):
    """Public statistics, as served by `GET /consultations/{slug}/stats`."""

    responses: int
    answers: dict[str, dict[str, int]]
    position: int


def tally(definition: Definition, counts: Mapping[bytes, bytes], position: int) -> Stats:
    """The counting rules: every option of every counted question, zero if nobody chose it.

    `counts` is the view's `stats:{id}` hash as Redis (or `Memory.hgetall`) gives it.
    """
    counted = {k.decode(): int(v) for k, v in counts.items()}
    answers = {}
    for q in definition.questions:
        if q.kind in COUNTED:
            values = [o.id for o in q.options] if q.kind is Kind.SINGLE_CHOICE else [True, False]
            answers[q.id] = {answer_value(v): counted.get(answer_field(q.id, v), 0) for v in values}
    return Stats(responses=counted.get("responses", 0), answers=answers, position=position)
