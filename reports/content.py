"""A report version's content: a pure, deterministic fold over the log up to a position, never from Redis.

`build` reads the log once, up to position P, and folds what a report states: responses received
and completed, exclusions by reason (counted, never dropped), counts per option with and without
excluded responses (by the public statistics' rules: projections.stats's counted questions, answer
fields and `tally`), counts per theme of the coding frame as it stood at P, confirmed attendance per
session, the selected quotes as their answers read at P, the narrative and the timeline, and the
campaigns editors confirmed: the counts without them, and each with its count and representative.

The same position gives the same bytes on every store: `canonical` is msgspec JSON in a fixed order
(struct fields as declared, dict keys sorted), integers and strings only (times as the log recorded them).

Quotes and erasure. A quote's text is free text, sealed in the log; confirming a redaction later
destroys the keys of the answer's earlier versions, which may include the one a version quoted.
That text is then gone for good, on purpose, and a rebuilt version shows the quote with `text`
null. So that such a version still verifies, the digest does not cover quote texts directly: it
is the SHA-256 of the canonical bytes of the content with every quote's `text` left out
(`sealed`), and each quote carries the SHA-256 of its text as published (`sha256`), also recorded
in the version's event. A rebuild that cannot read a quote's text takes its `sha256` from that
record, and `verify` reports the quote as erased (naming the recorded shredding) rather than as a
difference; a text whose key is gone without a recorded shredding is a difference (tampering).
A campaign's representative text is free text too, and is treated just like a quote: left out of
the digest, its SHA-256 beside it and in the version's event (under `campaign/{cluster id}`).

Rules change; a version is rebuilt by the rules it was built by (its recorded `builder`), so every
version published stays verifiable. `agora-report/1` had no campaigns: its content has no
`campaigns` field, byte for byte what it was; `agora-report/2` (format 2) always has one;
`agora-report/3` (format 2 too) lets only a member a reviewer read on its own, not flagged as
holding personal data, stand for a campaign; `agora-report/4` (format 2) leaves out a selected quote
whose response is flagged as holding personal data at the version's position; `agora-report/5`
(format 2) publishes as a campaign's representative text only the passages a reviewer marked as
quotes in the member standing for it (which needs one), not all its free text; `agora-report/6`
(format 3) salts each passage's hash with a nonce derived from its data key (UNSALTED); `agora-report/7`
(format 4) counts the responses completed in a campaign's group review apart (`in_group_reviews`): a
group review completes every member at once, and no one reads each of them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from domain.campaigns.cluster import Assignment, Cluster
from domain.consultations.consultation import Consultation, Definition, Kind, Question, Theme
from domain.consultations.response import Response
from domain.core import read_log
from domain.reports.report import STANDARD_SECTIONS, QuoteRef, Report, Section, report_id
from domain.review.case import Flag, Outcome, ReviewCase, case_id, span_after
from domain.review.frame import CodingFrame, frame_id
from domain.sealed import Sealed, Vault
from domain.signups.signup import Seats
from projections.state import collector_paused
from projections.stats import COUNTED, answer_field, tally

BUILDER = "agora-report/7"  # recorded with each version: which rules built it; change it when they change
FORMATS = {  # the content's format under each builder's rules
    "agora-report/1": 1, "agora-report/2": 2, "agora-report/3": 2, "agora-report/4": 2, "agora-report/5": 2, "agora-report/6": 3,
    BUILDER: 4,
}
# Rules under which a passage's hash was the SHA-256 of its text alone: once the text was erased, anyone could
# still test guesses at it (a redacted phone number, from the words around it) against the hash. From
# agora-report/6 (format 3) the hash is of a nonce then the text, the nonce derived from the passage's data key
# and published beside the text while it can be read: once the key is destroyed, the hash hides the text for good.
UNSALTED = frozenset({"agora-report/1", "agora-report/2", "agora-report/3", "agora-report/4", "agora-report/5"})
# Rules under which any member a review kept could stand for its campaign. From agora-report/3 it must
# have been read on its own (a group review reads no one's text, and a near-duplicate may add a
# signature), and not be flagged as holding personal data (the flag stays until it is redacted).
ANY_KEPT_REPRESENTS = frozenset({"agora-report/2"})
# Rules under which a selected quote was published whatever its response's flags. From agora-report/4 a
# quote of a response flagged as holding personal data is left out (the flag stays until it is redacted).
FLAGGED_QUOTED = frozenset({"agora-report/1", "agora-report/2", "agora-report/3"})
# Rules under which a campaign's representative text was every free-text answer of the member standing
# for it. From agora-report/5 it is the passages a reviewer marked as quotes in that member, which needs
# one: its other answers, a greeting or a signed name, are not the campaign's words, and no one chose them.
WHOLE_REPRESENTS = frozenset({"agora-report/2", "agora-report/3", "agora-report/4"})


class OptionCount(msgspec.Struct, frozen=True):
    id: str  # the option's id; "true"/"false" for a yes/no question
    label: str
    received: int  # every response received
    counted: int  # without excluded responses


class QuestionCount(msgspec.Struct, frozen=True):
    id: str
    prompt: str
    kind: str  # "single_choice" or "yes_no"
    options: list[OptionCount]


class Exclusions(msgspec.Struct, frozen=True):
    total: int
    # Per reason (spam, abusive, off_topic, duplicate, other: excluded with none of those flags). A
    # response excluded with two of these flags counts under both, so these may add up to more than total.
    by_reason: dict[str, int]


class ResponseCounts(msgspec.Struct, frozen=True, omit_defaults=True):
    received: int
    completed: int  # reviewed or excluded, one by one or in a group review
    excluded: Exclusions
    counted: int  # received - excluded.total: what the `counted` figures count
    in_group_reviews: int | None = None  # of `completed`, those completed in a campaign's group review; format 4 on


class ThemeCount(msgspec.Struct, frozen=True):
    id: str
    label: str  # as it stood at the position
    retired: bool
    responses: int  # responses completed as reviewed (not excluded) and tagged with it


class Themes(msgspec.Struct, frozen=True):
    frame_version: int  # the coding frame's aggregate version at the position (0: no frame)
    themes: list[ThemeCount]


class SessionCount(msgspec.Struct, frozen=True):
    id: str
    title: str
    starts_at: datetime
    confirmed: int


class Quote(msgspec.Struct, frozen=True, omit_defaults=True):
    ref: str  # str(QuoteRef): response/question/start-end, the span as the reviewer marked it
    response_id: UUID
    question_id: str
    question: str  # the question's prompt
    text: str | None  # the quoted passage as the answer read at the position; None: erased since
    sha256: str  # of `nonce` then `text` as published (`passage_hash`)
    nonce: str | None = None  # hex, from format 3 (left out before it); None: erased since, with the text


class Event(msgspec.Struct, frozen=True):
    """A moment of the timeline: created, opened, closed, published, corrected, withdrawn."""

    what: str
    at: datetime
    position: int
    version: int | None = None
    final: bool | None = None


class Erratum(msgspec.Struct, frozen=True):
    version: int  # the version that made the correction
    erratum: str  # what changed
    reason: str  # why


class ConsultationInfo(msgspec.Struct, frozen=True):
    id: UUID
    slug: str
    title: str
    open: bool  # at the position: not closed by an operator (see closes_at too)
    closes_at: datetime | None  # the closing time as it stood at the position


class Representative(msgspec.Struct, frozen=True, omit_defaults=True):
    """A campaign's text, as one of its responses put it."""

    response_id: UUID
    # Its free-text answers as they read at the position (redactions applied), one after another
    # in the order of their question ids; None: erased since (as a quote's text).
    text: str | None
    sha256: str  # of `nonce` then `text` as published (`passage_hash`)
    nonce: str | None = None  # as a quote's


class CampaignCount(msgspec.Struct, frozen=True):
    id: UUID  # the campaign's cluster
    name: str
    received: int  # its members at the position
    counted: int  # of them, those not excluded
    answers: dict[str, dict[str, int]]  # per counted question, per option: its counted members' answers
    representative: Representative | None  # its earliest member a reviewer read on its own and kept (reviewed, not excluded); None: none yet


class Campaigns(msgspec.Struct, frozen=True):
    """The counts with and without the campaigns confirmed by editors (with them: `responses` and `questions`)."""

    counted: int  # counted responses in no campaign
    answers: dict[str, dict[str, int]]  # per counted question, per option: the counted responses in no campaign
    campaigns: list[CampaignCount]  # in the order first confirmed


class ReportContent(msgspec.Struct, frozen=True, omit_defaults=True):
    format: int
    builder: str
    consultation: ConsultationInfo
    version: int
    final: bool  # False: an interim version
    position: int
    sections: list[Section]  # the standard ones first (we-asked, you-said, we-did), then the others as first written
    responses: ResponseCounts
    questions: list[QuestionCount]
    themes: Themes
    sessions: list[SessionCount]
    quotes: list[Quote]  # in the order selected
    timeline: list[Event]
    errata: list[Erratum]  # every correction up to this version, oldest first
    campaigns: Campaigns | None = None  # format 2 on; left out (not null) by the rules of agora-report/1


_encoder = msgspec.json.Encoder(order="deterministic")


def canonical(content: ReportContent) -> bytes:
    """The content's bytes: what is served and what `agora report build` writes."""
    return _encoder.encode(content)


def sealed(content: ReportContent) -> ReportContent:
    """The content with every quote's text (and nonce) left out, and every campaign's representative's: what
    the digest covers (each keeps its `sha256`)."""
    quotes = [msgspec.structs.replace(q, text=None, nonce=None) for q in content.quotes]
    if content.campaigns is None:
        return msgspec.structs.replace(content, quotes=quotes)
    campaigns = [
        msgspec.structs.replace(c, representative=msgspec.structs.replace(c.representative, text=None, nonce=None)) if c.representative else c
        for c in content.campaigns.campaigns
    ]
    return msgspec.structs.replace(content, quotes=quotes, campaigns=msgspec.structs.replace(content.campaigns, campaigns=campaigns))


_CAMPAIGN = "campaign/"


def representative_ref(cluster_id: UUID) -> str:
    """Where a version's event records the hash of a campaign's representative text, beside the quotes'."""
    return f"{_CAMPAIGN}{cluster_id}"


def described(ref: str) -> str:
    """A passage by the reference its hash is recorded under, in words: a quote, or a campaign's representative text."""
    return f"the representative text of campaign {ref.removeprefix(_CAMPAIGN)}" if ref.startswith(_CAMPAIGN) else f"quote {ref}"


def digest(content: ReportContent) -> str:
    """What a version's event records: SHA-256 hex of the canonical bytes of its sealed content."""
    return hashlib.sha256(canonical(sealed(content))).hexdigest()


def first_difference(a: bytes, b: bytes) -> str | None:
    """The first place two canonical documents differ, as a JSON path with both values; None if equal."""
    return _difference(msgspec.json.decode(a), msgspec.json.decode(b), "")


def _difference(a: Any, b: Any, path: str) -> str | None:
    if type(a) is not type(b):
        return f"{path or '(document)'}: {_short(a)} != {_short(b)}"
    if isinstance(a, dict):
        for key in [*a, *(k for k in b if k not in a)]:  # in document order
            if key not in a or key not in b:
                return f"{path}.{key}: {'missing' if key not in a else _short(a[key])} != {'missing' if key not in b else _short(b[key])}"
            if found := _difference(a[key], b[key], f"{path}.{key}" if path else key):
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if found := _difference(x, y, f"{path}[{i}]"):
                return found
        return None if len(a) == len(b) else f"{path}: {len(a)} items != {len(b)} items"
    return None if a == b else f"{path or '(document)'}: {_short(a)} != {_short(b)}"


def _short(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


# The fold


class Step(msgspec.Struct, frozen=True):
    """A review or editing action behind a figure or a quote."""

    position: int
    at: datetime
    by: UUID
    what: str  # quote-marked, redacted, originals-shredded, tagged, untagged, flagged, completed, reopened, quote-selected, quote-unselected
    response_id: UUID
    group: UUID | None = None  # the group review it was part of (tagged and completed in one), if any


class Mark(msgspec.Struct):
    """A candidate quote: the span as marked (its identity) and where it lies in the answer as it now reads."""

    quote: QuoteRef
    start: int
    end: int
    by: UUID
    at: datetime
    position: int


class Case:
    """A response and its review, small: a fold over a million responses holds a million of these.
    Tags and flags are shared frozensets; what few cases have (quotes, redactions, steps) is made when needed."""

    __slots__ = ("response_id", "answers", "outcome", "alone", "tags", "flags", "marks", "redactions", "steps", "cluster")

    def __init__(self, response_id: UUID, answers: tuple[str, ...]) -> None:
        self.response_id = response_id
        self.answers = answers  # its counted answers, as the stats fold counts them
        self.outcome: Outcome | None = None
        self.alone = False  # completed on its own, not in a group review
        self.tags: frozenset[str] = frozenset()
        self.flags: frozenset[Flag] = frozenset()
        self.marks: list[Mark] | None = None
        # Each redacted answer's versions, latest last, each with where the quotes lay before it (for a revert).
        self.redactions: dict[str, list[tuple[Sealed, dict[QuoteRef, tuple[int, int]]]]] | None = None
        self.steps: list[tuple[Step, str]] | None = None  # with the theme or question each concerns (traced folds only)
        self.cluster: UUID | None = None  # as assigned or split out; merges are resolved by `Fold.resolve`


EXCLUSION_REASONS = (Flag.SPAM, Flag.ABUSIVE, Flag.OFF_TOPIC, Flag.DUPLICATE)


class Fold:
    """One pass over the log up to a position, for one consultation: everything a report states.

    `trace` also keeps the review steps behind each figure and quote (for provenance).
    """

    def __init__(self, consultation_id: UUID, trace: bool = False) -> None:
        self.consultation_id = consultation_id
        self.frame_id = frame_id(consultation_id)
        self.report_id = report_id(consultation_id)
        self.trace = trace
        self.definition: Definition | None = None
        self.is_open = False
        self.closes_at: datetime | None = None
        self.timeline: list[Event] = []
        self.frame_version = 0
        self.themes: dict[str, Theme] = {}
        self.retired: set[str] = set()
        self.counted: frozenset[str] = frozenset()  # the questions the public statistics count
        self.combinations: Counter[tuple[str, ...]] = Counter()  # responses by their counted answers
        self.cases: dict[UUID, Case] = {}  # by case id: every response, reviewed or not
        self._shared: dict[Any, Any] = {}  # answers, tags and flags: a million responses hold few distinct ones
        self.seats: dict[str, int] = {}
        self.sections: dict[str, Section] = {}
        self.quotes: dict[QuoteRef, list[Step]] = {}  # selected, in order, with the editors' steps
        self.errata: list[Erratum] = []
        # Clusters (domain.campaigns.cluster's `Book` folds the same, for staff; this keeps only
        # what counting needs, on the cases, so that a million members cost little more).
        self.assignments: dict[UUID, Case] = {}  # by assignment id: the clustered responses
        self.clusters: set[UUID] = set()  # the clusters of this consultation editors acted on
        self.campaigns: dict[UUID, str] = {}  # confirmed: cluster id -> name, in the order first confirmed
        self.merged: dict[UUID, UUID] = {}  # cluster id -> the cluster it was merged into
        self.position = 0
        self.folded = 0  # events read
        self._handlers: dict[type, Callable[[Any, int], None]] = {
            Consultation.Created: self._created, Consultation.Opened: self._opened, Consultation.Closed: self._closed,
            Consultation.ClosingTimeMoved: self._closing_time,
            CodingFrame.Created: self._frame, CodingFrame.ThemeAdded: self._theme, CodingFrame.ThemeRevised: self._theme,
            CodingFrame.ThemeRetired: self._retired,
            Response.Submitted: self._submitted,
            ReviewCase.Tagged: self._tagged, ReviewCase.Untagged: self._untagged,
            ReviewCase.Flagged: self._flagged, ReviewCase.QuoteMarked: self._marked, ReviewCase.Redacted: self._redacted,
            ReviewCase.Unflagged: self._unflagged, ReviewCase.QuoteUnmarked: self._unmarked, ReviewCase.RedactionReverted: self._reverted,
            ReviewCase.OriginalsShredded: self._shredded, ReviewCase.Completed: self._completed, ReviewCase.Reopened: self._reopened,
            Seats.Taken: self._taken, Seats.Freed: self._freed,
            Assignment.Assigned: self._assigned, Assignment.SplitOut: self._moved, Assignment.Left: self._moved,
            Cluster.Opened: self._cluster, Cluster.CampaignConfirmed: self._campaign, Cluster.MergedInto: self._merged,
            Report.SectionWritten: self._section, Report.QuoteSelected: self._selected, Report.QuoteUnselected: self._unselected,
            Report.Published: self._published, Report.Corrected: self._corrected, Report.Withdrawn: self._withdrawn,
        }
        self.topics = [get_topic(cls) for cls in self._handlers]

    def run(self, app: Application[Any], upto: int, batch: int = 5000) -> Fold:
        """Fold the log's events up to position `upto`."""
        handlers = self._handlers
        with collector_paused():
            for position, e in read_log(app, self.topics, upto=upto, batch=batch):
                handlers[type(e)](e, position)
                self.folded += 1
        self.position = upto
        return self

    def handle(self, e: Any, position: int) -> None:
        """Fold one event (one the fold has no use for changes nothing)."""
        if handler := self._handlers.get(type(e)):
            handler(e, position)

    # Consultation and coding frame

    def _created(self, e: Consultation.Created, position: int) -> None:
        if e.originator_id == self.consultation_id:
            self.definition = e.definition
            self.is_open = e.definition.open
            self.closes_at = e.definition.closes_at
            self.timeline.append(Event("created", e.timestamp, position))
            self.counted = frozenset(q.id for q in e.definition.questions if q.kind in COUNTED)

    def _opened(self, e: Consultation.Opened, position: int) -> None:
        if e.originator_id == self.consultation_id:
            self.is_open = True
            self.timeline.append(Event("opened", e.timestamp, position))

    def _closed(self, e: Consultation.Closed, position: int) -> None:
        if e.originator_id == self.consultation_id:
            self.is_open = False
            self.timeline.append(Event("closed", e.timestamp, position))

    def _closing_time(self, e: Consultation.ClosingTimeMoved, position: int) -> None:
        if e.originator_id == self.consultation_id:
            self.closes_at = e.closes_at

    def _frame(self, e: CodingFrame.Created, position: int) -> None:
        if e.originator_id == self.frame_id:
            self.frame_version = e.originator_version
            self.themes = {t.id: t for t in e.themes}

    def _theme(self, e: CodingFrame.ThemeAdded | CodingFrame.ThemeRevised, position: int) -> None:
        if e.originator_id == self.frame_id:
            self.frame_version = e.originator_version
            self.themes[e.theme.id] = e.theme

    def _retired(self, e: CodingFrame.ThemeRetired, position: int) -> None:
        if e.originator_id == self.frame_id:
            self.frame_version = e.originator_version
            self.retired.add(e.theme_id)

    # Responses and their review

    def _submitted(self, e: Response.Submitted, position: int) -> None:
        if e.consultation_id == self.consultation_id:
            answers = self.share(tuple(answer_field(q, v) for q, v in e.answers.items() if q in self.counted))
            self.combinations[answers] += 1
            # Cases are found by the id derived from the response's, so their Opened events need not be read.
            self.cases[case_id(e.originator_id)] = Case(e.originator_id, answers)

    def share(self, value: Any) -> Any:
        return self._shared.setdefault(value, value)

    def _step(self, case: Case, e: Any, position: int, what: str, about: str = "") -> None:
        if self.trace:
            if case.steps is None:
                case.steps = []
            case.steps.append((Step(position, e.timestamp, e.by, what, case.response_id, getattr(e, "group", None)), about))

    def _tagged(self, e: ReviewCase.Tagged, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.tags = self.share(case.tags | {e.theme_id})
            self._step(case, e, position, "tagged", e.theme_id)

    def _untagged(self, e: ReviewCase.Untagged, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.tags = self.share(case.tags - {e.theme_id})
            self._step(case, e, position, "untagged", e.theme_id)

    def _flagged(self, e: ReviewCase.Flagged, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.flags = self.share(case.flags | {e.flag})
            self._step(case, e, position, "flagged")

    def _marked(self, e: ReviewCase.QuoteMarked, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            quote = QuoteRef(case.response_id, e.question_id, e.start, e.end)
            case.marks = [*(case.marks or ()), Mark(quote, e.start, e.end, e.by, e.timestamp, position)]
            self._step(case, e, position, "quote-marked", e.question_id)

    def _redacted(self, e: ReviewCase.Redacted, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            marks = [m for m in case.marks or () if m.quote.question_id == e.question_id]
            before = {m.quote: (m.start, m.end) for m in marks}
            for mark in marks:
                mark.start, mark.end = span_after(mark.start, mark.end, e.start, e.end)
            case.redactions = case.redactions or {}
            case.redactions.setdefault(e.question_id, []).append((e.sealed, before))
            self._step(case, e, position, "redacted", e.question_id)

    def _reverted(self, e: ReviewCase.RedactionReverted, position: int) -> None:
        """The answer's latest redaction undone: it reads as before, its quotes where they lay."""
        if (case := self.cases.get(e.originator_id)) and case.redactions and case.redactions.get(e.question_id):
            _, before = case.redactions[e.question_id].pop()
            for mark in case.marks or ():
                if mark.quote in before:  # a mark made since the redaction keeps its span
                    mark.start, mark.end = before[mark.quote]
            self._step(case, e, position, "redaction-reverted", e.question_id)

    def _unflagged(self, e: ReviewCase.Unflagged, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.flags = self.share(case.flags - {e.flag})
            self._step(case, e, position, "unflagged")

    def _unmarked(self, e: ReviewCase.QuoteUnmarked, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            quote = QuoteRef(case.response_id, e.question_id, e.start, e.end)
            case.marks = [m for m in case.marks or () if m.quote != quote] or None
            self._step(case, e, position, "quote-unmarked", e.question_id)

    def _shredded(self, e: ReviewCase.OriginalsShredded, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            self._step(case, e, position, "originals-shredded", e.question_id)

    def _completed(self, e: ReviewCase.Completed, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.outcome, case.alone = e.outcome, e.group is None
            self._step(case, e, position, "completed")

    def _reopened(self, e: ReviewCase.Reopened, position: int) -> None:
        if case := self.cases.get(e.originator_id):
            case.outcome = None
            self._step(case, e, position, "reopened")

    # Working sessions

    def _taken(self, e: Seats.Taken, position: int) -> None:
        if e.consultation_id == self.consultation_id:
            self.seats[e.session_id] = self.seats.get(e.session_id, 0) + 1

    def _freed(self, e: Seats.Freed, position: int) -> None:
        if e.consultation_id == self.consultation_id:
            self.seats[e.session_id] -= 1

    # Clusters and campaigns

    def _assigned(self, e: Assignment.Assigned, position: int) -> None:
        if e.consultation_id == self.consultation_id and e.cluster_id is not None and (case := self.cases.get(case_id(e.response_id))):
            case.cluster = self.share(e.cluster_id)
            self.assignments[e.originator_id] = case

    def _moved(self, e: Assignment.SplitOut | Assignment.Left, position: int) -> None:
        if case := self.assignments.get(e.originator_id):
            case.cluster = e.cluster_id if isinstance(e, Assignment.SplitOut) else None

    def _cluster(self, e: Cluster.Opened, position: int) -> None:
        if e.consultation_id == self.consultation_id:
            self.clusters.add(e.originator_id)

    def _campaign(self, e: Cluster.CampaignConfirmed, position: int) -> None:
        if e.originator_id in self.clusters:
            self.campaigns[e.originator_id] = e.name

    def _merged(self, e: Cluster.MergedInto, position: int) -> None:
        if e.originator_id in self.clusters:
            self.merged[e.originator_id] = e.into

    def resolve(self, cluster_id: UUID) -> UUID:
        """The cluster a cluster now is, after merges."""
        while cluster_id in self.merged:
            cluster_id = self.merged[cluster_id]
        return cluster_id

    # The report itself

    def _section(self, e: Report.SectionWritten, position: int) -> None:
        if e.originator_id == self.report_id:
            if e.markdown:
                self.sections[e.key] = Section(e.key, e.title, e.markdown)
            else:
                self.sections.pop(e.key, None)

    def _selected(self, e: Report.QuoteSelected, position: int) -> None:
        if e.originator_id == self.report_id:
            steps = self.quotes.setdefault(QuoteRef(e.response_id, e.question_id, e.start, e.end), [])
            if self.trace:
                steps.append(Step(position, e.timestamp, e.by, "quote-selected", e.response_id))

    def _unselected(self, e: Report.QuoteUnselected, position: int) -> None:
        if e.originator_id == self.report_id:
            self.quotes.pop(QuoteRef(e.response_id, e.question_id, e.start, e.end), None)

    def _published(self, e: Report.Published, position: int) -> None:
        if e.originator_id == self.report_id:
            self.timeline.append(Event("published", e.timestamp, position, e.version, e.final))

    def _corrected(self, e: Report.Corrected, position: int) -> None:
        if e.originator_id == self.report_id:
            self.timeline.append(Event("corrected", e.timestamp, position, e.version, e.final))
            self.errata.append(Erratum(e.version, e.erratum, e.reason))

    def _withdrawn(self, e: Report.Withdrawn, position: int) -> None:
        if e.originator_id == self.report_id:
            self.timeline.append(Event("withdrawn", e.timestamp, position, e.version))

    # What the fold states

    def excluded(self) -> list[Case]:
        return [c for c in self.cases.values() if c.outcome is Outcome.EXCLUDED]

    def completed(self) -> int:
        return sum(1 for c in self.cases.values() if c.outcome is not None)

    def completed_in_groups(self) -> int:
        return sum(1 for c in self.cases.values() if c.outcome is not None and not c.alone)

    def left(self) -> int:
        """Responses not completed yet: what stands between an interim version and a final one."""
        return len(self.cases) - self.completed()

    def flagged(self, response_id: UUID, flag: Flag) -> bool:
        case = self.cases.get(case_id(response_id))
        return case is not None and flag in case.flags

    def candidates(self) -> list[tuple[Mark, Case]]:
        """Every quote a reviewer marked, in the order marked."""
        return sorted(((m, c) for c in self.cases.values() for m in c.marks or ()), key=lambda mc: (mc[0].position, mc[0].at))

    def themes_counted(self) -> list[ThemeCount]:
        """Each theme of the frame as it stood (retired ones too), with the responses reviewed and tagged with it."""
        counts: dict[str, int] = dict.fromkeys(self.themes, 0)
        for case in self.cases.values():
            if case.outcome is Outcome.REVIEWED:
                for tag in case.tags:
                    counts[tag] = counts.get(tag, 0) + 1
        return [ThemeCount(t, self.themes[t].label if t in self.themes else t, t in self.retired, n) for t, n in counts.items()]


def build(
    app: Application[Any], texts: Vault, consultation_id: UUID, upto: int, version: int, final: bool,
    erratum: Erratum | None = None, recorded: Mapping[str, str] | None = None, builder: str = BUILDER,
) -> ReportContent:
    """The content of `version` built at position `upto`; `erratum` is its own correction's, if it is one.

    `recorded`: the version's recorded quote hashes, standing in for texts that can no longer be read.
    `builder`: whose rules (a version is rebuilt by the rules it was published with).
    """
    fold = Fold(consultation_id).run(app, upto)
    return content_of(fold, app, texts, version, final, erratum, recorded, builder)


def content_of(
    fold: Fold, app: Application[Any], texts: Vault, version: int, final: bool,
    erratum: Erratum | None = None, recorded: Mapping[str, str] | None = None, builder: str = BUILDER,
) -> ReportContent:
    definition = fold.definition
    if definition is None:
        raise ValueError(f"consultation {fold.consultation_id} is not in the log up to position {fold.position}")
    if builder not in FORMATS:  # rules this code does not know: today's, and the digest will say they differ
        builder = BUILDER
    excluded = fold.excluded()
    kept = fold.combinations - Counter(case.answers for case in excluded)
    received = tally(definition, stats_hash(fold.combinations), fold.position)
    counted = tally(definition, stats_hash(kept), fold.position)
    by_reason = {r.value: sum(1 for c in excluded if r in c.flags) for r in EXCLUSION_REASONS}
    by_reason["other"] = sum(1 for c in excluded if not c.flags.intersection(EXCLUSION_REASONS))
    return ReportContent(
        format=FORMATS[builder],
        builder=builder,
        consultation=ConsultationInfo(fold.consultation_id, definition.slug, definition.title, fold.is_open, fold.closes_at),
        version=version,
        final=final,
        position=fold.position,
        sections=sorted(fold.sections.values(), key=_section_order(fold.sections)),
        responses=ResponseCounts(
            received=received.responses,
            completed=fold.completed(),
            excluded=Exclusions(len(excluded), by_reason),
            counted=counted.responses,
            in_group_reviews=fold.completed_in_groups() if FORMATS[builder] >= 4 else None,
        ),
        questions=[
            QuestionCount(
                q.id, q.prompt, q.kind.value,
                [
                    OptionCount(option, label, received.answers[q.id][option], counted.answers[q.id][option])
                    for option, label in _options(q)
                ],
            )
            for q in definition.questions
            if q.kind in COUNTED
        ],
        themes=Themes(fold.frame_version, fold.themes_counted()),
        sessions=[SessionCount(s.id, s.title, s.starts_at, fold.seats.get(s.id, 0)) for s in definition.sessions],
        quotes=[_quote(q, text, texts, recorded, builder) for q, text in published_quotes(fold, app, texts, builder).items()],
        timeline=fold.timeline,
        errata=[*fold.errata, *([erratum] if erratum else [])],
        campaigns=campaigns_of(fold, app, texts, kept, recorded, builder) if FORMATS[builder] >= 2 else None,
    )


def campaigns_of(
    fold: Fold, app: Application[Any], texts: Vault, kept: Counter[tuple[str, ...]], recorded: Mapping[str, str] | None,
    builder: str = BUILDER,
) -> Campaigns:
    """The confirmed campaigns live at the fold's position (not merged into another cluster), and the
    counts without them; `kept`: the counted responses (excluded ones left out) by their answers.
    Each campaign's representative is its earliest member a reviewer read on its own, kept, did not
    flag as holding personal data and marked a quote in (by `builder`'s rules, if earlier: see
    ANY_KEPT_REPRESENTS and WHOLE_REPRESENTS).

    A cluster merged into another counts as that one: as a campaign only if that one is confirmed.
    """
    assert fold.definition is not None
    live = {k: name for k, name in fold.campaigns.items() if k not in fold.merged}
    members: dict[UUID, list[Case]] = {k: [] for k in live}
    if members:
        for case in fold.cases.values():  # in the order submitted
            if case.cluster is not None and (k := fold.resolve(case.cluster)) in members:
                members[k].append(case)
    outside = kept.copy()
    found = []
    for k, name in live.items():
        counted = [c for c in members[k] if c.outcome is not Outcome.EXCLUDED]
        answers = Counter(c.answers for c in counted)
        outside -= answers
        reviewed = next((c for c in counted if stands_for_campaign(c, builder)), None)
        found.append(CampaignCount(
            k, name, len(members[k]), len(counted), tally(fold.definition, stats_hash(answers), fold.position).answers,
            _representative(app, texts, reviewed, representative_ref(k), recorded, builder) if reviewed else None,
        ))
    without = tally(fold.definition, stats_hash(outside), fold.position)
    return Campaigns(without.responses, without.answers, found)


def stands_for_campaign(case: Case, builder: str) -> bool:
    """Whether a counted member of a campaign may stand for it, by `builder`'s rules."""
    if case.outcome is not Outcome.REVIEWED:
        return False
    if builder in ANY_KEPT_REPRESENTS:
        return True
    return case.alone and Flag.PERSONAL_DATA not in case.flags and (builder in WHOLE_REPRESENTS or bool(case.marks))


def stats_hash(combinations: Mapping[tuple[str, ...], int]) -> dict[bytes, bytes]:
    """The counts the statistics' fold keeps (its `stats:{id}` hash, as `tally` reads it) for responses
    with these answers. Gathered by distinct answers, not per event as the live view does: a report
    folds a whole log at once, and this way counting costs next to nothing."""
    fields = Counter({"responses": sum(combinations.values())})
    for answers, n in combinations.items():
        for field in answers:
            fields[field] += n
    return {k.encode(): str(v).encode() for k, v in fields.items()}


def _options(q: Question) -> list[tuple[str, str]]:
    if q.kind is Kind.YES_NO:
        return [("true", "Yes"), ("false", "No")]
    return [(o.id, o.label) for o in q.options]


def _section_order(sections: Mapping[str, Section]) -> Callable[[Section], tuple[int, int]]:
    written = {key: i for i, key in enumerate(sections)}

    def order(section: Section) -> tuple[int, int]:
        if section.key in STANDARD_SECTIONS:
            return 0, STANDARD_SECTIONS.index(section.key)
        return 1, written[section.key]

    return order


class QuoteText(NamedTuple):
    """A selected quote's passage as its answer read at the fold's position."""

    text: str | None  # None: unreadable (its key destroyed, or its ciphertext altered)
    key_id: str
    question: str


def quote_texts(fold: Fold, app: Application[Any], texts: Vault, quotes: Iterable[QuoteRef] | None = None) -> dict[QuoteRef, QuoteText]:
    """The passages of the selected quotes (or of `quotes`) whose responses are not excluded, in order."""
    assert fold.definition is not None
    prompts = {q.id: q.prompt for q in fold.definition.questions}
    out: dict[QuoteRef, QuoteText] = {}
    for quote in fold.quotes if quotes is None else quotes:
        case = fold.cases.get(case_id(quote.response_id))
        mark = next((m for m in case.marks or () if m.quote == quote), None) if case else None
        if case is None or mark is None or case.outcome is Outcome.EXCLUDED:
            continue
        answer, key_id = _answer(app, texts, case, quote.question_id)
        out[quote] = QuoteText(answer[mark.start:mark.end] if answer is not None else None, key_id, prompts.get(quote.question_id, ""))
    return out


def published_quotes(fold: Fold, app: Application[Any], texts: Vault, builder: str = BUILDER) -> dict[QuoteRef, QuoteText]:
    """The selected quotes a version built by `builder`'s rules publishes, with their passages, in order."""
    return {
        q: text for q, text in quote_texts(fold, app, texts).items()
        if builder in FLAGGED_QUOTED or not fold.flagged(q.response_id, Flag.PERSONAL_DATA)
    }


def representative_text(app: Application[Any], texts: Vault, case: Case, builder: str = BUILDER) -> tuple[str | None, list[str]]:
    """The text standing for a campaign: the passages a reviewer marked in its member, in the order
    marked (by rules in WHOLE_REPRESENTS, its free-text answers, by question id), one per line, as they
    read at the fold's position, with the ids of the keys that read them; None if any cannot be read,
    with the ids of the keys that could not read it."""
    submitted = _submitted(app, case.response_id)
    if builder in WHOLE_REPRESENTS:
        spans = [(question_id, None) for question_id in sorted(submitted.texts)]
    else:
        spans = [(m.quote.question_id, (m.start, m.end)) for m in case.marks or ()]
    parts, keys, lost = [], [], []
    for question_id, span in spans:
        answer, key_id = _answer(app, texts, case, question_id, submitted)
        if answer is None:
            lost.append(key_id)
        else:
            parts.append(answer if span is None else answer[span[0]:span[1]])
            keys.append(key_id)
    return (None, lost) if lost else ("\n".join(parts), keys)


def unreadable(fold: Fold, app: Application[Any], texts: Vault, content: ReportContent, builder: str = BUILDER) -> dict[str, list[str]]:
    """The passages of a content whose text could not be read (quotes, then campaigns' representatives),
    by the reference their hash is recorded under, each with the ids of the keys that could not read it."""
    out = {str(q): [t.key_id] for q, t in quote_texts(fold, app, texts).items() if t.text is None}
    for c in content.campaigns.campaigns if content.campaigns else ():
        if c.representative and c.representative.text is None:
            out[representative_ref(c.id)] = representative_text(app, texts, fold.cases[case_id(c.representative.response_id)], builder)[1]
    return out


def _answer(
    app: Application[Any], texts: Vault, case: Case, question_id: str, submitted: Response.Submitted | None = None,
) -> tuple[str | None, str]:
    """An answer as it read at the fold's position (its latest redaction, else the original), and the
    id of its key; None if it cannot be read (its key destroyed, or its ciphertext altered)."""
    versions = (case.redactions or {}).get(question_id)
    sealed: Sealed = versions[-1][0] if versions else (submitted or _submitted(app, case.response_id)).texts[question_id]
    try:
        return texts.unseal(sealed, question_id), sealed.key_id
    except InvalidTag:
        return None, sealed.key_id


def _submitted(app: Application[Any], response_id: UUID) -> Response.Submitted:
    (submitted,) = app.events.get(response_id, limit=1)
    return submitted


def passage_hash(text: str, nonce: str | None) -> str:
    """What a version publishes as a passage's `sha256`: SHA-256 of its nonce's bytes (from format 3), then its text's."""
    return hashlib.sha256(bytes.fromhex(nonce or "") + text.encode()).hexdigest()


def _published(texts: Vault, text: str | None, key_id: str | None, ref: str, recorded: Mapping[str, str] | None, builder: str) -> tuple[str | None, str, str | None]:
    """A passage as a version publishes it: its text, hash and nonce; once its text (or key) is gone, no text,
    no nonce, and the hash as recorded."""
    nonce = None
    if text is not None and key_id is not None and builder not in UNSALTED:
        found = texts.nonce(key_id, ref)
        text, nonce = (text, found.hex()) if found is not None else (None, None)  # destroyed since it was read
    return text, (recorded or {}).get(ref, "") if text is None else passage_hash(text, nonce), nonce


def _quote(quote: QuoteRef, passage: QuoteText, texts: Vault, recorded: Mapping[str, str] | None, builder: str) -> Quote:
    ref = str(quote)
    return Quote(ref, quote.response_id, quote.question_id, passage.question, *_published(texts, passage.text, passage.key_id, ref, recorded, builder))


def _representative(app: Application[Any], texts: Vault, case: Case, ref: str, recorded: Mapping[str, str] | None, builder: str) -> Representative:
    text, keys = representative_text(app, texts, case, builder)
    # Its first passage's key salts it: destroying any of its keys erases the whole text.
    return Representative(case.response_id, *_published(texts, text, keys[0] if keys else None, ref, recorded, builder))


def case_fold(definition: Definition, consultation_id: UUID, cases: Mapping[UUID, Iterable[Any]]) -> Fold:
    """A fold of only these responses' review cases (each response's case events, oldest first):
    enough to list candidate quotes as their answers read now, without folding the whole log.
    Positions are not known this way: marks carry 0."""
    fold = Fold(consultation_id)
    fold.definition = definition
    for response_id, events in cases.items():
        fold.cases[case_id(response_id)] = Case(response_id, ())
        for e in events:
            fold.handle(e, 0)
    return fold
