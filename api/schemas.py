"""The API's response schemas for the views, and how the public form is rendered.

The views' plain results (`Stats`, `Progress`, `QueueItem`, `QueuePage`) are the folds' own,
shared with replays and reports, and re-exported here; what exists only for HTTP (the public
form with its seats and ETag) is defined here. The OpenAPI schema names each
component by its class name: keep the names, fields and their order.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from domain.consultations.consultation import FaqEntry, Question, Session
from projections.form import Form
from projections.queue import Progress, QueueItem, QueuePage
from projections.stats import Stats

__all__ = ["ConsultationForm", "Progress", "QueueItem", "QueuePage", "SessionForm", "Stats", "render_form"]


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


def render_form(form: Form, now: datetime) -> tuple[bytes, str]:
    """The public form's JSON and its ETag."""
    d = form.definition
    body = msgspec.json.encode(
        ConsultationForm(
            slug=d.slug,
            title=d.title,
            introduction=d.introduction,
            draft_url=form.draft_url,
            open=form.accepts_responses(now),
            opens_at=d.opens_at,
            closes_at=form.closes_at,
            questions=d.questions,
            faq=d.faq,
            sessions=tuple(
                SessionForm(**msgspec.structs.asdict(s), seats_left=form.seats_left(s), started=now >= s.starts_at)
                for s in d.sessions
            ),
            signup_consent=d.signup_consent,
            next_steps=d.next_steps,
        )
    )
    return body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
