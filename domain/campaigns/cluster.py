"""Clusters of responses with the same or nearly the same text, and the campaigns editors confirm among them.

Each response's place is an `Assignment`, an aggregate whose id derives from the response's:
recording it twice is refused by the event store, so the clusterer assigns each response exactly
once, whichever process runs it. A response never changes cluster silently: it moves only by an
editor's split (an event naming who and why), by a merge of its whole cluster (likewise), or leaves
when its original text is shredded. A `Cluster` aggregate exists once an editor acts on a cluster.

A cluster's id derives from its first member's; `Book` folds all of it into who belongs where.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.campaigns.group import GroupReview
from domain.review.case import ReviewCase, case_id
from domain.errors import DomainError, FieldError, InvalidInput
from domain.ids import derived, derived_text
from domain.text import free_text, name as one_line, name_problem, visible
from domain.topics import stored_as

MAX_REASON = 2000


class Likeness(str, Enum):
    IDENTICAL = "identical"  # the same text as a member, once normalised
    NEAR = "near"  # at or above the similarity threshold with a member
    UNIQUE = "unique"  # like nothing before it: the first member of a cluster of its own
    UNCLUSTERED = "unclustered"  # too short, empty or unreadable: never clustered


class ClusterConflict(DomainError):
    """The clusters are not in a state where this change makes sense (say, merging a cluster into itself)."""


def assignment_id(response_id: UUID) -> UUID:
    return derived("cluster-assignment", response_id)


def assignment_text(response_id: UUID) -> str:
    """`str(assignment_id(response_id))`, as cheaply as can be: a stats rebuild derives one per response with free text."""
    return derived_text("cluster-assignment", response_id)


def first_cluster_id(response_id: UUID) -> UUID:
    """The id of the cluster a response founds."""
    return uuid5(NAMESPACE_URL, f"agora:cluster:{response_id}")


def _reason(reason: str) -> str:
    """The reason as recorded (free text: control characters dropped)."""
    if not visible(reason) or len(reason) > MAX_REASON:
        raise InvalidInput([FieldError("reason", f"Say why, in 1 to {MAX_REASON} characters.")])
    return free_text(reason)


@stored_as("domain.campaigns")
class Assignment(Aggregate):
    class Assigned(Aggregate.Created):
        response_id: UUID
        consultation_id: UUID
        cluster_id: UUID | None  # None: unclustered
        kind: Likeness
        similarity: float  # to the member it matched (1.0 identical, 0.0 unique or unclustered)

    class SplitOut(Aggregate.Event):
        by: UUID
        reason: str
        cluster_id: UUID  # a new cluster of its own

    class Left(Aggregate.Event):
        reason: str  # why its text no longer counts: its original was shredded

    @staticmethod
    def create_id(response_id: UUID, **_: Any) -> UUID:
        return assignment_id(response_id)

    @event(Assigned)
    def __init__(self, response_id: UUID, consultation_id: UUID, cluster_id: UUID | None, kind: Likeness, similarity: float) -> None:
        self.response_id = response_id
        self.consultation_id = consultation_id
        self.cluster_id = cluster_id

    def split_out(self, by: UUID, reason: str) -> None:
        if self.cluster_id is None:
            raise ClusterConflict("This response is in no cluster, so there is nothing to split it out of.")
        self._split(by, _reason(reason), uuid5(NAMESPACE_URL, f"agora:cluster:{self.response_id}:{self.version}"))

    def leave(self, reason: str) -> None:
        if self.cluster_id is not None:
            self._leave(reason)

    @event(SplitOut)
    def _split(self, by: UUID, reason: str, cluster_id: UUID) -> None:
        self.cluster_id = cluster_id

    @event(Left)
    def _leave(self, reason: str) -> None:
        self.cluster_id = None


@stored_as("domain.campaigns")
class Cluster(Aggregate):
    class Opened(Aggregate.Created):
        consultation_id: UUID

    class CampaignConfirmed(Aggregate.Event):
        by: UUID
        name: str
        reason: str

    class MergedInto(Aggregate.Event):
        by: UUID
        into: UUID
        reason: str

    @event(Opened)
    def __init__(self, consultation_id: UUID, id: UUID) -> None:  # noqa: A002 - eventsourcing's name for a chosen aggregate id
        self.consultation_id = consultation_id
        self.campaign: str | None = None
        self.merged_into: UUID | None = None

    def confirm(self, by: UUID, name: str, reason: str) -> None:
        self._require_live()
        if problem := name_problem(name, 200):
            raise InvalidInput([FieldError("name", problem)])
        self._confirm(by, one_line(name), _reason(reason))

    def merge_into(self, by: UUID, into: Cluster, reason: str) -> None:
        self._require_live()
        into._require_live()
        if into.id == self.id:
            raise ClusterConflict("A cluster cannot be merged into itself.")
        if into.consultation_id != self.consultation_id:
            raise ClusterConflict("Only clusters of the same consultation can be merged.")
        self._merge(by, into.id, _reason(reason))

    def _require_live(self) -> None:
        if self.merged_into is not None:
            raise ClusterConflict(f"This cluster was merged into {self.merged_into}; act on that one.")

    @event(CampaignConfirmed)
    def _confirm(self, by: UUID, name: str, reason: str) -> None:
        self.campaign = name

    @event(MergedInto)
    def _merge(self, by: UUID, into: UUID, reason: str) -> None:
        self.merged_into = into


@dataclass(frozen=True)
class Member:
    response_id: UUID
    cluster_id: UUID | None  # as assigned or split; a merge is resolved by `Book.resolve`
    kind: Likeness
    similarity: float
    position: int  # of its assignment, in the log
    version: int  # of its assignment aggregate, as folded


@dataclass
class Book:
    """Who belongs where: every assignment, split, departure, campaign, merge and group review, folded in log order."""

    members: dict[UUID, Member] = field(default_factory=dict)  # by response id
    responses: dict[UUID, UUID] = field(default_factory=dict)  # assignment id -> response id
    consultations: dict[UUID, UUID] = field(default_factory=dict)  # cluster id -> consultation id
    campaigns: dict[UUID, str] = field(default_factory=dict)  # cluster id -> campaign name
    merged: dict[UUID, UUID] = field(default_factory=dict)  # cluster id -> the cluster it was merged into
    covered: dict[UUID, UUID] = field(default_factory=dict)  # response id -> the last group review that covered it, until reopened
    covered_cases: dict[UUID, UUID] = field(default_factory=dict)  # their review cases' ids -> response id
    reviews: dict[UUID, list[GroupReview.Applied]] = field(default_factory=dict)  # cluster id (as reviewed) -> its group reviews

    TOPICS = (
        Assignment.Assigned, Assignment.SplitOut, Assignment.Left,
        Cluster.CampaignConfirmed, Cluster.MergedInto, GroupReview.Applied, ReviewCase.Reopened,
    )

    def apply(self, e: Any, position: int = 0) -> None:
        """Fold one event (others are ignored); an assignment's event folded before is skipped."""
        if isinstance(e, Assignment.Assigned):
            if e.response_id not in self.members:
                self.members[e.response_id] = Member(e.response_id, e.cluster_id, e.kind, e.similarity, position, 1)
                self.responses[e.originator_id] = e.response_id
                if e.cluster_id is not None:
                    self.consultations[e.cluster_id] = e.consultation_id
        elif isinstance(e, Assignment.SplitOut | Assignment.Left):
            member = self.members.get(self.responses.get(e.originator_id))  # type: ignore[arg-type]
            if member is None or e.originator_version <= member.version:
                return
            if isinstance(e, Assignment.SplitOut):
                self.consultations[e.cluster_id] = self.consultations[member.cluster_id]  # type: ignore[index]
            moved = e.cluster_id if isinstance(e, Assignment.SplitOut) else None
            self.members[member.response_id] = replace(member, cluster_id=moved, version=e.originator_version)  # never changed in place: see copy()
        elif isinstance(e, Cluster.CampaignConfirmed):
            self.campaigns[e.originator_id] = e.name
        elif isinstance(e, Cluster.MergedInto):
            self.merged[e.originator_id] = e.into
        elif isinstance(e, GroupReview.Applied):
            self.covered.update(dict.fromkeys(e.members, e.originator_id))
            self.covered_cases.update((case_id(m), m) for m in e.members)
            self.reviews.setdefault(e.cluster_id, []).append(e)
        elif isinstance(e, ReviewCase.Reopened) and (response := self.covered_cases.pop(e.originator_id, None)):
            del self.covered[response]  # to review again, on its own or in another group review

    def copy(self) -> Book:
        """As it stands now, whatever is folded into this one later (members are replaced, never changed)."""
        return Book(
            dict(self.members), dict(self.responses), dict(self.consultations), dict(self.campaigns), dict(self.merged),
            dict(self.covered), dict(self.covered_cases), {c: list(rs) for c, rs in self.reviews.items()},
        )

    def resolve(self, cluster_id: UUID) -> UUID:
        """The cluster a cluster now is, after merges."""
        while cluster_id in self.merged:
            cluster_id = self.merged[cluster_id]
        return cluster_id

    def group_reviews(self, cluster_id: UUID) -> list[GroupReview.Applied]:
        """The group reviews of a live cluster, oldest first, with those of clusters merged into it."""
        return sorted((r for c, rs in self.reviews.items() if self.resolve(c) == cluster_id for r in rs), key=lambda r: r.timestamp)

    def cluster_of(self, response_id: UUID) -> UUID | None:
        member = self.members.get(response_id)
        return None if member is None or member.cluster_id is None else self.resolve(member.cluster_id)

    def clusters(self, consultation_id: UUID | None = None) -> dict[UUID, list[Member]]:
        """Each live cluster's members (of one consultation, if given), oldest assignment first."""
        found: dict[UUID, list[Member]] = {}
        for member in sorted(self.members.values(), key=lambda m: m.position):
            if member.cluster_id is None:
                continue
            cluster = self.resolve(member.cluster_id)
            if consultation_id is None or self.consultations.get(cluster) == consultation_id:
                found.setdefault(cluster, []).append(member)
        return found
