"""The published reports' fold: each report's versions, as the public routes list them.

Pure: Report events in, a hash per report out (`report:{report_id}`: a field per version, and one
per withdrawal), and its decoding into `ReportVersion`s. The public routes read this view, so a
version becomes public only once the view has caught up with its event; its content is rebuilt
from the log (reports.service), never kept here. The view also counts confirmed redactions (keys
of quoted text may go with them): a server keeps rebuilt versions in memory under that count, so
a passage erased for good leaves every page once the view has seen it. The Redis writer and reader
are in projections.live.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.reports.report import Report
from domain.review.case import ReviewCase
from projections.state import Fold

_VERSION = "v:"
_WITHDRAWN = "withdrawn:"
ERASURES = "erasures"  # a hash with one field, `count`: confirmed redactions so far


def report_key(report_id: UUID | str) -> str:
    return f"report:{report_id}"


class Withdrawal(msgspec.Struct, frozen=True):
    at: datetime
    reason: str


class ReportVersion(msgspec.Struct, frozen=True):
    """A published version as the public sees it listed (no staff ids: who published is for staff)."""

    version: int
    final: bool  # false: an interim version
    position: int  # the log position its content was built from
    digest: str  # SHA-256 of its canonical content (reports.content.digest)
    builder: str
    published_at: datetime
    erratum: str | None = None  # a correction: what changed
    reason: str | None = None  # and why
    withdrawn: Withdrawal | None = None


class ReportProjection(Fold):
    name = "report"
    topics = tuple(get_topic(cls) for cls in (Report.Published, Report.Corrected, Report.Withdrawn, ReviewCase.OriginalsShredded))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Report.Published, tracking: Tracking) -> None:
        self._version(e, tracking, ReportVersion(e.version, e.final, e.position, e.digest, e.builder, e.timestamp))

    @process_event.register
    def _(self, e: Report.Corrected, tracking: Tracking) -> None:
        self._version(e, tracking, ReportVersion(e.version, e.final, e.position, e.digest, e.builder, e.timestamp, e.erratum, e.reason))

    @process_event.register
    def _(self, e: Report.Withdrawn, tracking: Tracking) -> None:
        fields = {f"{_WITHDRAWN}{e.version}": msgspec.json.encode(Withdrawal(e.timestamp, e.reason)).decode()}
        self.view.hset(tracking, report_key(e.originator_id), **fields)

    @process_event.register
    def _(self, e: ReviewCase.OriginalsShredded, tracking: Tracking) -> None:
        self.view.hincrby(tracking, ERASURES, "count")

    def _version(self, e: Any, tracking: Tracking, version: ReportVersion) -> None:
        self.view.hset(tracking, report_key(e.originator_id), **{f"{_VERSION}{version.version}": msgspec.json.encode(version).decode()})


_DECODE = msgspec.json.Decoder(ReportVersion)
_WITHDRAWAL = msgspec.json.Decoder(Withdrawal)


def decode_versions(h: dict[bytes, bytes]) -> list[ReportVersion]:
    """A report's versions, oldest first, from the view's hash (as Redis or `Memory.hgetall` gives it)."""
    withdrawn = {int(k[len(_WITHDRAWN) :]): _WITHDRAWAL.decode(v) for k, v in h.items() if k.startswith(_WITHDRAWN.encode())}
    versions = [_DECODE.decode(v) for k, v in h.items() if k.startswith(_VERSION.encode())]
    return sorted(
        (msgspec.structs.replace(v, withdrawn=withdrawn.get(v.version)) for v in versions), key=lambda v: v.version
    )


class Listed(Protocol):
    withdrawn: Any


V = TypeVar("V", bound=Listed)


def latest(versions: Sequence[V]) -> V | None:
    """The version `GET …/report` serves (and `agora report build` builds): the newest one not withdrawn, else the newest (then withdrawn)."""
    standing = [v for v in versions if v.withdrawn is None]
    return (standing or list(versions) or [None])[-1]
