"""The public form's fold: each consultation's definition, whether it is open, and the seats taken.

Pure: events in, a hash per consultation out (`form:{consultation_id}`), and the decoding of that
hash into a `Form`. The Redis writer and reader are in projections.live; the HTTP schema of the
public form is the API's (api/schemas.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.consultations.consultation import Consultation, Definition, Session, accepts_responses, check_draft_url
from domain.errors import InvalidDefinition
from domain.signups.signup import Seats
from projections.state import Fold

_TAKEN = "taken:"


def form_key(consultation_id: UUID | str) -> str:
    return f"form:{consultation_id}"


def _flag(value: bool) -> str:
    return "1" if value else "0"


class FormProjection(Fold):
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
        self.view.hset(
            tracking, form_key(e.originator_id),
            definition=msgspec.json.encode(d).decode(), is_open=_flag(d.open), closes_at=closes_at, draft_url=d.draft_url,
        )

    @process_event.register
    def _(self, e: Consultation.Opened, tracking: Tracking) -> None:
        self.view.hset(tracking, form_key(e.originator_id), is_open=_flag(True))

    @process_event.register
    def _(self, e: Consultation.Closed, tracking: Tracking) -> None:
        self.view.hset(tracking, form_key(e.originator_id), is_open=_flag(False))

    @process_event.register
    def _(self, e: Consultation.ClosingTimeMoved, tracking: Tracking) -> None:
        self.view.hset(tracking, form_key(e.originator_id), closes_at=e.closes_at.isoformat() if e.closes_at else "")

    @process_event.register
    def _(self, e: Consultation.DraftLinkSet, tracking: Tracking) -> None:
        self.view.hset(tracking, form_key(e.originator_id), draft_url=e.draft_url)

    @process_event.register
    def _(self, e: Seats.Taken, tracking: Tracking) -> None:
        self.view.hincrby(tracking, form_key(e.consultation_id), f"{_TAKEN}{e.session_id}", 1)

    @process_event.register
    def _(self, e: Seats.Freed, tracking: Tracking) -> None:
        self.view.hincrby(tracking, form_key(e.consultation_id), f"{_TAKEN}{e.session_id}", -1)


class Form(msgspec.Struct, frozen=True):
    """A consultation's form as read from the view, with its definition decoded."""

    definition: Definition
    is_open: bool
    closes_at: datetime | None
    draft_url: str
    taken: dict[str, int]  # confirmed seats by session

    def accepts_responses(self, now: datetime) -> bool:
        return accepts_responses(self.is_open, self.definition.opens_at, self.closes_at, now)

    def seats_left(self, session: Session) -> int:
        return max(session.capacity - self.taken.get(session.id, 0), 0)


_DEFINITION = msgspec.json.Decoder(Definition)


def decode_form(h: dict[bytes, bytes]) -> Form | None:
    """A form from the view's hash (as Redis or `Memory.hgetall` gives it), or None if there is no such consultation."""
    if not h:
        return None
    closes_at = h[b"closes_at"].decode()
    return Form(
        definition=_DEFINITION.decode(h[b"definition"]),
        is_open=h[b"is_open"] == b"1",
        closes_at=datetime.fromisoformat(closes_at) if closes_at else None,
        draft_url=_followable(h[b"draft_url"].decode()),
        taken={k[len(_TAKEN) :].decode(): int(v) for k, v in h.items() if k.startswith(_TAKEN.encode())},
    )


def _followable(url: str) -> str:
    """The draft's link, unless it was recorded before links were checked and is none a reader should follow (javascript:…)."""
    try:
        check_draft_url(url)
    except InvalidDefinition:
        return ""
    return url
