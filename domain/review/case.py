"""A reviewer's work on one response: claimed under a lease, noted, completed, reopened.

Every event names the acting staff member, so the case's history says who did what, when.
Mistakes are undone by events of their own, with a reason: a flag removed, a quote unmarked, a
redaction reverted (only while the answer it replaced is still readable, before an admin shreds it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as

from domain.errors import DomainError, FieldError, InvalidInput
from domain.ids import derived, derived_text
from domain.sealed import Sealed
from domain.text import free_text, moment, visible

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


class NotCompleted(DomainError):
    """Reopening a review that is not completed."""


REDACTED = "[redacted]"


def span_after(start: int, end: int, r_start: int, r_end: int) -> tuple[int, int]:
    """A span of an answer, moved to where it lies once text[r_start:r_end] is replaced by REDACTED.

    A span that overlaps the redaction grows to cover all of REDACTED, so a quote never shows half of it.
    """
    delta = len(REDACTED) - (r_end - r_start)
    if end <= r_start:
        return start, end
    if start >= r_end:
        return start + delta, end + delta
    return min(start, r_start), (r_start + len(REDACTED) if end <= r_end else end + delta)


def _check_span(start: int, end: int, text: str) -> None:
    if not 0 <= start < end <= len(text):
        raise InvalidInput([FieldError("end", f"The span must lie within the answer's {len(text)} characters, and not be empty.")])
    for field, at in (("start", start), ("end", end)):
        marker = text.find(REDACTED, max(at - len(REDACTED) + 1, 0), at + len(REDACTED) - 1)  # one that `at` falls inside
        if marker != -1:  # "[redact" would read as text someone wrote
            raise InvalidInput([FieldError(field, f"The span must not cut the {REDACTED} marker at {marker}: take it whole or leave it out.")])


def _require_reason(reason: str, detail: str) -> str:
    """The reason as recorded (free text: control characters dropped); refused with `detail` if blank."""
    if not visible(reason):
        raise InvalidInput([FieldError("reason", detail)])
    return free_text(reason)


def check_outcome(outcome: Outcome, reason: str) -> None:
    if outcome is Outcome.EXCLUDED:
        _require_reason(reason, "Excluding a response needs a reason.")


def case_id(response_id: UUID) -> UUID:
    return derived("review-case", response_id)


def case_text(response_id: UUID | str) -> str:
    """`str(case_id(response_id))`, as cheaply as can be: a queue's rebuild derives one per response."""
    return derived_text("review-case", response_id)


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
        class_version = 2
        by: UUID
        theme_id: str
        group: UUID | None  # the group review it was part of (domain.campaigns), if any

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["group"] = None

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

    class Unflagged(Aggregate.Event):
        by: UUID
        flag: Flag
        reason: str

    class QuoteUnmarked(Aggregate.Event):
        by: UUID
        question_id: str
        start: int
        end: int
        reason: str

    class RedactionReverted(Aggregate.Event):
        by: UUID
        question_id: str
        reason: str

    class Completed(Aggregate.Event):
        class_version = 2
        by: UUID
        outcome: Outcome
        reason: str
        group: UUID | None  # the group review it was part of (domain.campaigns), if any

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["group"] = None

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
        self.group: UUID | None = None  # the group review the case was completed in, while it stands
        self.tags: set[str] = set()
        self.flags: set[Flag] = set()
        self.redactions: dict[str, list[Sealed]] = {}  # each redacted answer's versions in force, oldest first
        self.reverted: dict[str, list[Sealed]] = {}  # versions undone: no longer read, shredded with the rest
        self.shredded: dict[str, int] = {}  # per answer, how many versions were in force when its earlier ones were shredded
        self.quotes: set[tuple[str, int, int]] = set()

    def holds(self, staff: UUID, now: datetime) -> bool:
        return self.holder == staff and self.until is not None and now < self.until

    def claim(self, by: UUID, now: datetime, lease: timedelta, fresh: bool = False) -> None:
        """Claim, or renew `by`'s own live claim; `fresh`: only a response nobody holds, `by` included."""
        self._require_open()
        self._require_unheld(by, now)
        if fresh and self.holds(by, now):
            raise ClaimConflict("You hold this response already.", by, self.until)
        self._claim(by, now + lease)

    def release(self, by: UUID, now: datetime) -> None:
        self._require_claim(by, now)
        self._release(by)

    def note(self, by: UUID, text: str, now: datetime) -> None:
        self._require_claim(by, now)
        if not visible(text) or len(text) > MAX_NOTE:
            raise InvalidInput([FieldError("text", f"A note needs between 1 and {MAX_NOTE} characters.")])
        self._note(by, free_text(text))

    def tag(self, by: UUID, theme_id: str, now: datetime) -> None:
        """Tag with a theme; the caller has checked it is an active theme of the frame."""
        self._require_claim(by, now)
        if theme_id not in self.tags:
            self._tag(by, theme_id, None)

    def untag(self, by: UUID, theme_id: str, now: datetime) -> None:
        self._require_claim(by, now)
        if theme_id in self.tags:
            self._untag(by, theme_id)

    def flag(self, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None, now: datetime) -> None:
        """Flag; for a duplicate, the caller has checked that `duplicate_of` is another response."""
        self._require_claim(by, now)
        errors = []
        if not visible(reason):
            errors.append(FieldError("reason", "A flag needs a reason."))
        if (flag is Flag.DUPLICATE) != (duplicate_of is not None):
            errors.append(FieldError("duplicate_of", "A duplicate names the response it repeats; other flags do not."))
        if duplicate_of == self.response_id:
            errors.append(FieldError("duplicate_of", "A response cannot duplicate itself."))
        if errors:
            raise InvalidInput(errors)
        self._flag(by, flag, free_text(reason), duplicate_of)

    def unflag(self, by: UUID, flag: Flag, reason: str, now: datetime) -> None:
        """Remove a flag (a personal_data flag, say, once the data is redacted)."""
        self._require_claim(by, now)
        if flag not in self.flags:
            raise InvalidInput([FieldError("flag", f"The response is not flagged {flag.value}.")])
        self._unflag(by, flag, _require_reason(reason, "Removing a flag needs a reason."))

    def mark_quote(self, by: UUID, question_id: str, start: int, end: int, text: str, now: datetime) -> None:
        """Mark text[start:end] of a text answer as a candidate quote for the report."""
        self._require_claim(by, now)
        _check_span(start, end, text)
        self._mark_quote(by, question_id, start, end)

    def unmark_quote(self, by: UUID, question_id: str, start: int, end: int, reason: str, now: datetime) -> None:
        """Withdraw a candidate quote, named by the span it was marked with."""
        self._require_claim(by, now)
        if (question_id, start, end) not in self.quotes:
            raise InvalidInput([FieldError("start", f"No quote of {question_id} was marked from {start} to {end}.")])
        self._unmark_quote(by, question_id, start, end, _require_reason(reason, "Unmarking a quote needs a reason."))

    def revert_redaction(self, by: UUID, question_id: str, reason: str, now: datetime) -> None:
        """Undo the answer's latest redaction: it reads as before, provided that version is not shredded."""
        self._require_claim(by, now)
        versions = self.redactions.get(question_id, [])
        if not versions:
            raise InvalidInput([FieldError("question_id", "This answer has no redaction to revert.")])
        if len(versions) <= self.shredded.get(question_id, 0):
            raise InvalidInput([FieldError("question_id", "The answer before this redaction is shredded: it cannot be reverted.")])
        self._revert(by, question_id, _require_reason(reason, "Reverting a redaction needs a reason."))

    def redact(
        self, by: UUID, question_id: str, start: int, end: int, reason: str, text: str, seal: Callable[[str], Sealed], now: datetime,
        expect: str | None = None,
    ) -> None:
        """Replace text[start:end] of an answer as it now reads; `seal` encrypts the result under a new key.
        Given `expect`, the passage must read so: offsets taken from another reading of the answer (before an
        earlier redaction moved it, or counted in other units) are refused rather than redact the wrong words."""
        self._require_claim(by, now)
        _check_span(start, end, text)
        if expect is not None and text[start:end] != free_text(expect):  # as the answer is stored: NFC, say
            # The passage itself is not echoed: a problem answer may be logged where personal data must not go.
            raise InvalidInput([FieldError("expect", (
                f"The answer does not read so from {start} to {end}. Offsets count characters (code points) of the answer "
                "as it now reads (GET the response), after earlier redactions; nothing was redacted."
            ))])
        reason = _require_reason(reason, "A redaction needs a reason.")
        # A span that is a marker already changes no word, but seals the answer under a new key: the version
        # before it can then be shredded (how a passage a published version quoted is erased).
        self._redact(by, question_id, start, end, reason, seal(text[:start] + REDACTED + text[end:]))

    def superseded_keys(self, question_id: str, original: Sealed) -> tuple[str, ...]:
        """The keys of every earlier version of a redacted answer: what confirming the redaction destroys."""
        versions = self.redactions.get(question_id)
        if not versions:
            raise InvalidInput([FieldError("question_id", "Only a redacted answer's earlier versions can be shredded.")])
        return tuple(s.key_id for s in [original, *versions[:-1], *self.reverted.get(question_id, [])])

    def shred_originals(self, by: UUID, question_id: str, key_ids: tuple[str, ...]) -> None:
        self._shred(by, question_id, key_ids)

    def complete(self, by: UUID, outcome: Outcome, reason: str, now: datetime) -> None:
        self._require_claim(by, now)
        check_outcome(outcome, reason)
        self._complete(by, outcome, free_text(reason), None)

    def complete_in_group(self, by: UUID, themes: Iterable[str], outcome: Outcome, reason: str, group: UUID, now: datetime) -> None:
        """Tag and complete as part of a group review: no claim needed, but none of someone else's may be live.

        The caller has checked the outcome and that the themes are active themes of the frame.
        """
        self._require_open()
        self._require_unheld(by, now)
        for theme_id in themes:
            if theme_id not in self.tags:
                self._tag(by, theme_id, group)
        self._complete(by, outcome, free_text(reason), group)

    def reopen(self, by: UUID, reason: str) -> None:
        if self.outcome is None:
            raise NotCompleted("The review is not completed, so there is nothing to reopen.")
        self._reopen(by, _require_reason(reason, "Reopening needs a reason."))

    def _require_open(self) -> None:
        if self.outcome is not None:
            raise CaseClosed(f"The review was completed as {self.outcome.value}; an editor can reopen it.")

    def _require_unheld(self, by: UUID, now: datetime) -> None:
        """Nobody but `by` holds a live claim."""
        if self.holder not in (None, by) and self.until is not None and now < self.until:
            raise ClaimConflict(f"Claimed by {self.holder} until {moment(self.until)}.", self.holder, self.until)

    def _require_claim(self, by: UUID, now: datetime) -> None:
        self._require_open()
        if not self.holds(by, now):
            self._require_unheld(by, now)  # someone else's live claim: name them
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
    def _tag(self, by: UUID, theme_id: str, group: UUID | None) -> None:
        self.tags.add(theme_id)

    @event(Untagged)
    def _untag(self, by: UUID, theme_id: str) -> None:
        self.tags.discard(theme_id)

    @event(Flagged)
    def _flag(self, by: UUID, flag: Flag, reason: str, duplicate_of: UUID | None) -> None:
        self.flags.add(flag)

    @event(Unflagged)
    def _unflag(self, by: UUID, flag: Flag, reason: str) -> None:
        self.flags.discard(flag)

    @event(QuoteMarked)
    def _mark_quote(self, by: UUID, question_id: str, start: int, end: int) -> None:
        self.quotes.add((question_id, start, end))

    @event(QuoteUnmarked)
    def _unmark_quote(self, by: UUID, question_id: str, start: int, end: int, reason: str) -> None:
        self.quotes.discard((question_id, start, end))

    @event(Redacted)
    def _redact(self, by: UUID, question_id: str, start: int, end: int, reason: str, sealed: Sealed) -> None:
        self.redactions.setdefault(question_id, []).append(sealed)

    @event(RedactionReverted)
    def _revert(self, by: UUID, question_id: str, reason: str) -> None:
        self.reverted.setdefault(question_id, []).append(self.redactions[question_id].pop())
        if not self.redactions[question_id]:
            del self.redactions[question_id]

    @event(OriginalsShredded)
    def _shred(self, by: UUID, question_id: str, key_ids: tuple[str, ...]) -> None:
        self.shredded[question_id] = len(self.redactions.get(question_id, ()))
        self.reverted.pop(question_id, None)

    @event(Completed)
    def _complete(self, by: UUID, outcome: Outcome, reason: str, group: UUID | None) -> None:
        self.outcome, self.group = outcome, group
        self.holder = self.until = None

    @event(Reopened)
    def _reopen(self, by: UUID, reason: str) -> None:
        self.outcome = self.group = None
