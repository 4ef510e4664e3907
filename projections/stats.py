"""Public statistics' fold: responses counted, and answers counted per option of each choice question,
with and without the campaigns editors confirmed.

Pure: events in, per consultation a set of its counted questions (`counted:{id}`) and a hash of
counts (`stats:{id}`) out; `tally` turns those counts into `Stats` by the counting rules, for the
API, a point-in-time replay or a report alike. The Redis writer and reader are in projections.live.

Campaigns. A campaign is usually confirmed after its members were counted, so the fold keeps what
each cluster holds: per response with free text (only those are clustered) its counted answers
and its cluster (`member:{assignment id}`), per cluster the same counts as `stats:{id}` for its
members (`cluster:{id}`), the clusters editors acted on (`opened`: cluster -> consultation) and
the merges (`merged`: cluster -> the cluster it was merged into), and per consultation its confirmed
campaigns (`campaigns:{id}`, a sorted set by the position of their first confirmation) and their
names (`names:{id}`). A merge moves a cluster's members into the other: they count as its members
from then on, as a campaign only if that cluster is confirmed (so a confirmed campaign merged into
an unconfirmed cluster counts as no campaign until an editor confirms the merged cluster). A
response that leaves its cluster (its original text shredded) leaves its campaign's counts and
counts as in no campaign.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.campaigns.cluster import Assignment, Cluster, assignment_text
from domain.consultations.consultation import Consultation, Definition, Kind
from domain.consultations.response import Response
from projections.state import Fold, Memory

COUNTED = (Kind.SINGLE_CHOICE, Kind.YES_NO)
MERGED = "merged"
OPENED = "opened"  # cluster -> its consultation, for the clusters editors acted on


def stats_key(consultation_id: UUID | str) -> str:
    return f"stats:{consultation_id}"


def counted_key(consultation_id: UUID | str) -> str:
    return f"counted:{consultation_id}"


def member_key(assignment: UUID | str) -> str:
    return f"member:{assignment}"


def cluster_key(cluster_id: UUID | str) -> str:
    return f"cluster:{cluster_id}"


def campaigns_key(consultation_id: UUID | str) -> str:
    return f"campaigns:{consultation_id}"


def names_key(consultation_id: UUID | str) -> str:
    return f"names:{consultation_id}"


def answer_value(value: str | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else value


def answer_field(question_id: str, value: str | bool) -> str:
    return f"{question_id}={answer_value(value)}"


class StatsProjection(Fold):
    version = 2  # campaigns: each cluster's counts
    name = "stats"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Consultation.Created, Response.Submitted, Assignment.Assigned, Assignment.SplitOut, Assignment.Left,
            Cluster.Opened, Cluster.CampaignConfirmed, Cluster.MergedInto,
        )
    )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Consultation.Created, tracking: Tracking) -> None:
        counted = [q.id for q in e.definition.questions if q.kind in COUNTED]
        self.view.sadd(tracking, counted_key(e.originator_id), *counted)

    @process_event.register
    def _(self, e: Response.Submitted, tracking: Tracking) -> None:
        view, consultation = self.view, str(e.consultation_id)
        counted = view.members(counted_key(consultation))
        suffix = stats_key(consultation)
        view.hincrby(tracking, suffix, "responses")
        answers = [answer_field(q, v) for q, v in e.answers.items() if q in counted]
        for field in answers:
            view.hincrby(tracking, suffix, field)
        if answers and e.texts:  # for its cluster's counts once it is assigned one (only free text is clustered)
            view.hcreate(tracking, member_key(assignment_text(e.originator_id)), answers=",".join(answers))

    # Clusters and campaigns

    @process_event.register
    def _(self, e: Assignment.Assigned, tracking: Tracking) -> None:
        if e.cluster_id is None:
            self.view.insert_tracking(tracking)
        else:
            self._move(tracking, e.originator_id, str(e.cluster_id))

    @process_event.register
    def _(self, e: Assignment.SplitOut, tracking: Tracking) -> None:
        self._move(tracking, e.originator_id, str(e.cluster_id))

    @process_event.register
    def _(self, e: Assignment.Left, tracking: Tracking) -> None:
        self._move(tracking, e.originator_id, "")

    @process_event.register
    def _(self, e: Cluster.Opened, tracking: Tracking) -> None:
        self.view.hset(tracking, OPENED, **{str(e.originator_id): str(e.consultation_id)})

    @process_event.register
    def _(self, e: Cluster.CampaignConfirmed, tracking: Tracking) -> None:
        cluster = str(e.originator_id)
        consultation = self.view.hash(OPENED)[cluster]  # opened with it, or before
        if cluster not in self.view.hash(names_key(consultation)):  # a second confirmation renames it, in its place
            self.view.zadd(tracking, campaigns_key(consultation), cluster, tracking.notification_id)
        self.view.hset(tracking, names_key(consultation), **{cluster: e.name})

    @process_event.register
    def _(self, e: Cluster.MergedInto, tracking: Tracking) -> None:
        # Its counts go to the cluster it joins; its own are left as they were, never read again.
        cluster, into = str(e.originator_id), self._resolve(str(e.into))
        for field, n in self.view.hash(cluster_key(cluster)).items():
            self.view.hincrby(tracking, cluster_key(into), field, int(n))
        self.view.hset(tracking, MERGED, **{cluster: into})
        self.view.zrem(tracking, campaigns_key(self.view.hash(OPENED)[cluster]), cluster)

    def _resolve(self, cluster: str) -> str:
        """The cluster a cluster now is, after merges."""
        merged = self.view.hash(MERGED)
        while cluster in merged:
            cluster = merged[cluster]
        return cluster

    def _move(self, tracking: Tracking, assignment: UUID, to: str) -> None:
        """A response's counts out of its cluster (if any) and into `to` (if not empty)."""
        member = self.view.hash(member_key(assignment))
        answers = ["responses", *filter(None, member.get("answers", "").split(","))]
        for cluster, amount in ((member.get("cluster"), -1), (to, 1)):
            if cluster:
                key = cluster_key(self._resolve(cluster))
                for field in answers:
                    self.view.hincrby(tracking, key, field, amount)
        self.view.hset(tracking, member_key(assignment), cluster=to)


class Totals(msgspec.Struct, frozen=True):
    responses: int
    answers: dict[str, dict[str, int]]


class CampaignStats(msgspec.Struct, frozen=True):
    """A campaign an editor confirmed: its name and its members' counts (no text)."""

    name: str
    responses: int
    answers: dict[str, dict[str, int]]


class Stats(msgspec.Struct, frozen=True):
    """Public statistics, as served by `GET /consultations/{slug}/stats`."""

    responses: int
    answers: dict[str, dict[str, int]]
    position: int
    without_campaigns: Totals  # every response in no confirmed campaign
    campaigns: list[CampaignStats]  # in the order first confirmed


Counts = Mapping[bytes, bytes]


def tally(definition: Definition, counts: Counts, position: int, campaigns: Iterable[tuple[str, Counts]] = ()) -> Stats:
    """The counting rules: every option of every counted question, zero if nobody chose it.

    `counts` is the view's `stats:{id}` hash as Redis (or `Memory.hgetall`) gives it; `campaigns`,
    each confirmed campaign's name and `cluster:{id}` hash.
    """
    total = _counter(counts)
    outside = total.copy()
    found = []
    for name, campaign in campaigns:
        members = _counter(campaign)
        outside.subtract(members)
        found.append(CampaignStats(name, *_totals(definition, members)))
    return Stats(*_totals(definition, total), position, Totals(*_totals(definition, outside)), found)


def _counter(counts: Counts) -> Counter[str]:
    return Counter({k.decode(): int(v) for k, v in counts.items()})


def _totals(definition: Definition, counted: Counter[str]) -> tuple[int, dict[str, dict[str, int]]]:
    answers = {}
    for q in definition.questions:
        if q.kind in COUNTED:
            values = [o.id for o in q.options] if q.kind is Kind.SINGLE_CHOICE else [True, False]
            answers[q.id] = {answer_value(v): counted[answer_field(q.id, v)] for v in values}
    return counted["responses"], answers


def campaigns_in(memory: Memory, consultation_id: UUID | str) -> list[tuple[str, Counts]]:
    """A consultation's confirmed campaigns as `tally` takes them, from a view held in memory (a replay)."""
    names = memory.hgetall(names_key(consultation_id))
    return [(names[c].decode(), memory.hgetall(cluster_key(c.decode()))) for c, _ in memory.zrange(campaigns_key(consultation_id))]
