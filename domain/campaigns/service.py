"""Campaigns and near-duplicates: reading clusters, and editors' decisions about them.

The clusterer (workers/clusterer.py) records where each response belongs; here staff read the
clusters of a consultation (folded from the log: `Book`) with each member's difference from the
cluster's representative (its earliest member still in it), and editors confirm a cluster as a
campaign, split a member out, or merge two clusters, each an event naming who and why. Reviewers
apply one review to a confirmed campaign (`GroupReview`): each member's case records its own events.
"""

from __future__ import annotations

import difflib
import os
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain.campaigns.cluster import Assignment, Book, Cluster, ClusterConflict, Member, assignment_id
from domain.campaigns.group import GroupReview, check_group_review
from domain.consultations.service import Consultations
from domain.core import Agora, read_log
from domain.errors import DomainError, FieldError, InvalidInput
from domain.review.case import CaseClosed, ClaimConflict, Outcome, ReviewCase, case_id
from domain.review.service import Review
from domain.sealed import Sealed, Vault
from domain.staff.member import Role
from domain.staff.service import Staff

BOOK_TOPICS = [get_topic(t) for t in Book.TOPICS]
CLUSTER_TEXT = "cluster free text"  # what an access record says staff saw: the texts of a cluster's members
EXCERPT = 240
ATTEMPTS = 3
# The work one member's diff may take, in steps of difflib's search (BoundedMatcher): about 0.2 s of CPU at
# most. The longest texts the answer form allows (17,000 characters) with one word in twenty changed
# take up to two thirds of it; beyond it, a diff is coarse.
DIFF_STEPS = 1_000_000


class ClusterNotFound(DomainError):
    def __init__(self, cluster_id: object) -> None:
        super().__init__(f"No cluster {cluster_id} in this consultation.")


class NotACampaign(DomainError):
    """A group review of a cluster no editor has confirmed as a campaign."""


@dataclass(frozen=True)
class Skipped:
    response_id: UUID
    reason: str  # "claimed": someone else holds a live claim; "completed": already reviewed or excluded
    holder: UUID | None = None  # of the live claim


@dataclass(frozen=True)
class GroupApplied:
    id: UUID
    position: int
    members: int  # covered: each member's case completed in it
    skipped: list[Skipped]


def original_texts(responses: Sequence[dict[str, Sealed]], vault: Vault) -> list[str | None]:
    """Each response's free-text answers as submitted, one after another by question; None for a
    response any of whose answers is shredded. The keys are read at once."""
    asked = [sorted(texts.items()) for texts in responses]
    opened = iter(vault.unseal_many([(sealed, question_id) for items in asked for question_id, sealed in items]))
    parts = [[next(opened) for _ in items] for items in asked]
    return [None if None in texts else "\n".join(texts) for texts in parts]  # type: ignore[arg-type]


@dataclass(frozen=True)
class Change:
    op: str  # " " the same, "-" only in the representative, "+" only in the member
    text: str


class DiffTooCostly(Exception):
    """A word-by-word diff would take more than DIFF_STEPS."""


class BoundedMatcher(difflib.SequenceMatcher):
    """difflib's matcher, every word counted (no junk), that gives up past DIFF_STEPS.

    Its search for the longest match takes a step for each word of a range of the representative's
    and for each place that word has in the member's before the range's end: a text of a few words
    repeated makes one search quadratic, and the searches together cubic (a tester's 8,500 words of
    `a` and `b` took 13 s; 1,000 of `a` against `a b` repeated, 10 s). Junk does not bound it either:
    autojunk leaves alone words under 1% of the text, which make it as slow.
    """

    def __init__(self, a: list[str], b: list[str]) -> None:
        super().__init__(None, a, b, autojunk=False)
        self.steps = DIFF_STEPS

    # get_matching_blocks, the only caller, passes all four bounds
    def find_longest_match(self, alo: int, ahi: int, blo: int, bhi: int) -> difflib.Match:  # type: ignore[override]
        self.steps -= sum(1 + bisect_left(self.b2j.get(word, ()), bhi) for word in self.a[alo:ahi])
        if self.steps < 0:
            raise DiffTooCostly
        return super().find_longest_match(alo, ahi, blo, bhi)


def coarse_opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """The words the same at the start and at the end, and all those between as one change: in linear time."""
    start = len(os.path.commonprefix([a, b]))
    end = len(os.path.commonprefix([a[start:][::-1], b[start:][::-1]]))
    parts = [("equal", 0, start, 0, start), ("replace", start, len(a) - end, start, len(b) - end), ("equal", len(a) - end, len(a), len(b) - end, len(b))]
    return [(op, i1, i2, j1, j2) for op, i1, i2, j1, j2 in parts if i2 > i1 or j2 > j1]


def diff(representative: str, member: str) -> list[Change]:
    """Word by word: what a member's text changes of the representative's; coarsely past DIFF_STEPS."""
    a, b = representative.split(), member.split()
    try:
        opcodes = BoundedMatcher(a, b).get_opcodes()
    except DiffTooCostly:
        opcodes = coarse_opcodes(a, b)
    changes = []
    for op, i1, i2, j1, j2 in opcodes:
        if op == "equal":
            changes.append(Change(" ", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            changes.append(Change("-", " ".join(a[i1:i2])))
        if j2 > j1:
            changes.append(Change("+", " ".join(b[j1:j2])))
    return changes


class Campaigns:
    def __init__(self, app: Agora, consultations: Consultations, staff: Staff, review: Review) -> None:
        self.app = app
        self.consultations = consultations
        self.staff = staff
        self.review = review
        self._book, self._folded = Book(), 0  # the clusters as folded up to position `_folded` of the log
        self._folding = threading.Lock()

    # Reading

    def book(self) -> Book:
        """Every cluster as the log now stands: folded once, then kept up to date by folding only the
        events since (a fold goes in log order), and handed out as a copy later folds leave alone."""
        with self._folding:
            for position, e in read_log(self.app, BOOK_TOPICS, after=self._folded):
                self._book.apply(e, position)
                self._folded = position
            return self._book.copy()

    def clusters(self, slug: str, min_size: int = 2) -> tuple[Book, dict[UUID, list[Member]]]:
        """A consultation's clusters of at least `min_size` members, largest first."""
        book = self.book()
        found = book.clusters(self.consultations.get(slug).id)
        kept = sorted(((c, m) for c, m in found.items() if len(m) >= min_size), key=lambda cm: (-len(cm[1]), cm[1][0].position))
        return book, dict(kept)

    def cluster(self, slug: str, cluster_id: UUID) -> tuple[Book, list[Member]]:
        book = self.book()
        members = book.clusters(self.consultations.get(slug).id).get(book.resolve(cluster_id))
        if not members:
            raise ClusterNotFound(cluster_id)
        return book, members

    def text(self, response_id: UUID) -> str:
        """A response's free text as it now reads (redactions applied); empty where erased."""
        response = self.consultations.response(response_id)
        answers = self.review.answers(response_id)
        return "\n".join(t for q in sorted(response.texts) if isinstance(t := answers.get(q), str))

    # Editors' decisions

    def confirm(self, slug: str, cluster_id: UUID, by: UUID, name: str, reason: str) -> int:
        """Confirm a cluster as a campaign, by name."""
        return self._on_cluster(slug, cluster_id, by, lambda c: c.confirm(by, name, reason))

    def merge(self, slug: str, cluster_id: UUID, into: UUID, by: UUID, reason: str) -> int:
        """Merge a cluster into another: its members count as the other's from now on."""
        self.staff.get(by).require(Role.EDITOR)
        consultation = self.consultations.get(slug).id
        book = self.book()
        live = book.clusters(consultation)
        if into not in live:
            raise ClusterNotFound(into)
        if cluster_id not in live:  # named in the request's body, not its path: a rule broken, not a missing page
            raise InvalidInput([FieldError("other", f"There is no cluster {cluster_id} in this consultation.")])

        def command() -> tuple[Any, ...]:
            source, target = self._aggregate(consultation, cluster_id), self._aggregate(consultation, into)
            source.merge_into(by, target, reason)
            return (source, target)

        return self._record(command)[1]

    def split(self, slug: str, cluster_id: UUID, response_id: UUID, by: UUID, reason: str) -> tuple[UUID, int]:
        """Split a member out of its cluster into a cluster of its own; the new cluster's id and the event's position."""
        self.staff.get(by).require(Role.EDITOR)
        book, members = self.cluster(slug, cluster_id)
        if response_id not in {m.response_id for m in members}:
            raise ClusterConflict("That response is not a member of this cluster.")
        if len(members) == 1:
            raise ClusterConflict("The response is this cluster's only member: there is nothing to split it from.")

        def command() -> tuple[Any, ...]:
            assignment = self.app.find(assignment_id(response_id), Assignment)
            assert assignment is not None  # the book found it
            if assignment.cluster_id is None or book.resolve(assignment.cluster_id) != book.resolve(cluster_id):
                raise ClusterConflict("The response left this cluster a moment ago; look again.")
            assignment.split_out(by, reason)
            return (assignment,)

        (assignment,), position = self._record(command)
        return assignment.cluster_id, position

    # Reviewers' group review

    def review_group(
        self, slug: str, cluster_id: UUID, by: UUID, themes: list[str], outcome: Outcome, reason: str, note: str | None,
    ) -> GroupApplied:
        """Apply one review to a confirmed campaign's members as they are now: each member's case is tagged and
        completed, naming the group review, all in one transaction. Members someone else holds a live claim on,
        or already completed, are skipped and reported; members who join later are not covered."""
        self.staff.get(by).require(Role.REVIEWER)
        consultation = self.consultations.get(slug).id
        frame = self.review.frame(consultation)
        themes = list(dict.fromkeys(frame.active(t, "tags").id for t in themes))
        reason, note = check_group_review(outcome, reason, note)
        group_id = uuid4()
        skipped: list[Skipped] = []

        def command() -> tuple[Any, ...]:  # again from the log on a retry: the members may have changed too
            book, members = self.cluster(slug, cluster_id)
            if book.resolve(cluster_id) != cluster_id:
                raise ClusterNotFound(cluster_id)  # merged into another: act on that one
            if cluster_id not in book.campaigns:
                raise NotACampaign("Only a cluster an editor confirmed as a campaign can be reviewed as a group.")
            skipped.clear()
            now, cases = datetime.now(UTC), []
            for m in members:
                case = self.app.find(case_id(m.response_id), ReviewCase) or ReviewCase(m.response_id)
                try:
                    case.complete_in_group(by, themes, outcome, reason, group_id, now)
                except ClaimConflict as e:
                    skipped.append(Skipped(m.response_id, "claimed", e.holder))
                    continue
                except CaseClosed:
                    skipped.append(Skipped(m.response_id, "completed"))
                    continue
                cases.append(case)
            if not cases:
                raise ClusterConflict("Every member of this campaign is already reviewed or claimed by someone else.")
            covered = tuple(c.response_id for c in cases)
            group = GroupReview(consultation, cluster_id, by, tuple(themes), outcome, reason, note, covered, id=group_id)
            return (group, *cases)

        (group, *_), position = self._record(command)
        return GroupApplied(group.id, position, len(group.members), list(skipped))

    def _on_cluster(self, slug: str, cluster_id: UUID, by: UUID, change: Callable[[Cluster], None]) -> int:
        self.staff.get(by).require(Role.EDITOR)
        consultation = self.consultations.get(slug).id
        if cluster_id not in self.book().clusters(consultation):
            raise ClusterNotFound(cluster_id)

        def command() -> tuple[Any, ...]:
            cluster = self._aggregate(consultation, cluster_id)
            change(cluster)
            return (cluster,)

        return self._record(command)[1]

    def _aggregate(self, consultation_id: UUID, cluster_id: UUID) -> Cluster:
        return self.app.find(cluster_id, Cluster) or Cluster(consultation_id=consultation_id, id=cluster_id)

    def _record(self, command: Callable[[], tuple[Any, ...]]) -> tuple[tuple[Any, ...], int]:
        """Run a command on fresh aggregates and save them together, again if another editor got there first."""
        for _ in range(ATTEMPTS):
            aggregates = command()
            try:
                position = self.app.record(*aggregates)
            except IntegrityError:
                continue
            assert position is not None  # every decision records an event
            return aggregates, position
        raise ClusterConflict("Others changed this cluster at the same moment; look again.")
