"""Who saw personal data: each reading or export of it is an event of its own, in the same log as everything else.

An auditor then sees who read the attendee list, exported the signups or read a response's free
text, and when, in the history they can verify. Each record is an aggregate of its own, so that
records never contend with each other or with what was read.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.topics import stored_as


@stored_as("domain.access")
class Access(Aggregate):
    class Recorded(Aggregate.Created):
        by: UUID | None  # None: an operator on the command line
        what: str  # what was seen, e.g. "attendee list"
        subject: str  # of what: a response's id, a consultation's slug and session

    @event(Recorded)
    def __init__(self, by: UUID | None, what: str, subject: str) -> None:
        self.by = by
        self.what = what
        self.subject = subject
