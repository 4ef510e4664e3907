"""A group review: one review (themes, an outcome, a note) that a reviewer applies to a confirmed campaign.

It is an aggregate of its own, recorded with its id, who, when and why, and the members it
covered; each member's `ReviewCase` records its own `Tagged` and `Completed` events naming it
(`group`), in the same transaction: all of them or none.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import FieldError, InvalidInput
from domain.review.case import MAX_NOTE, Outcome, check_outcome
from domain.text import free_text, visible
from domain.topics import stored_as


def check_group_review(outcome: Outcome, reason: str, note: str | None) -> tuple[str, str | None]:
    """The rules of a single completion, and a note that says something if there is one; the reason
    and the note as recorded (free text: control characters dropped)."""
    check_outcome(outcome, reason)
    if note is not None and (not visible(note) or len(note) > MAX_NOTE):
        raise InvalidInput([FieldError("note", f"A note needs between 1 and {MAX_NOTE} characters (or leave it out).")])
    return free_text(reason), None if note is None else free_text(note)


@stored_as("domain.campaigns")
class GroupReview(Aggregate):
    class Applied(Aggregate.Created):
        consultation_id: UUID
        cluster_id: UUID
        by: UUID
        themes: tuple[str, ...]
        outcome: Outcome
        reason: str
        note: str | None
        members: tuple[UUID, ...]  # the responses it covered, each completed in it

    @event(Applied)
    def __init__(
        self, consultation_id: UUID, cluster_id: UUID, by: UUID, themes: tuple[str, ...], outcome: Outcome, reason: str,
        note: str | None, members: tuple[UUID, ...], id: UUID,  # noqa: A002 - chosen first: the members' events name it
    ) -> None:
        self.cluster_id = cluster_id
        self.members = members
