"""A response's whole case on one page: its state and holder, tags, flags, notes, quotes and redactions.

Folded from the case's own events, so what was undone shows as undone (with who and why) and
nothing is shown that the log does not say. A quote shows its passage as the answer now reads,
its span moved past the redactions made since it was marked (as the report moves it): a redaction
hides its text from a quote marked before it too (`current` false: marked on an earlier version).
Only admins see an answer as first given (`originals`), until it is shredded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.review.case import Flag, ReviewCase, span_after
from domain.sealed import Sealed


class Step(msgspec.Struct):
    by: UUID
    at: datetime


class NoteEntry(Step):
    text: str


class FlagEntry(Step):
    flag: Flag
    reason: str
    duplicate_of: UUID | None
    removed: Step | None = None
    removed_because: str | None = None


class QuoteEntry(Step):
    question_id: str
    start: int
    end: int
    text: str | None  # the passage as the answer now reads (redactions applied); null if erased
    current: bool  # marked on the answer as it now reads (else its span moved past redactions since)
    unmarked: Step | None = None
    unmarked_because: str | None = None


class RedactionEntry(Step):
    question_id: str
    start: int
    end: int
    reason: str
    originals_shredded: bool  # the versions before this one are destroyed
    reverted: Step | None = None
    reverted_because: str | None = None


class CaseFile(msgspec.Struct):
    response_id: UUID
    consultation: str
    submitted_at: datetime
    answers: dict[str, str | bool | None]  # as they now read: redactions applied; null where erased
    state: str  # new, claimed, completed or excluded
    holder: UUID | None  # of a live claim
    claimed_until: datetime | None
    tags: list[str]
    flags: list[FlagEntry]
    notes: list[NoteEntry]
    quotes: list[QuoteEntry]
    redactions: list[RedactionEntry]
    originals: dict[str, str | None] | None = None  # redacted answers as first given (null once shredded), for admins
    group_review: UUID | None = None  # the group review (domain.campaigns) it was completed in, while that completion stands


def fold_case_file(
    response: Any, slug: str, answers: dict[str, Any], case: ReviewCase | None, events: Iterable[Any],
    read: Callable[[str, Sealed], str | None], now: datetime, originals: bool,
) -> CaseFile:
    """The case file of `response` from its case's `events`; `read(question, sealed)` opens a version of an answer."""
    versions: dict[str, list[Sealed]] = {q: [s] for q, s in response.texts.items()}  # every version of each answer, in order
    in_force: dict[str, list[int]] = {q: [0] for q in response.texts}  # the indexes of the versions read, oldest first
    shredded: dict[str, int] = {}  # per answer: versions before this index are destroyed
    flags: list[FlagEntry] = []
    notes: list[NoteEntry] = []
    quotes: list[tuple[QuoteEntry, int]] = []  # with the version marked on
    redactions: list[tuple[RedactionEntry, int]] = []  # with the version made
    for e in events:
        step = Step(getattr(e, "by", None), e.timestamp)  # type: ignore[arg-type]
        if isinstance(e, ReviewCase.Noted):
            notes.append(NoteEntry(step.by, step.at, e.text))
        elif isinstance(e, ReviewCase.Flagged):
            flags.append(FlagEntry(step.by, step.at, e.flag, e.reason, e.duplicate_of))
        elif isinstance(e, ReviewCase.Unflagged):
            for f in flags:
                if f.flag is e.flag and f.removed is None:
                    f.removed, f.removed_because = step, e.reason
        elif isinstance(e, ReviewCase.QuoteMarked):
            quotes.append((QuoteEntry(step.by, step.at, e.question_id, e.start, e.end, None, False), in_force[e.question_id][-1]))
        elif isinstance(e, ReviewCase.QuoteUnmarked):
            for q, _ in quotes:
                if (q.question_id, q.start, q.end) == (e.question_id, e.start, e.end) and q.unmarked is None:
                    q.unmarked, q.unmarked_because = step, e.reason
        elif isinstance(e, ReviewCase.Redacted):
            versions[e.question_id].append(e.sealed)
            in_force[e.question_id].append(len(versions[e.question_id]) - 1)
            entry = RedactionEntry(step.by, step.at, e.question_id, e.start, e.end, e.reason, False)
            redactions.append((entry, in_force[e.question_id][-1]))
        elif isinstance(e, ReviewCase.RedactionReverted):
            undone = in_force[e.question_id].pop()
            entry = next(r for r, v in redactions if v == undone and r.question_id == e.question_id)
            entry.reverted, entry.reverted_because = step, e.reason
        elif isinstance(e, ReviewCase.OriginalsShredded):
            shredded[e.question_id] = in_force[e.question_id][-1]
            for r, _ in redactions:  # made before the shredding, reverted or not: every version but the one in force is gone
                if r.question_id == e.question_id:
                    r.originals_shredded = True
    for quote, version in quotes:
        question, (start, end) = quote.question_id, (quote.start, quote.end)
        quote.current = version == in_force[question][-1]
        for r, made in redactions:  # those standing, made since it was marked, in order
            if r.question_id == question and made > version and made in in_force[question]:
                start, end = span_after(start, end, r.start, r.end)
        text = answers.get(question)
        quote.text = text[start:end] if isinstance(text, str) else None
    live = case is not None and case.holder is not None and case.until is not None and now < case.until
    outcome = case.outcome.value if case and case.outcome else None
    return CaseFile(
        response_id=response.id, consultation=slug, submitted_at=response.created_on, answers=answers,
        state={"reviewed": "completed", "excluded": "excluded"}.get(outcome or "", "claimed" if live else "new"),
        holder=case.holder if live and case else None, claimed_until=case.until if live and case else None,
        tags=sorted(case.tags) if case else [], flags=flags, notes=notes, quotes=[q for q, _ in quotes],
        redactions=[r for r, _ in redactions],
        originals={q: read(q, versions[q][0]) for q, v in in_force.items() if len(v) > 1 and q not in shredded} if originals else None,
        group_review=case.group if case else None,
    )
