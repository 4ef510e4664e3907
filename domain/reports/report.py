"""The published report of a consultation: its narrative, its chosen quotes, and every version published.

One `Report` per consultation. Editors write sections and select quotes from the reviewers'
candidates; publishing records a version: the log position its content was built from and the
digest of that content (reports/content.py), in one event. A version is never changed or erased:
a correction is a new version with an erratum, and a withdrawal marks a version without removing it.
"""

from __future__ import annotations

from typing import Annotated
from uuid import NAMESPACE_URL, UUID, uuid5

import unicodedata

import msgspec
from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, FieldError, InvalidInput
from domain.text import BIDI_CONTROLS, free_text, name_problem, visible
from domain.topics import stored_as

# The narrative's standard sections, in the order a report shows them; free sections follow.
STANDARD_SECTIONS = ("we-asked", "you-said", "we-did")
SectionKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
MAX_TITLE = 200
MAX_MARKDOWN = 20_000
MAX_SECTIONS = 20
MAX_QUOTES = 200
MAX_REASON = 2000


class ReportNotFound(DomainError):
    """No such report, or no such version of it."""


class QuoteNotCandidate(DomainError):
    """The quote is not one a reviewer marked (same response, question and span), or its response is excluded."""


class NotReadyForFinal(DomainError):
    """A final version needs the consultation closed and every response completed; `left` are not yet."""

    def __init__(self, detail: str, left: int) -> None:
        super().__init__(detail)
        self.left = left


class ReportConflict(DomainError):
    """The change contradicts the report's versions: nothing published to correct or withdraw, withdrawn already, or not the next version."""


class ReportMismatch(DomainError):
    """A version rebuilt from the log does not match the digest it was published with."""


def report_id(consultation_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"agora:report:{consultation_id}")


class QuoteRef(msgspec.Struct, frozen=True, order=True):
    """A candidate quote as a reviewer marked it: the span is in the answer as it read then."""

    response_id: UUID
    question_id: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.response_id}/{self.question_id}/{self.start}-{self.end}"


class Section(msgspec.Struct, frozen=True):
    key: str
    title: str
    markdown: str


@stored_as("domain.reports")
class Report(Aggregate):
    class Drafted(Aggregate.Created):
        consultation_id: UUID
        by: UUID

    class SectionWritten(Aggregate.Event):
        by: UUID
        key: str
        title: str
        markdown: str  # empty: the section is removed

    class QuoteSelected(Aggregate.Event):
        by: UUID
        response_id: UUID
        question_id: str
        start: int
        end: int

    class QuoteUnselected(Aggregate.Event):
        by: UUID
        response_id: UUID
        question_id: str
        start: int
        end: int

    class Published(Aggregate.Event):
        by: UUID
        version: int
        position: int  # the log position the content was built from
        digest: str  # SHA-256 hex of the content's canonical bytes (reports.content.digest)
        builder: str  # reports.content.BUILDER: which rules built it
        final: bool
        quotes: dict[str, str]  # str(QuoteRef) -> SHA-256 of its text as published: see reports/content.py

    class Corrected(Aggregate.Event):
        by: UUID
        version: int
        position: int
        digest: str
        builder: str
        final: bool
        quotes: dict[str, str]
        erratum: str  # what changed
        reason: str  # why

    class Withdrawn(Aggregate.Event):
        by: UUID
        version: int
        reason: str

    @staticmethod
    def create_id(consultation_id: UUID, **_: object) -> UUID:
        return report_id(consultation_id)

    @event(Drafted)
    def __init__(self, consultation_id: UUID, by: UUID) -> None:
        self.consultation_id = consultation_id
        self.sections: dict[str, Section] = {}
        self.quotes: set[QuoteRef] = set()
        self.published = 0  # the last version's number
        self.final = False  # whether the last version is final
        self.withdrawn: set[int] = set()

    def write_section(self, by: UUID, key: str, title: str, markdown: str) -> None:
        """Write a section, or rewrite it; its text may not be blank (`remove_section` removes one)."""
        errors = []
        try:
            msgspec.convert(key, SectionKey)
        except msgspec.ValidationError:
            errors.append(FieldError("key", "A section key is 1 to 40 lowercase letters, digits or dashes, starting with a letter."))
        if problem := name_problem(title.strip(), MAX_TITLE, "A section's title"):
            errors.append(FieldError("title", problem))
        if not visible(markdown):  # a tester's blank save removed the section without a word
            errors.append(FieldError("markdown", "A section needs some text; to remove a section, DELETE it."))
        elif len(markdown) > MAX_MARKDOWN:
            errors.append(FieldError("markdown", f"A section holds at most {MAX_MARKDOWN} characters; this one has {len(markdown)}."))
        elif BIDI_CONTROLS.intersection(markdown):  # on the public page, they could make what follows read backwards
            errors.append(FieldError("markdown", "A section cannot hold bidirectional override or isolate characters."))
        elif any(unicodedata.category(c) == "Cc" and c not in "\r\n\t" for c in markdown):
            errors.append(FieldError("markdown", "A section cannot hold control characters (other than line breaks and tabs)."))
        if key not in self.sections and len(self.sections) >= MAX_SECTIONS:
            errors.append(FieldError("key", f"A report has at most {MAX_SECTIONS} sections."))
        if errors:
            raise InvalidInput(errors)
        current = self.sections.get(key)
        if current is None or (current.title, current.markdown) != (title.strip(), markdown):
            self._write_section(by, key, title.strip(), markdown)

    def remove_section(self, by: UUID, key: str) -> None:
        """Remove a section; removing one that is not there records nothing."""
        if key in self.sections:
            self._write_section(by, key, "", "")

    def select_quote(self, by: UUID, quote: QuoteRef) -> None:
        """Select a quote; the caller has checked it is a candidate of a response not excluded."""
        if quote not in self.quotes:
            if len(self.quotes) >= MAX_QUOTES:
                raise InvalidInput([FieldError("quote", f"A report quotes at most {MAX_QUOTES} passages.")])
            self._select(by, quote.response_id, quote.question_id, quote.start, quote.end)

    def unselect_quote(self, by: UUID, quote: QuoteRef) -> None:
        if quote not in self.quotes:
            raise QuoteNotCandidate(f"The quote {quote} is not selected.")
        self._unselect(by, quote.response_id, quote.question_id, quote.start, quote.end)

    def check_next(self, version: int | None) -> None:
        """Refuse a publication meant as `version` (None: whichever is next) if that is not the next number:
        one was published since the editor looked (a second click would publish the same report twice)."""
        if version is None or version == self.published + 1:
            return
        if version <= self.published:
            raise ReportConflict(f"Version {version} is published already: this would publish version {self.published + 1}. Preview it first.")
        raise ReportConflict(f"The next version is {self.published + 1}, not {version}.")

    def publish(
        self, by: UUID, position: int, digest: str, builder: str, final: bool, quotes: dict[str, str],
        is_open: bool, left: int,
    ) -> int:
        """Record the next version, built at `position`; `is_open` and `left` (responses not completed) are as at `position`."""
        check_final(final, is_open, left)
        self._publish(by, self.published + 1, position, digest, builder, final, quotes)
        return self.published

    def correct(
        self, by: UUID, position: int, digest: str, builder: str, final: bool, quotes: dict[str, str],
        is_open: bool, left: int, erratum: str, reason: str,
    ) -> int:
        check_erratum(erratum, reason)
        if not self.published:
            raise ReportConflict("Nothing is published yet, so there is nothing to correct: publish a first version.")
        check_final(final, is_open, left)
        self._correct(by, self.published + 1, position, digest, builder, final, quotes, public_text(erratum), public_text(reason))
        return self.published

    def withdraw(self, by: UUID, reason: str, version: int | None = None) -> int:
        if not visible(reason) or len(reason) > MAX_REASON:
            raise InvalidInput([FieldError("reason", f"A withdrawal needs a reason of 1 to {MAX_REASON} characters.")])
        version = self.published if version is None else version
        if not 1 <= version <= self.published:
            raise ReportNotFound(f"There is no published version {version} of this report." if self.published else "Nothing is published yet.")
        if version in self.withdrawn:
            raise ReportConflict(f"Version {version} is withdrawn already.")
        self._withdraw(by, version, public_text(reason))
        return version

    @event(SectionWritten)
    def _write_section(self, by: UUID, key: str, title: str, markdown: str) -> None:
        if markdown:
            self.sections[key] = Section(key, title, markdown)
        else:
            self.sections.pop(key, None)

    @event(QuoteSelected)
    def _select(self, by: UUID, response_id: UUID, question_id: str, start: int, end: int) -> None:
        self.quotes.add(QuoteRef(response_id, question_id, start, end))

    @event(QuoteUnselected)
    def _unselect(self, by: UUID, response_id: UUID, question_id: str, start: int, end: int) -> None:
        self.quotes.discard(QuoteRef(response_id, question_id, start, end))

    @event(Published)
    def _publish(self, by: UUID, version: int, position: int, digest: str, builder: str, final: bool, quotes: dict[str, str]) -> None:
        self.published, self.final = version, final

    @event(Corrected)
    def _correct(
        self, by: UUID, version: int, position: int, digest: str, builder: str, final: bool, quotes: dict[str, str],
        erratum: str, reason: str,
    ) -> None:
        self.published, self.final = version, final

    @event(Withdrawn)
    def _withdraw(self, by: UUID, version: int, reason: str) -> None:
        self.withdrawn.add(version)


def check_final(final: bool, is_open: bool, left: int) -> None:
    """A final version needs the consultation closed and every response completed (reviewed or excluded)."""
    if final and (is_open or left):
        reasons = (["the consultation is still open"] if is_open else []) + (
            [f"{left} response{'s' if left != 1 else ''} still to review"] if left else []
        )
        raise NotReadyForFinal(f"A final version cannot be published yet: {' and '.join(reasons)}. Publish an interim version meanwhile.", left)


def public_text(text: str) -> str:
    """A correction's or a withdrawal's words as recorded and published: free text, trimmed."""
    return free_text(text).strip()


def check_erratum(erratum: str, reason: str) -> None:
    errors = []
    if not visible(erratum) or len(erratum.strip()) > MAX_REASON:
        errors.append(FieldError("erratum", f"A correction says what changed, in 1 to {MAX_REASON} characters."))
    if not visible(reason) or len(reason.strip()) > MAX_REASON:
        errors.append(FieldError("reason", f"A correction needs a reason, in 1 to {MAX_REASON} characters."))
    if errors:
        raise InvalidInput(errors)
