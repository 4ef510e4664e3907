"""Recording accesses to personal data: a caller records once it has read the data and before it hands it over."""

from __future__ import annotations

from uuid import UUID

from domain.access.access import Access
from domain.core import Agora

ATTENDEES = "attendee list"
SIGNUPS_EXPORT = "signups export"
RESPONSE_TEXT = "response free text"
QUOTE_CANDIDATES = "quote candidates"  # the passages reviewers marked, subject the responses' ids
REPORT_PREVIEW = "report preview"  # the next version with its selected quotes, before publication


class Accesses:
    def __init__(self, app: Agora) -> None:
        self.app = app

    def record(self, by: UUID | None, what: str, subject: str) -> int:
        """Record that `by` saw `what` of `subject`; the record's position in the log."""
        position = self.app.record(Access(by=by, what=what, subject=subject))
        assert position is not None  # a new aggregate always records
        return position
