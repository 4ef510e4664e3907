"""Campaigns and near-duplicates: staff read a consultation's clusters; editors confirm, split and merge them;
reviewers review a confirmed campaign as a group.

Clusters are folded from the log on each request (`Campaigns.book`), so they answer at once with
what the clusterer and editors recorded, with no view to wait for. Texts read as they now read
(redactions applied), and reading them is on record like reading a response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.problems import STAFF_PROBLEMS
from api.staff.review import CASE_READERS, EDITORS, REVIEWERS, Recorded, Staff
from domain.campaigns.cluster import MAX_REASON, Book, Likeness, Member
from domain.campaigns.service import CLUSTER_TEXT, EXCERPT, diff
from domain.review.case import MAX_NOTE, Outcome
from runtime import System

CLUSTERS = "/review/consultations/{slug:str}/clusters"
CLUSTER = CLUSTERS + "/{cluster_id:uuid}"
ClusterId = FromPath[UUID]
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class ClusterSummary(msgspec.Struct):
    id: UUID
    size: int
    kind: Annotated[Likeness, msgspec.Meta(description="`identical`: every member reads the same once normalised; `near`: some differ")]
    campaign: Annotated[str | None, msgspec.Meta(description="The campaign's name once an editor confirmed it")]
    representative: Annotated[UUID, msgspec.Meta(description="The earliest member still in the cluster")]
    excerpt: Annotated[str, msgspec.Meta(description=f"The representative's text as it now reads, its first {EXCERPT} characters")]
    covered: Annotated[int, msgspec.Meta(description="Members a group review covered (until reopened); the others were reviewed on their own or are still to review")]


class Change(msgspec.Struct):
    op: Annotated[str, msgspec.Meta(description='" " the same as the representative, "-" only in it, "+" only in this member')]
    text: str


class MemberOut(msgspec.Struct):
    response_id: UUID
    kind: Likeness
    similarity: Annotated[float, msgspec.Meta(description="To the member it matched when assigned (1.0 identical)")]
    changes: Annotated[list[Change], msgspec.Meta(description="Word by word, against the representative's text")]
    group_review: Annotated[UUID | None, msgspec.Meta(description="The group review that covered it; null: none did (reviewed on its own, reopened, or still to review)")]


class GroupReviewOut(msgspec.Struct):
    id: UUID
    by: UUID
    at: datetime
    tags: list[str]
    outcome: Outcome
    reason: str
    note: str | None
    members: Annotated[int, msgspec.Meta(description="How many members it covered")]


class ClusterOut(msgspec.Struct):
    id: UUID
    size: int
    kind: Likeness
    campaign: str | None
    representative: UUID
    text: Annotated[str, msgspec.Meta(description="The representative's text as it now reads (redactions applied)")]
    covered: Annotated[int, msgspec.Meta(description="Members a group review covered (until reopened); the others were reviewed on their own or are still to review")]
    group_reviews: Annotated[list[GroupReviewOut], msgspec.Meta(description="Oldest first, with those of clusters merged into it")]
    members: list[MemberOut]
    next_cursor: Annotated[int | None, msgspec.Meta(description="Pass as `cursor` for the next page of members; null on the last")]


class Confirmation(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]
    reason: Reason


class SplitIn(msgspec.Struct, forbid_unknown_fields=True):
    response_id: UUID
    reason: Reason


class Split(msgspec.Struct):
    cluster_id: Annotated[UUID, msgspec.Meta(description="The response's new cluster, of its own")]
    position: int


class MergeIn(msgspec.Struct, forbid_unknown_fields=True):
    other: Annotated[UUID, msgspec.Meta(description="The cluster whose members join this one")]
    reason: Reason


class GroupReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    tags: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]], msgspec.Meta(max_length=50, description="Theme ids of the coding frame")] = []
    reason: Annotated[Reason, msgspec.Meta(description="Why; needed to exclude, as for one response")] = ""
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)] | None = None


class SkippedOut(msgspec.Struct):
    response_id: UUID
    reason: Annotated[str, msgspec.Meta(description="`claimed`: someone else holds a live claim on it; `completed`: already reviewed or excluded")]
    holder: Annotated[UUID | None, msgspec.Meta(description="Who holds the claim")] = None


class GroupApplied(msgspec.Struct):
    group_review: Annotated[UUID, msgspec.Meta(description="The group review's id: each member's events name it (`group`)")]
    position: int
    members: Annotated[int, msgspec.Meta(description="Members covered: each tagged and completed in it")]
    skipped: Annotated[list[SkippedOut], msgspec.Meta(description="Members left as they were, and why")]


def _covered(book: Book, members: list[Member]) -> int:
    return sum(m.response_id in book.covered for m in members)


def _kind(book: Book, cluster_id: UUID, members: list[Member]) -> Likeness:
    merged = any(into == cluster_id for into in book.merged.values())
    return Likeness.NEAR if merged or any(m.kind == Likeness.NEAR for m in members) else Likeness.IDENTICAL


@get(CLUSTERS, responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[CASE_READERS], summary="A consultation's clusters of two or more, largest first")
def clusters(
    slug: FromPath[str], request: Staff, system: NamedDependency[System],
    cursor: Annotated[int, QueryParameter(ge=0, description="Clusters to skip")] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
) -> list[ClusterSummary]:
    book, found = system.campaigns.clusters(slug)
    page = list(found.items())[cursor : cursor + limit]
    summaries = [
        ClusterSummary(
            c, len(ms), _kind(book, c, ms), book.campaigns.get(c), ms[0].response_id, system.campaigns.text(ms[0].response_id)[:EXCERPT],
            _covered(book, ms),
        )
        for c, ms in page
    ]
    if summaries:  # excerpts are free text, which may name people: who read them is on record, by cluster and response
        system.access.record(request.user.id, CLUSTER_TEXT, ",".join(f"{s.id},{s.representative}" for s in summaries))
    return summaries


@get(CLUSTER, responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[CASE_READERS], summary="A cluster's members, each with its difference from the representative")
def cluster(
    slug: FromPath[str], cluster_id: ClusterId, request: Staff, system: NamedDependency[System],
    cursor: Annotated[int, QueryParameter(ge=0, description="`next_cursor` of the previous page")] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
) -> ClusterOut:
    book, members = system.campaigns.cluster(slug, cluster_id)
    resolved = book.resolve(cluster_id)
    representative = system.campaigns.text(members[0].response_id)
    page = [
        MemberOut(
            m.response_id, m.kind, m.similarity, [Change(c.op, c.text) for c in diff(representative, system.campaigns.text(m.response_id))],
            book.covered.get(m.response_id),
        )
        for m in members[cursor : cursor + limit]
    ]
    # Free text may name people: who read it is on record, by cluster and by each response shown.
    shown = dict.fromkeys([members[0].response_id, *(m.response_id for m in page)])  # the representative, and the page's members
    system.access.record(request.user.id, CLUSTER_TEXT, ",".join(map(str, [resolved, *shown])))
    after = cursor + limit
    reviews = [
        GroupReviewOut(r.originator_id, r.by, r.timestamp, list(r.themes), r.outcome, r.reason, r.note, len(r.members))
        for r in book.group_reviews(resolved)
    ]
    return ClusterOut(
        resolved, len(members), _kind(book, resolved, members), book.campaigns.get(resolved), members[0].response_id, representative,
        _covered(book, members), reviews, page, after if after < len(members) else None,
    )


@post(CLUSTER + "/confirm", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Confirm a cluster as a campaign, by name")
def confirm(slug: FromPath[str], cluster_id: ClusterId, data: JSONBody[Confirmation], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.campaigns.confirm(slug, cluster_id, request.user.id, data.name, data.reason))


@post(CLUSTER + "/split", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Split a member out into a cluster of its own")
def split(slug: FromPath[str], cluster_id: ClusterId, data: JSONBody[SplitIn], request: Staff, system: NamedDependency[System]) -> Split:
    new, position = system.campaigns.split(slug, cluster_id, data.response_id, request.user.id, data.reason)
    return Split(new, position)


@post(CLUSTER + "/merge", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Merge another cluster into this one")
def merge(slug: FromPath[str], cluster_id: ClusterId, data: JSONBody[MergeIn], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.campaigns.merge(slug, data.other, cluster_id, request.user.id, data.reason))


@post(CLUSTER + "/review", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Review a confirmed campaign as a group")
def review_group(slug: FromPath[str], cluster_id: ClusterId, data: JSONBody[GroupReviewIn], request: Staff, system: NamedDependency[System]) -> GroupApplied:
    done = system.campaigns.review_group(slug, cluster_id, request.user.id, data.tags, data.outcome, data.reason, data.note)
    return GroupApplied(done.id, done.position, done.members, [SkippedOut(s.response_id, s.reason, s.holder) for s in done.skipped])


routes = [clusters, cluster, confirm, split, merge, review_group]
