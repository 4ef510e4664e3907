"""The public form: a consultation as respondents see it."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from domain.consultations.consultation import Consultation, Definition, FaqEntry, Question, Session, accepts_responses
from domain.signups.signup import Seats
from projections.view import RedisView, ViewReader, pairs


class SessionForm(Session, frozen=True):
    """A working session as the form shows it: sign up at `POST /consultations/{slug}/signups`."""

    seats_left: int
    started: bool  # too late to sign up


class ConsultationForm(msgspec.Struct, frozen=True):
    """The public form, as served by `GET /consultations/{slug}`."""

    slug: str
    title: str
    introduction: str
    draft_url: str
    open: bool
    opens_at: datetime | None
    closes_at: datetime | None
    questions: tuple[Question, ...]
    faq: tuple[FaqEntry, ...]
    sessions: tuple[SessionForm, ...]
    signup_consent: str
    next_steps: tuple[str, ...]


class FormView(RedisView):
    name = "form"

    def set(self, tracking: Tracking, consultation_id: UUID, **fields: str | bytes) -> None:
        self.hset(tracking, f"form:{consultation_id}", **fields)

    def count_seats(self, tracking: Tracking, consultation_id: UUID, session_id: str, taken: int) -> None:
        self.hincrby(tracking, f"form:{consultation_id}", f"{_TAKEN}{session_id}", taken)


class FormProjection(Projection[FormView]):
    name = "form"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Consultation.Created, Consultation.Opened, Consultation.Closed, Consultation.ClosingTimeMoved,
            Consultation.DraftLinkSet, Seats.Taken, Seats.Freed,
        )
    )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)  # other events leave the form as it is

    @process_event.register
    def _(self, e: Consultation.Created, tracking: Tracking) -> None:
        d = e.definition
        closes_at = d.closes_at.isoformat() if d.closes_at else ""
        self.view.set(tracking, e.originator_id, definition=msgspec.json.encode(d), is_open=_flag(d.open), closes_at=closes_at, draft_url=d.draft_url)

    @process_event.register
    def _(self, e: Consultation.Opened, tracking: Tracking) -> None:
        self.view.set(tracking, e.originator_id, is_open=_flag(True))

    @process_event.register
    def _(self, e: Consultation.Closed, tracking: Tracking) -> None:
        self.view.set(tracking, e.originator_id, is_open=_flag(False))

    @process_event.register
    def _(self, e: Consultation.ClosingTimeMoved, tracking: Tracking) -> None:
        self.view.set(tracking, e.originator_id, closes_at=e.closes_at.isoformat() if e.closes_at else "")

    @process_event.register
    def _(self, e: Consultation.DraftLinkSet, tracking: Tracking) -> None:
        self.view.set(tracking, e.originator_id, draft_url=e.draft_url)

    @process_event.register
    def _(self, e: Seats.Taken, tracking: Tracking) -> None:
        self.view.count_seats(tracking, e.consultation_id, e.session_id, 1)

    @process_event.register
    def _(self, e: Seats.Freed, tracking: Tracking) -> None:
        self.view.count_seats(tracking, e.consultation_id, e.session_id, -1)


_TAKEN = "taken:"


def _flag(value: bool) -> str:
    return "1" if value else "0"


class Form(msgspec.Struct, frozen=True):
    """A consultation's form as read from the view, with its definition decoded."""

    definition: Definition
    is_open: bool
    closes_at: datetime | None
    draft_url: str
    taken: dict[str, int]  # confirmed seats by session

    def render(self, now: datetime) -> tuple[bytes, str]:
        """The public form's JSON and its ETag."""
        d = self.definition
        body = msgspec.json.encode(
            ConsultationForm(
                slug=d.slug,
                title=d.title,
                introduction=d.introduction,
                draft_url=self.draft_url,
                open=accepts_responses(self.is_open, d.opens_at, self.closes_at, now),
                opens_at=d.opens_at,
                closes_at=self.closes_at,
                questions=d.questions,
                faq=d.faq,
                sessions=tuple(
                    SessionForm(
                        **msgspec.structs.asdict(s),
                        seats_left=max(s.capacity - self.taken.get(s.id, 0), 0), started=now >= s.starts_at,
                    )
                    for s in d.sessions
                ),
                signup_consent=d.signup_consent,
                next_steps=d.next_steps,
            )
        )
        return body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


_DEFINITION = msgspec.json.Decoder(Definition)


def decode_form(h: dict[bytes, bytes]) -> Form | None:
    """A form from the view's hash, or None if there is no such consultation."""
    if not h:
        return None
    closes_at = h[b"closes_at"].decode()
    return Form(
        definition=_DEFINITION.decode(h[b"definition"]),
        is_open=h[b"is_open"] == b"1",
        closes_at=datetime.fromisoformat(closes_at) if closes_at else None,
        draft_url=h[b"draft_url"].decode(),
        taken={k[len(_TAKEN) :].decode(): int(v) for k, v in h.items() if k.startswith(_TAKEN.encode())},
    )


class FormReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, FormView.name)

    async def form(self, consultation_id: UUID) -> Form | None:
        (fields,) = await self.read(("HGETALL", f"form:{consultation_id}", ()))
        return decode_form(pairs(fields))
