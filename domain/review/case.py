"""A reviewer's work on one response: claimed under a lease, noted, completed, reopened.

Every event names the acting staff member, so the case's history says who did what, when.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain.errors import DomainError, FieldError, InvalidInput
from domain.sealed import Sealed
from domain.text import visible

MAX_NOTE = 5000


class Outcome(str, Enum):
    REVIEWED = "reviewed"
    EXCLUDED = "excluded"


class Flag(str, Enum):
    SPAM = "spam"
    ABUSIVE = "abusive"
    OFF_TOPIC = "off_topic"
    DUPLICATE = "duplicate"
    PERSONAL_DATA = "personal_data"


class ClaimConflict(DomainError):
    """Someone else holds a live claim on the response, or nobody does and one is needed."""

    def __init__(self, detail: str, holder: UUID | None = None, until: datetime | None = None) -> None:
        super().__init__(detail)
        self.holder = holder
        self.until = until


class CaseClosed(DomainError):
    """The response's review is completed: reopen it first."""


REDACTED = "[redacted]"


def _check_span(start: int, end: int, text: str) -> None:
    if not 0 <= start < end <= len(text):
        raise InvalidInput([FieldError("end", f"The span must lie within the answer's {len(text)} characters, and not be empty.")])


def case_id(response_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"agora:review-case:{response_id}")


@stored_as("domain.review")
class ReviewCase(Aggregate):
    class Opened(Aggregate.Created):
        response_id: UUID

    class Claimed(Aggregate.Event):
        by: UUID
        until: datetime

    class Released(Aggregate.Event):
        by: UUID

    class Noted(Aggregate.Event):
        by: UUID
        text: str

    class Tagged(Aggregate.Event):
        by: UUID
        theme_id: str

    class Untagged(Aggregate.Event):
        by: UUID
        theme_id: str

    class Flagged(Aggregate.Event):
        by: UUID
        flag: Flag
        reason: str
        duplicate_of: UUID | None

    class QuoteMarked(Aggregate.Event):
        by: UUID
        question_id: str
        start: int
        end: int

    class Redacted(Aggregate.Event):
        by: UUID
        question_id: str
        start: int
        end: int
        reason: str
        sealed: Sealed  # the answer as it now reads, under a key of its own

    class OriginalsShredded(Aggregate.Event):
        by: UUID
        question_id: str
        key_ids: tuple[str, ...]

    class Completed(Aggregate.Event):
        by: UUID
        outcome: Outcome
        reason: str

    class Reopened(Aggregate.Event):
        by: UUID
        reason: str

    @staticmethod
    def create_id(response_id: UUID) -> UUID:
        return case_id(response_id)

    @event(Opened)
    def __init__(self, response_id: UUID) -> None:
        self.response_id = response_id
        self.holder: UUID | None = None
        self.until: datetime | None = None
        self.outcome: Outcome | None = None
        self.tags: set[str] = set()
        self.flags: set[Flag] = set()
        self.redactions: dict[str, list[Sealed]] = {}

    def holds(self, staff: UUID, now: datetime) -> bool:
        return self.holder == staff and self.until is not None and now < self.until

    def claim(self, by: UUID, now: datetime, lease: timedelta) -> None:
        self._require_open()
        if self.holder not in (None, by) and self.until is not None and now < self.until:
            raise ClaimConflict(f"Claimed by {self.holder} until {self.until.isoformat()}.", self.holder, self.until)
        self._claim(by, now + lease)

    def release(self, by: UUID, now: datetime) -> None:
        self._require_claim(by, now)
        self._release(by)

    def note(self, by: UUID, text: str, now: datetime) -> None:
        self._require_claim(by, now)
        if not visible(text) or len(text) > MAX_NOTE:
            raise InvalidInput([FieldError("text", f"A note needs between 1 and {MAX_NOTE} characters.")])
        self._note(by, text)

    def tag(self, by: UUID, theme_id: str, now: datetime) -> None:
        """Tag with a theme; the caller has checked it is an active theme of the frame."""
        self._require_claim(by, now)
        if theme_id not in self.tags:
            self._tag(by, theme_id)

    def untag(self, by: UUID, theme_id: str, now: datetime) -> None:
        self._require_claim(by, now)
        if theme_id in self.tags:
            self._untag(by, theme_id)

    def flag(self, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None, now: datetime) -> None:
        """Flag; for a duplicate, the caller has checked that `duplicate_of` is another response."""
        self._require_claim(by, now)
        errors = []
        if not reason.strip():
            errors.append(FieldError("reason", "A flag needs a reason."))
        if (flag is Flag.DUPLICATE) != (duplicate_of is not None):
            errors.append(FieldError("duplicate_of", "A duplicate names the response it repeats; other flags do not."))
        if duplicate_of == self.response_id:
            errors.append(FieldError("duplicate_of", "A response cannot duplicate itself."))
        if errors:
            raise InvalidInput(errors)
        self._flag(by, flag, reason, duplicate_of)

    def mark_quote(self, by: UUID, question_id: str, start: int, end: int, text: str, now: datetime) -> None:
        """Mark text[start:end] of a text answer as a candidate quote for the report."""
        self._require_claim(by, now)
        _check_span(start, end, text)
        self._mark_quote(by, question_id, start, end)

    def redact(
        self, by: UUID, question_id: str, start: int, end: int, reason: str, text: str, seal: Callable[[str], Sealed], now: datetime
    ) -> None:
        """Replace text[start:end] of an answer as it now reads; `seal` encrypts the result under a new key."""
        self._require_claim(by, now)
        _check_span(start, end, text)
        if not reason.strip():
            raise InvalidInput([FieldError("reason", "A redaction needs a reason.")])
        self._redact(by, question_id, start, end, reason, seal(text[:start] + REDACTED + text[end:]))

    def superseded_keys(self, question_id: str, original: Sealed) -> tuple[str, ...]:
        """The keys of every earlier version of a redacted answer: what confirming the redaction destroys."""
        versions = self.redactions.get(question_id)
        if not versions:
            raise InvalidInput([FieldError("question_id", "Only a redacted answer's earlier versions can be shredded.")])
        return tuple(s.key_id for s in [original, *versions[:-1]])

    def shred_originals(self, by: UUID, question_id: str, key_ids: tuple[str, ...]) -> None:
        self._shred(by, question_id, key_ids)

    def complete(self, by: UUID, outcome: Outcome, reason: str, now: datetime) -> None:
        self._require_claim(by, now)
        if outcome is Outcome.EXCLUDED and not reason.strip():
            raise InvalidInput([FieldError("reason", "Excluding a response needs a reason.")])
        self._complete(by, outcome, reason)

    def reopen(self, by: UUID, reason: str) -> None:
        if self.outcome is None:
            raise CaseClosed("The review is not completed, so there is nothing to reopen.")
        if not reason.strip():
            raise InvalidInput([FieldError("reason", "Reopening needs a reason.")])
        self._reopen(by, reason)

    def _require_open(self) -> None:
        if self.outcome is not None:
            raise CaseClosed(f"The review was completed as {self.outcome.value}; an editor can reopen it.")

    def _require_claim(self, by: UUID, now: datetime) -> None:
        self._require_open()
        if not self.holds(by, now):
            if self.holder is not None and self.holder != by and self.until is not None and now < self.until:
                raise ClaimConflict(f"Claimed by {self.holder} until {self.until.isoformat()}.", self.holder, self.until)
            raise ClaimConflict("Claim the response first: only the holder of a live claim can act on it.")

    @event(Claimed)
    def _claim(self, by: UUID, until: datetime) -> None:
        self.holder, self.until = by, until

    @event(Released)
    def _release(self, by: UUID) -> None:
        self.holder = self.until = None

    @event(Noted)
    def _note(self, by: UUID, text: str) -> None:
        pass

    @event(Tagged)
    def _tag(self, by: UUID, theme_id: str) -> None:
        self.tags.add(theme_id)

    @event(Untagged)
    def _untag(self, by: UUID, theme_id: str) -> None:
        self.tags.discard(theme_id)

    @event(Flagged)
    def _flag(self, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None) -> None:
        self.flags.add(flag)

    @event(QuoteMarked)
    def _mark_quote(self, by: UUID, question_id: str, start: int, end: int) -> None:
        pass

    @event(Redacted)
    def _redact(self, by: UUID, question_id: str, start: int, end: int, reason: str, sealed: Sealed) -> None:
        self.redactions.setdefault(question_id, []).append(sealed)

    @event(OriginalsShredded)
    def _shred(self, by: UUID, question_id: str, key_ids: tuple[str, ...]) -> None:
        pass

    @event(Completed)
    def _complete(self, by: UUID, outcome: Outcome, reason: str) -> None:
        self.outcome = outcome
        self.holder = self.until = None

    @event(Reopened)
    def _reopen(self, by: UUID, reason: str) -> None:
        self.outcome = None
