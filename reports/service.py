"""Publishing reports: editors write and publish, every version is rebuilt from the log and checked.

A version is recorded as one event holding the position its content was built from and the digest
of that content (reports/content.py), so nothing is ever half-published and any version can be
rebuilt, byte for byte, from the log alone. Roles are checked here, like domain/review/service.py:
editors write and publish; editors, auditors and admins read what staff see (candidates, previews,
provenance).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from audit.bundle import as_written
from domain.consultations.consultation import Consultation
from domain.consultations.service import Consultations
from domain.core import Agora
from domain.reports.report import (
    NotReadyForFinal,
    QuoteNotCandidate,
    QuoteRef,
    Report,
    ReportConflict,
    ReportMismatch,
    ReportNotFound,
    check_erratum,
    public_text,
    report_id,
)
from domain.review.case import Flag, Outcome, ReviewCase, case_id
from domain.sealed import Vault
from domain.staff.member import NotPermitted, Role
from domain.staff.service import Staff
from reports.content import (
    BUILDER,
    FORMATS,
    Erratum,
    Fold,
    ReportContent,
    Step,
    canonical,
    case_fold,
    content_of,
    described,
    digest,
    first_difference,
    passage_hash,
    published_quotes,
    quote_texts,
    representative_ref,
    sealed,
    unreadable,
)

READERS = (Role.EDITOR, Role.AUDITOR, Role.ADMIN)


class Withdrawal(msgspec.Struct, frozen=True):
    at: datetime
    by: UUID
    reason: str


class VersionInfo(msgspec.Struct, frozen=True):
    """A published version's metadata, as its events recorded it."""

    version: int
    position: int  # the log position its content was built from
    digest: str
    builder: str
    final: bool
    published_at: datetime
    by: UUID  # the editor: a staff id, not for public routes
    erratum: str | None  # set on a correction: what changed
    reason: str | None  # and why
    withdrawn: Withdrawal | None


class Built(msgspec.Struct, frozen=True):
    """A version's content, its canonical bytes and digest; `info` is None for a preview."""

    info: VersionInfo | None
    content: ReportContent
    body: bytes
    digest: str


class Candidate(msgspec.Struct, frozen=True):
    """A passage a reviewer marked as a quote, as its answer reads now."""

    quote: QuoteRef
    text: str | None  # None: erased
    excluded: bool  # its response is excluded: it cannot be selected
    personal_data: bool  # its response is flagged as holding personal data: it cannot be selected, nor published, until redacted and unflagged
    flags: list[Flag]  # every flag its response carries now (spam, abusive, …): the editor's to weigh
    selected: bool
    marked_by: UUID
    marked_at: datetime


class QuoteTrail(msgspec.Struct, frozen=True):
    ref: str
    response_id: UUID
    steps: list[Step]


class ThemeTrail(msgspec.Struct, frozen=True):
    theme_id: str
    label: str
    responses: list[UUID]
    steps: list[Step]


class Provenance(msgspec.Struct, frozen=True):
    """What stands behind each quote and each theme count at a position: responses and review steps."""

    position: int
    quotes: list[QuoteTrail]
    themes: list[ThemeTrail]


class Verification(msgspec.Struct, frozen=True):
    version: int
    ok: bool
    recorded: str  # the digest published
    rebuilt: str  # the digest rebuilt now
    difference: str | None  # None when ok, else the first difference found, in words
    # quotes (and campaign representatives, `campaign/{id}`) whose text was shredded after
    # publication: recorded erasures, not differences
    erased: list[str]


class Reports:
    def __init__(self, app: Agora, consultations: Consultations, staff: Staff, texts: Vault) -> None:
        self.app = app
        self.consultations = consultations
        self.staff = staff
        self.texts = texts

    # Writing

    def draft(self, slug: str, by: UUID) -> int | None:
        self._require(by, Role.EDITOR)
        return self.app.record(self._report(self.consultations.get(slug), by))

    def write_section(self, slug: str, by: UUID, key: str, title: str, markdown: str) -> int | None:
        """Write a section of the narrative (the first change drafts the report)."""
        self._require(by, Role.EDITOR)
        report = self._report(self.consultations.get(slug), by)
        report.write_section(by, key, title, markdown)
        return self.app.record(report)

    def remove_section(self, slug: str, by: UUID, key: str) -> int | None:
        """Remove a section; None, and nothing recorded (not even a draft), if there is no such section."""
        self._require(by, Role.EDITOR)
        report = self.app.find(report_id(self.consultations.get(slug).id), Report)
        if report is None:
            return None
        report.remove_section(by, key)
        return self.app.record(report)

    def select_quote(self, slug: str, by: UUID, quote: QuoteRef) -> int | None:
        self._require(by, Role.EDITOR)
        consultation = self.consultations.get(slug)
        (candidate,) = self._candidates(consultation, [quote]) or (None,)
        if candidate is None:
            raise QuoteNotCandidate(
                f"No reviewer marked characters {quote.start} to {quote.end} of the answer to '{quote.question_id}' "
                f"of response {quote.response_id} as a quote; choose one of the candidate quotes."
            )
        if candidate.excluded:
            raise QuoteNotCandidate(f"Response {quote.response_id} is excluded from the report: its text is never quoted.")
        if candidate.personal_data:
            raise QuoteNotCandidate(
                f"Response {quote.response_id} is flagged as holding personal data: redact it and remove the flag before quoting it."
            )
        report = self._report(consultation, by)
        report.select_quote(by, quote)
        return self.app.record(report)

    def unselect_quote(self, slug: str, by: UUID, quote: QuoteRef) -> int | None:
        self._require(by, Role.EDITOR)
        report = self._report(self.consultations.get(slug), by)
        report.unselect_quote(by, quote)
        return self.app.record(report)

    def candidates(self, slug: str, by: UUID) -> list[Candidate]:
        """Every quote the reviewers marked on this consultation's responses, oldest first."""
        self._require(by, *READERS)
        return self._candidates(self.consultations.get(slug))

    # Publishing

    def preview(self, slug: str, by: UUID, final: bool = False) -> Built:
        """The next version as it would be built at the head of the log now; nothing is recorded."""
        self._require(by, *READERS)
        consultation = self.consultations.get(slug)
        report = self.app.find(report_id(consultation.id), Report)
        fold = Fold(consultation.id).run(self.app, self.app.head())
        return _built(None, content_of(fold, self.app, self.texts, (report.published if report else 0) + 1, final))

    def publish(self, slug: str, by: UUID, final: bool, version: int | None = None) -> Built:
        """Build the next version at the head of the log and record it with its digest, in one event.
        `version`: the number it is to have (refused, ReportConflict, if another was published since)."""
        self._require(by, Role.EDITOR)
        consultation = self.consultations.get(slug)
        report = self._report(consultation, by)
        report.check_next(version)
        fold = Fold(consultation.id).run(self.app, self.app.head())
        content = content_of(fold, self.app, self.texts, report.published + 1, final)
        built = _built(None, content)
        report.publish(by, fold.position, built.digest, BUILDER, final, _hashes(content), self._open(fold), fold.left())
        self.app.record(report)
        return msgspec.structs.replace(built, info=self._versions(consultation)[-1][0])

    def correct(self, slug: str, by: UUID, erratum: str, reason: str, final: bool | None = None, version: int | None = None) -> Built:
        """Publish a new version with an erratum (what changed, and why); earlier versions stay as they were.
        `final` None: as final as the version it corrects (a correction of a final report is final)."""
        self._require(by, Role.EDITOR)
        check_erratum(erratum, reason)
        consultation = self.consultations.get(slug)
        report = self.app.find(report_id(consultation.id), Report)
        if report is None or not report.published:
            raise ReportConflict("Nothing is published yet, so there is nothing to correct: publish a first version.")
        report.check_next(version)
        defaulted, final = final is None, report.final if final is None else final
        fold = Fold(consultation.id).run(self.app, self.app.head())
        version = report.published + 1
        content = content_of(fold, self.app, self.texts, version, final, Erratum(version, public_text(erratum), public_text(reason)))
        built = _built(None, content)
        try:
            report.correct(
                by, fold.position, built.digest, BUILDER, final, _hashes(content), self._open(fold), fold.left(), erratum, reason
            )
        except NotReadyForFinal as e:
            if not defaulted:
                raise
            raise NotReadyForFinal(f'Version {report.published} is final, and so is its correction unless it says "final": false. {e.detail}', e.left) from None
        self.app.record(report)
        return msgspec.structs.replace(built, info=self._versions(consultation)[-1][0])

    def withdraw(self, slug: str, by: UUID, reason: str, version: int | None = None) -> int:
        """Withdraw a version (the latest by default); it stays listed, marked withdrawn with the reason."""
        self._require(by, Role.EDITOR)
        report = self.app.find(report_id(self.consultations.get(slug).id), Report)
        if report is None:
            raise ReportNotFound("Nothing is published yet.")
        report.withdraw(by, reason, version)
        position = self.app.record(report)
        assert position is not None
        return position

    # Reading

    def versions(self, slug: str) -> list[VersionInfo]:
        """Every published version, oldest first, withdrawn ones marked; [] if none."""
        return [info for info, _ in self._versions(self.consultations.get(slug))]

    def version(self, slug: str, n: int | None = None) -> Built:
        """Version `n` (default: the latest), rebuilt from the log and checked against its digest."""
        consultation = self.consultations.get(slug)
        info, quotes = self._version(consultation, n)
        built = _built(info, self._rebuild(consultation, info, quotes)[1])
        if built.digest != info.digest:
            raise ReportMismatch(
                f"Version {info.version} rebuilt from the log does not match the digest it was published with"
                f"{'' if info.builder in FORMATS else f' (it was built by {info.builder}, whose rules this {BUILDER} does not know)'}; "
                "`agora report verify` says where."
            )
        return built

    def provenance(self, slug: str, by: UUID, version: int | None = None, position: int | None = None) -> Provenance:
        """For each selected quote and each theme count at a version's position (or at `position`, or
        the head now): the responses and the review and editing steps behind it."""
        self._require(by, *READERS)
        consultation = self.consultations.get(slug)
        builder = BUILDER
        if version is not None:
            info = self._version(consultation, version)[0]
            position, builder = info.position, info.builder
        fold = Fold(consultation.id, trace=True).run(self.app, self.app.head() if position is None else position)
        quotes = []
        for quote in published_quotes(fold, self.app, self.texts, builder):
            case = fold.cases[case_id(quote.response_id)]
            steps = [s for s, about in case.steps or () if about in ("", quote.question_id)] + fold.quotes[quote]
            quotes.append(QuoteTrail(str(quote), quote.response_id, sorted(steps, key=lambda s: s.position)))
        themes = []
        for theme in fold.themes_counted():
            cases = [c for c in fold.cases.values() if c.outcome is Outcome.REVIEWED and theme.id in c.tags]
            steps = [s for c in cases for s, about in c.steps or () if about == theme.id or s.what in ("completed", "reopened")]
            themes.append(ThemeTrail(theme.id, theme.label, [c.response_id for c in cases], sorted(steps, key=lambda s: s.position)))
        return Provenance(fold.position, quotes, themes)

    def verify(self, slug: str, version: int | None = None, against: bytes | None = None) -> Verification:
        """Rebuild a version from the log and compare digests. `against`: the version's bytes as
        served (or built) earlier, to name the first field that differs."""
        consultation = self.consultations.get(slug)
        info, quotes = self._version(consultation, version)
        fold, content = self._rebuild(consultation, info, quotes)
        rebuilt = digest(content)
        unread = unreadable(fold, self.app, self.texts, content, info.builder)
        shredded = {k for e in self.app.select_events(ReviewCase.OriginalsShredded) for k in e.key_ids}
        erased = [ref for ref, keys in unread.items() if shredded.issuperset(keys)]
        lost = [ref for ref, keys in unread.items() if not shredded.issuperset(keys)]
        difference = None
        if lost:
            difference = (
                f"{described(lost[0])}: its text cannot be read, and no shredding of its key is recorded "
                "(the key was removed outside Agora, or the ciphertext was altered)"
            )
        elif rebuilt != info.digest:
            difference = _difference(info, content, against)
        elif against is not None:
            difference = _not_published(info, content, against)
        return Verification(info.version, difference is None, info.digest, rebuilt, difference, erased)

    # Helpers

    def _require(self, by: UUID, *roles: Role) -> None:
        member = self.staff.get(by)
        held = [r for r in roles if r in member.roles]
        if not held:
            raise NotPermitted(f"This needs the {' or '.join(r.value for r in roles)} role.")
        member.require(held[0])  # and an active account

    def _report(self, consultation: Consultation, by: UUID) -> Report:
        """The consultation's report; a new draft, by `by`, if there is none yet."""
        return self.app.find(report_id(consultation.id), Report) or Report(consultation_id=consultation.id, by=by)

    def _open(self, fold: Fold) -> bool:
        """Whether the consultation still takes responses: not closed, and its closing time not passed."""
        return fold.is_open and (fold.closes_at is None or datetime.now(UTC) < fold.closes_at)

    def _versions(self, consultation: Consultation) -> list[tuple[VersionInfo, dict[str, str]]]:
        """Every version's metadata with its recorded quote hashes, oldest first."""
        versions: list[tuple[VersionInfo, dict[str, str]]] = []
        withdrawals: dict[int, Withdrawal] = {}
        for e in self.app.events.get(report_id(consultation.id)):
            if isinstance(e, Report.Published | Report.Corrected):
                corrected = isinstance(e, Report.Corrected)
                info = VersionInfo(
                    e.version, e.position, e.digest, e.builder, e.final, e.timestamp, e.by,
                    e.erratum if corrected else None, e.reason if corrected else None, None,
                )
                versions.append((info, e.quotes))
            elif isinstance(e, Report.Withdrawn):
                withdrawals[e.version] = Withdrawal(e.timestamp, e.by, e.reason)
        return [(msgspec.structs.replace(i, withdrawn=withdrawals.get(i.version)), q) for i, q in versions]

    def _version(self, consultation: Consultation, n: int | None) -> tuple[VersionInfo, dict[str, str]]:
        versions = self._versions(consultation)
        if not versions:
            raise ReportNotFound(f"No report on '{consultation.slug}' is published yet.")
        if n is None:
            return versions[-1]
        if not 1 <= n <= len(versions):
            raise ReportNotFound(f"There is no version {n} of the report on '{consultation.slug}'; the latest is {len(versions)}.")
        return versions[n - 1]

    def _rebuild(self, consultation: Consultation, info: VersionInfo, quotes: dict[str, str]) -> tuple[Fold, ReportContent]:
        fold = Fold(consultation.id).run(self.app, info.position)
        erratum = Erratum(info.version, info.erratum, info.reason or "") if info.erratum is not None else None
        return fold, content_of(fold, self.app, self.texts, info.version, info.final, erratum, quotes, info.builder)

    def _candidates(self, consultation: Consultation, only: list[QuoteRef] | None = None) -> list[Candidate]:
        """The candidate quotes (or those of `only` that are candidates), as their answers read now."""
        wanted = {case_id(q.response_id) for q in only} if only is not None else None
        marked = {e.originator_id for e in self.app.select_events(ReviewCase.QuoteMarked)}
        cases: dict[UUID, list[Any]] = {}
        for case in marked if wanted is None else marked & wanted:
            events = list(self.app.events.get(case))
            response_id = events[0].response_id
            if self.consultations.response(response_id).consultation_id == consultation.id:
                cases[response_id] = events
        fold = case_fold(consultation.definition, consultation.id, cases)
        report = self.app.find(report_id(consultation.id), Report)
        selected = report.quotes if report else set()
        marks = {m.quote: (m, c) for m, c in fold.candidates()}
        refs = [q for q in only if q in marks] if only is not None else list(marks)
        passages = quote_texts(fold, self.app, self.texts, refs)
        return [
            Candidate(
                quote=q,
                text=passages[q].text if q in passages else None,
                excluded=marks[q][1].outcome is Outcome.EXCLUDED,
                personal_data=Flag.PERSONAL_DATA in marks[q][1].flags,
                flags=sorted(marks[q][1].flags),
                selected=q in selected,
                marked_by=marks[q][0].by,
                marked_at=marks[q][0].at,
            )
            for q in refs
        ]


def _built(info: VersionInfo | None, content: ReportContent) -> Built:
    return Built(info, content, canonical(content), digest(content))


def _hashes(content: ReportContent) -> dict[str, str]:
    """What a version's event records of its free text: each quote's hash, and each campaign representative's."""
    hashes = {q.ref: q.sha256 for q in content.quotes}
    for c in content.campaigns.campaigns if content.campaigns else ():
        if c.representative:
            hashes[representative_ref(c.id)] = c.representative.sha256
    return hashes


def _not_published(info: VersionInfo, content: ReportContent, against: bytes) -> str | None:
    """How a document someone holds differs from the version published (which the log rebuilds to), or None."""
    try:
        given = msgspec.json.decode(against, type=ReportContent)
    except msgspec.DecodeError as e:
        return f"the document given is not a report: {e}"
    if not as_written(against, given):
        return "the document given holds more than a report does (a field it does not have, or a key twice): a reader of it would read what no digest covers"
    if digest(given) != info.digest:
        where = first_difference(canonical(sealed(given)), canonical(sealed(content))) or "its digest"
        return f"the document given is not version {info.version} as published: {where}"
    passages = [(q.ref, q.text, q.sha256, q.nonce) for q in given.quotes]
    if given.campaigns is not None:
        passages += [(representative_ref(c.id), r.text, r.sha256, r.nonce) for c in given.campaigns.campaigns if (r := c.representative)]
    for ref, text, sha256, nonce in passages:
        if text is not None and passage_hash(text, nonce) != sha256:
            return f"the document given is not version {info.version} as published: the text of {described(ref)} is not the text published (its SHA-256 differs from the one recorded)"
    return None


def _difference(info: VersionInfo, content: ReportContent, against: bytes | None) -> str:
    """Why a rebuilt version's digest differs from the recorded one, as precisely as can be said."""
    if against is not None:
        try:
            given = msgspec.json.decode(against, type=ReportContent)
        except msgspec.DecodeError as e:
            return f"the document given is not a report: {e}"
        if digest(given) != info.digest:
            return f"the document given is not version {info.version} as published (its digest is {digest(given)})"
        return first_difference(canonical(sealed(given)), canonical(sealed(content))) or "the rebuilt content differs"
    if info.builder not in FORMATS:
        return f"version {info.version} was built by {info.builder}, whose rules this {BUILDER} does not know"
    return (
        f"the content rebuilt at position {info.position} does not have the digest published: an event up to "
        "that position was altered or removed (give the published document to see where)"
    )
