"""The consultation: its form (questions, FAQ, sessions) and whether it takes responses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain import text
from domain.errors import FieldError, InvalidDefinition, InvalidInput, InvalidResponse, NotAcceptingResponses, SessionStarted

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
QuestionId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Answer = str | bool


class Kind(str, Enum):
    SINGLE_CHOICE = "single_choice"
    LONG_TEXT = "long_text"
    YES_NO = "yes_no"
    CONTACT = "contact"


class Option(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: QuestionId
    label: str


class Question(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: QuestionId
    kind: Kind
    prompt: str
    help: str = ""
    required: bool = False
    options: tuple[Option, ...] = ()
    max_length: int | None = None


class FaqEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    question: str
    answer: str


class Session(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: QuestionId
    title: str
    starts_at: datetime
    duration_minutes: int
    language: str
    venue: str
    capacity: int


class Theme(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A theme of the coding frame that reviewers tag responses with."""

    id: QuestionId
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class Definition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A consultation as written in its file (see docs/operations.md, "Consultation files")."""

    slug: Slug
    title: str
    introduction: str
    questions: tuple[Question, ...]
    draft_url: str = ""
    faq: tuple[FaqEntry, ...] = ()
    sessions: tuple[Session, ...] = ()
    next_steps: tuple[str, ...] = ()
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    open: bool = True
    themes: tuple[Theme, ...] = ()  # the coding frame it starts with; editors maintain it afterwards
    # If set, signing up for a session needs this consent, given as `consent: true`.
    signup_consent: str = ""

    def __deepcopy__(self, memo: dict[int, Any]) -> Definition:
        # Frozen, and immutable all the way down (frozen structs, tuples, text, times): a copy would
        # equal it in every way. The repository deep-copies a cached consultation on every read, for
        # every batch of submissions; this was nine tenths of that copy (170 of 185 µs).
        return self

    def __post_init__(self) -> None:
        ids = [q.id for q in self.questions]
        if not ids:
            raise InvalidDefinition("A consultation needs at least one question.")
        if len(set(ids)) != len(ids):
            raise InvalidDefinition("Question ids must be unique.")
        if len({t.id for t in self.themes}) != len(self.themes):
            raise InvalidDefinition("Theme ids must be unique.")
        for q in self.questions:
            if (q.kind is Kind.SINGLE_CHOICE) != bool(q.options):
                raise InvalidDefinition(f"Question '{q.id}': options belong to single-choice questions only, and those need some.")
            if q.kind is Kind.LONG_TEXT and not q.max_length:
                raise InvalidDefinition(f"Question '{q.id}': a long-text question needs a max_length.")
        if len({s.id for s in self.sessions}) != len(self.sessions):
            raise InvalidDefinition("Session ids must be unique.")
        if any(s.capacity < 1 or s.duration_minutes < 1 for s in self.sessions):
            raise InvalidDefinition("A session needs a capacity and a duration of at least 1.")
        for moment in (self.opens_at, self.closes_at, *(s.starts_at for s in self.sessions)):
            if moment is not None and moment.utcoffset() is None:
                raise InvalidDefinition("Times need a UTC offset, for example 2026-05-07T13:00:00Z.")


def read_definition(data: bytes) -> Definition:
    """A consultation file (TOML), checked; see docs/operations.md, "Consultation files"."""
    try:
        return msgspec.toml.decode(data, type=Definition)
    except msgspec.ValidationError as e:
        raise InvalidDefinition(str(e)) from None


def check_draft_url(url: str) -> None:
    """A link to the draft is empty (none) or an absolute http(s) URL: the form serves it as a link to follow."""
    try:
        parts = urlsplit(url)
        absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # say, an unclosed [IPv6 address]
        absolute = False
    if url and not (absolute and url.isprintable() and " " not in url):
        raise InvalidDefinition(f"draft_url: not an absolute http(s) URL: {text.excerpt(url)}")


def consultation_id(slug: str) -> UUID:
    """Ids follow from slugs, so loading the same file twice finds the first one."""
    return uuid5(NAMESPACE_URL, f"agora:consultation:{slug}")


@stored_as("domain.consultation")
class Consultation(Aggregate):
    class Created(Aggregate.Created):
        definition: Definition

    class Opened(Aggregate.Event):
        pass

    class Closed(Aggregate.Event):
        pass

    class ClosingTimeMoved(Aggregate.Event):
        closes_at: datetime | None

    class DraftLinkSet(Aggregate.Event):
        draft_url: str

    @staticmethod
    def create_id(definition: Definition) -> UUID:
        return consultation_id(definition.slug)

    @event(Created)
    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.is_open = definition.open
        self.closes_at = definition.closes_at
        self.draft_url = definition.draft_url
        self.revision = 1
        # Questions answered in free text, which may name people: their answers are sealed.
        self.text_questions = frozenset(q.id for q in definition.questions if q.kind is Kind.LONG_TEXT)

    @property
    def slug(self) -> str:
        return self.definition.slug


    def open(self) -> None:
        if not self.is_open:
            self._open()

    def close(self) -> None:
        if self.is_open:
            self._close()

    def move_closing_time(self, closes_at: datetime | None) -> None:
        if closes_at is not None and closes_at.utcoffset() is None:
            raise InvalidDefinition("The closing time needs a UTC offset.")
        if closes_at != self.closes_at:
            self._move_closing_time(closes_at)

    def set_draft_url(self, draft_url: str) -> None:
        check_draft_url(draft_url)
        if draft_url != self.draft_url:
            self._set_draft_url(draft_url)

    @event(Opened)
    def _open(self) -> None:
        self.is_open = True

    @event(Closed)
    def _close(self) -> None:
        self.is_open = False

    @event(ClosingTimeMoved)
    def _move_closing_time(self, closes_at: datetime | None) -> None:
        self.closes_at = closes_at

    @event(DraftLinkSet)
    def _set_draft_url(self, draft_url: str) -> None:
        self.draft_url = draft_url

    def check_response(self, answers: Mapping[str, object], now: datetime) -> dict[str, Answer]:
        """The answers as they will be recorded, or the reasons they cannot be."""
        self.check_accepting(now)
        questions = {q.id: q for q in self.definition.questions}
        errors = [FieldError(f"answers.{qid}", "There is no such question.") for qid in answers if qid not in questions]
        recorded: dict[str, Answer] = {}
        for q in self.definition.questions:
            field = f"answers.{q.id}"
            value = answers.get(q.id)
            if isinstance(value, str) and q.kind is Kind.LONG_TEXT:
                value = text.free_text(value)
            if q.id not in answers or isinstance(value, str) and q.kind is Kind.LONG_TEXT and not text.visible(value):
                if q.required:
                    errors.append(FieldError(field, "This question needs an answer."))
                continue
            problem = _check_answer(q, value)
            if problem:
                errors.append(FieldError(field, problem))
            else:
                recorded[q.id] = value
        if errors:
            raise InvalidResponse(errors)
        return recorded

    def session(self, session_id: str, now: datetime) -> Session:
        """A session that has not started yet, or the reason it cannot be joined."""
        session = next((s for s in self.definition.sessions if s.id == session_id), None)
        if session is None:
            offered = ", ".join(s.id for s in self.definition.sessions) or "none"
            raise InvalidInput([FieldError("session_id", f"There is no such session; the sessions are: {offered}.")])
        if now >= session.starts_at:
            raise SessionStarted(f"The session '{session.title}' started at {text.moment(session.starts_at)}; it is too late to join it.")
        return session

    def takes_responses(self, now: datetime) -> bool:
        return accepts_responses(self.is_open, self.definition.opens_at, self.closes_at, now)

    def check_accepting(self, now: datetime) -> None:
        """Refuse unless the consultation takes responses (and signups) at `now`."""
        if not self.is_open:
            raise NotAcceptingResponses(f"The consultation '{self.slug}' is closed.")
        if not self.takes_responses(now):
            opens_at = self.definition.opens_at
            if opens_at is not None and now < opens_at:
                raise NotAcceptingResponses(f"The consultation '{self.slug}' opens at {text.moment(opens_at)}.")
            raise NotAcceptingResponses(f"The consultation '{self.slug}' closed at {text.moment(self.closes_at)}.")

def accepts_responses(is_open: bool, opens_at: datetime | None, closes_at: datetime | None, now: datetime) -> bool:
    return is_open and (opens_at is None or opens_at <= now) and (closes_at is None or now < closes_at)


def _check_answer(q: Question, value: object) -> str | None:
    if q.kind is Kind.CONTACT:
        return (
            "Contact details are not stored on a response, which stays anonymous. "
            "To join a working session, sign up for it separately."
        )
    if q.kind is Kind.YES_NO:
        return None if isinstance(value, bool) else "Expected true or false."
    if not isinstance(value, str):
        return "Expected a string."
    if q.kind is Kind.SINGLE_CHOICE:
        offered = [o.id for o in q.options]
        return None if value in offered else f"{text.excerpt(value)} is not one of the options: {', '.join(offered)}."
    if q.max_length is not None and len(value) > q.max_length:
        return f"The answer is {len(value)} characters long; at most {q.max_length} are allowed."
    if text.stacked(value):
        return f"The answer stacks more than {text.STACKED} combining marks on one character."
    return None
