"""The review queue's fold: every response's review state, oldest first, by state and assignee, and progress.

Pure: events in, per case a hash (`case:{id}`) and its memberships in sorted sets scored by the
response's position (`state:{state}`, `assignee:{staff}`, `tags:{theme}`, `flags:{flag}`, and
`leases` scored by when a claim runs out), and a `progress` hash out; then the decoding of those
into queue items, a page and progress. Reviewers work one consultation at a time, so each
consultation also has its own cases (`consultation:{id}`), states (`consultation:{id}:state:{state}`)
and progress (`progress:{id}`): claiming the next new case of one never scans another's.

Each case names its cluster (domain.campaigns); a cluster's size and campaign name live once, in
`cluster:{id}`, so a member joining or leaving changes one count, not every member's case. A merged
cluster's hash names the cluster it joined (`into`, always the live one: a merge re-points the
clusters merged before, listed in `merged:{id}`), and `assignment:{id}` names the case an assignment
belongs to, for the splits and departures that name only the assignment.
The Redis writer and reader are in projections.live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.campaigns.cluster import Assignment, Cluster, Likeness
from domain.consultations.response import Response
from domain.review.case import Outcome, ReviewCase, case_text
from projections.state import Fold, State

REVIEWED = {Outcome.REVIEWED: "completed", Outcome.EXCLUDED: "excluded"}
PROGRESS = "progress"
LEASES = "leases"


@cache
def consultation_text(consultation: UUID) -> str:
    """A consultation's id as text: the same few for every response, so made once each."""
    return str(consultation)


def instant(at: datetime) -> str:
    """A time as RFC 3339 text, as msgspec writes it (UTC as `Z`): a sixth of what `isoformat()` costs,
    which a rebuild pays once per response."""
    return msgspec.json.encode(at)[1:-1].decode()


def case_key(case: UUID | str) -> str:
    return f"case:{case}"


def cluster_key(cluster: UUID | str) -> str:
    return f"cluster:{cluster}"


def cases_key(consultation: UUID | str) -> str:
    """Every case of a consultation, whatever its state."""
    return f"consultation:{consultation}"


def progress_key(consultation: UUID | str) -> str:
    return f"{PROGRESS}:{consultation}"


def state_key(state: str, consultation: UUID | str) -> str:
    """A consultation's cases in one state."""
    return f"{cases_key(consultation)}:state:{state}"


def update(view: State, tracking: Tracking, case: UUID, **fields: str) -> None:
    """Change a case's fields, keeping its state and assignee sets in step."""
    current = view.hash(case_key(case))
    member, score, consultation = str(case), float(current["position"]), current["consultation_id"]
    if "state" in fields and fields["state"] != current.get("state"):
        view.zrem(tracking, state_key(current["state"], consultation), member)
        view.zadd(tracking, state_key(fields["state"], consultation), member, score)
    if "assignee" in fields and fields["assignee"] != current.get("assignee"):
        if current.get("assignee"):
            view.zrem(tracking, f"assignee:{current['assignee']}", member)
        if fields["assignee"]:
            view.zadd(tracking, f"assignee:{fields['assignee']}", member, score)
    if "until" in fields:
        if fields["until"]:
            view.zadd(tracking, LEASES, member, datetime.fromisoformat(fields["until"]).timestamp())
        else:
            view.zrem(tracking, LEASES, member)
    view.hset(tracking, case_key(case), **fields)


def label(view: State, tracking: Tracking, case: UUID, field: str, value: str, present: bool) -> None:
    """Add or remove a tag or flag: the case's `field` and the `{field}:{value}` set stay in step."""
    current = view.hash(case_key(case))
    values = set(filter(None, current.get(field, "").split(",")))
    member = str(case)
    if present:
        values.add(value)
        view.zadd(tracking, f"{field}:{value}", member, float(current["position"]))
    else:
        values.discard(value)
        view.zrem(tracking, f"{field}:{value}", member)
    view.hset(tracking, case_key(case), **{field: ",".join(sorted(values))})


def live_cluster(view: State, cluster: UUID | str) -> str:
    """The cluster a cluster now is, after merges."""
    return view.hash(cluster_key(cluster)).get("into") or str(cluster)


def move(view: State, tracking: Tracking, assignment: UUID, to: UUID | None) -> None:
    """A member leaves its cluster, for a new one of its own (`to`) or none."""
    case = view.hash(f"assignment:{assignment}")["case"]
    view.hincrby(tracking, cluster_key(live_cluster(view, view.hash(case_key(case))["cluster"])), "size", -1)
    view.hset(tracking, case_key(case), cluster=str(to or ""))
    if to is not None:
        view.hincrby(tracking, cluster_key(to), "size")


class QueueProjection(Fold):
    version = 2  # each case's cluster, its size and campaign
    name = "queue"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Response.Submitted, ReviewCase.Claimed, ReviewCase.Released, ReviewCase.Noted, ReviewCase.Tagged,
            ReviewCase.Untagged, ReviewCase.Flagged, ReviewCase.Unflagged, ReviewCase.QuoteMarked, ReviewCase.QuoteUnmarked,
            ReviewCase.Completed, ReviewCase.Reopened,
            Assignment.Assigned, Assignment.SplitOut, Assignment.Left, Cluster.CampaignConfirmed, Cluster.MergedInto,
        )
    )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Response.Submitted, tracking: Tracking) -> None:
        # A new case: nothing to read back, and each id turned into text once (most of a rebuild's events).
        view, response, consultation, position = self.view, str(e.originator_id), consultation_text(e.consultation_id), tracking.notification_id
        case = case_text(response)
        view.zadd(tracking, cases_key(consultation), case, position)
        view.zadd(tracking, state_key("new", consultation), case, position)
        view.hcreate(
            tracking, case_key(case), response_id=response, consultation_id=consultation,
            position=str(position), submitted_at=instant(e.timestamp), state="new",
        )
        view.hincrby(tracking, PROGRESS, "total")
        view.hincrby(tracking, progress_key(consultation), "total")

    @process_event.register
    def _(self, e: ReviewCase.Claimed, tracking: Tracking) -> None:
        update(self.view, tracking, e.originator_id, state="claimed", assignee=str(e.by), until=instant(e.until))

    @process_event.register
    def _(self, e: ReviewCase.Released, tracking: Tracking) -> None:
        update(self.view, tracking, e.originator_id, state="new", assignee="", until="")

    @process_event.register
    def _(self, e: ReviewCase.Noted, tracking: Tracking) -> None:
        self.view.hincrby(tracking, case_key(e.originator_id), "notes")

    @process_event.register
    def _(self, e: ReviewCase.Tagged, tracking: Tracking) -> None:
        label(self.view, tracking, e.originator_id, "tags", e.theme_id, present=True)

    @process_event.register
    def _(self, e: ReviewCase.Untagged, tracking: Tracking) -> None:
        label(self.view, tracking, e.originator_id, "tags", e.theme_id, present=False)

    @process_event.register
    def _(self, e: ReviewCase.Flagged, tracking: Tracking) -> None:
        label(self.view, tracking, e.originator_id, "flags", e.flag.value, present=True)

    @process_event.register
    def _(self, e: ReviewCase.Unflagged, tracking: Tracking) -> None:
        label(self.view, tracking, e.originator_id, "flags", e.flag.value, present=False)

    @process_event.register
    def _(self, e: ReviewCase.QuoteMarked, tracking: Tracking) -> None:
        self.view.hincrby(tracking, case_key(e.originator_id), "quotes")

    @process_event.register
    def _(self, e: ReviewCase.QuoteUnmarked, tracking: Tracking) -> None:
        self.view.hincrby(tracking, case_key(e.originator_id), "quotes", -1)

    @process_event.register
    def _(self, e: ReviewCase.Completed, tracking: Tracking) -> None:
        update(self.view, tracking, e.originator_id, state=REVIEWED[e.outcome], assignee="", until="", group_review=str(e.group or ""))
        self._reviewed(tracking, e.originator_id, 1)

    @process_event.register
    def _(self, e: ReviewCase.Reopened, tracking: Tracking) -> None:
        update(self.view, tracking, e.originator_id, state="new", group_review="")
        self._reviewed(tracking, e.originator_id, -1)

    @process_event.register
    def _(self, e: Assignment.Assigned, tracking: Tracking) -> None:
        if e.cluster_id is None:
            self.view.insert_tracking(tracking)
            return
        # A unique response founds its cluster: nothing to look up (most responses, in a rebuild).
        cluster = str(e.cluster_id) if e.kind is Likeness.UNIQUE else live_cluster(self.view, e.cluster_id)
        case = case_text(e.response_id)
        self.view.hcreate(tracking, f"assignment:{e.originator_id}", case=case)
        self.view.hset(tracking, case_key(case), cluster=cluster)
        self.view.hincrby(tracking, cluster_key(cluster), "size")

    @process_event.register
    def _(self, e: Assignment.SplitOut, tracking: Tracking) -> None:
        move(self.view, tracking, e.originator_id, e.cluster_id)

    @process_event.register
    def _(self, e: Assignment.Left, tracking: Tracking) -> None:
        move(self.view, tracking, e.originator_id, None)

    @process_event.register
    def _(self, e: Cluster.CampaignConfirmed, tracking: Tracking) -> None:
        self.view.hset(tracking, cluster_key(e.originator_id), campaign=e.name)

    @process_event.register
    def _(self, e: Cluster.MergedInto, tracking: Tracking) -> None:
        source, into = str(e.originator_id), str(e.into)
        moved = self.view.members(f"merged:{source}") | {source}
        for cluster in moved:
            self.view.hset(tracking, cluster_key(cluster), into=into)
        self.view.sadd(tracking, f"merged:{into}", *moved)
        self.view.hincrby(tracking, cluster_key(into), "size", int(self.view.hash(cluster_key(source)).get("size", 0)))

    def _reviewed(self, tracking: Tracking, case: UUID, change: int) -> None:
        consultation = self.view.hash(case_key(case))["consultation_id"]
        for key in (PROGRESS, progress_key(consultation)):
            self.view.hincrby(tracking, key, "reviewed", change)


# Reading the queue


class QueueItem(msgspec.Struct, frozen=True):
    response_id: UUID
    consultation_id: UUID
    position: int
    submitted_at: datetime
    state: str
    assignee: UUID | None
    claimed_until: datetime | None
    notes: int
    quotes: int
    tags: list[str]
    flags: list[str]
    cluster_id: UUID | None  # of near-duplicates (domain.campaigns); null if not clustered
    cluster_size: int  # members of that cluster, 0 if none
    campaign: str | None  # the cluster's name, once an editor confirmed it as a campaign
    group_review: UUID | None  # the group review it was completed in, while that completion stands


class Progress(msgspec.Struct, frozen=True):
    total: int
    reviewed: int
    percent_reviewed: float
    position: int


class QueuePage(msgspec.Struct, frozen=True):
    items: list[QueueItem]
    next_cursor: int | None  # pass as `cursor` for the next page
    position: int  # the view's position: poll with `?after=position+1` for what comes next


def item(h: dict[bytes, bytes], lapsed: bool, clusters: Mapping[str, dict[bytes, bytes]]) -> QueueItem:
    """A case's hash as an item; a claim whose lease has run out (`lapsed`) lists as new.

    `clusters` holds the hash (`cluster:{id}`) of the cluster the case names and, if that one was
    merged, of the cluster it joined.
    """
    f = {k.decode(): v.decode() for k, v in h.items()}
    claimed = f["state"] == "claimed" and not lapsed
    named = f.get("cluster")
    into = clusters.get(cluster_key(named), {}).get(b"into") if named else None
    cluster = into.decode() if into else named
    found = clusters.get(cluster_key(cluster), {}) if cluster else {}
    return QueueItem(
        response_id=UUID(f["response_id"]),
        consultation_id=UUID(f["consultation_id"]),
        position=int(f["position"]),
        submitted_at=datetime.fromisoformat(f["submitted_at"]),
        state="new" if f["state"] == "claimed" and lapsed else f["state"],
        assignee=UUID(f["assignee"]) if claimed and f.get("assignee") else None,
        claimed_until=datetime.fromisoformat(f["until"]) if claimed and f.get("until") else None,
        notes=int(f.get("notes", 0)),
        quotes=int(f.get("quotes", 0)),
        tags=[t for t in f.get("tags", "").split(",") if t],
        flags=[t for t in f.get("flags", "").split(",") if t],
        cluster_id=UUID(cluster) if cluster else None,
        cluster_size=int(found.get(b"size", 0)),
        campaign=found[b"campaign"].decode() if b"campaign" in found else None,
        group_review=UUID(f["group_review"]) if f.get("group_review") else None,
    )


def clusters_to_read(hashes: Iterable[dict[bytes, bytes]], found: Mapping[str, dict[bytes, bytes]]) -> list[str]:
    """The cluster hashes that the items of these case hashes need and `found` lacks: first the clusters
    the cases name, then (once those are found) the ones merged clusters joined."""
    named = {cluster_key(c.decode()) for h in hashes if (c := h.get(b"cluster"))}
    joined = {cluster_key(into.decode()) for k in named & found.keys() if (into := found[k].get(b"into"))}
    return sorted((named | joined) - found.keys())


def progress(counts: dict[bytes, bytes], position: int) -> Progress:
    """Progress from the view's `progress` hash."""
    c = {k.decode(): int(v) for k, v in counts.items()}
    total, reviewed = c.get("total", 0), c.get("reviewed", 0)
    return Progress(total, reviewed, round(100 * reviewed / total, 1) if total else 0.0, position)


class Query(NamedTuple):
    """Which cases of a consultation a page lists, filtered by state, assignee, tag and flag (none: every case)."""

    consultation: UUID
    state: str | None
    assignee: UUID | None
    tag: str | None
    flag: str | None

    @property
    def index(self) -> str:
        """The sorted set to page through: the most selective filter's."""
        if self.assignee:
            return f"assignee:{self.assignee}"
        if self.tag or self.flag:
            return f"tags:{self.tag}" if self.tag else f"flags:{self.flag}"
        return state_key(self.state, self.consultation) if self.state else cases_key(self.consultation)

    def window(self, scored: dict[bytes, bytes], limit: int, lapsed: list[bytes]) -> tuple[list[bytes], float]:
        """The members of a window of the index (up to `limit + 1` with their scores) to read, and its upper bound.

        Filters may leave fewer items than `limit` in the window, but the cursor moves over the
        whole window so no later match is ever passed over. Lapsed claims are back in the queue.
        """
        members = list(scored)[:limit]
        upper = float(scored[members[-1]]) if len(scored) > limit else float("inf")
        if self.index.endswith("state:new"):
            members += lapsed
        return list(dict.fromkeys(members)), upper

    def page(self, items: Iterable[QueueItem], cursor: int, upper: float, position: int) -> QueuePage:
        """The items of the window that match, oldest first."""
        selected = sorted(
            (
                i for i in items
                if cursor < i.position <= upper
                and i.consultation_id == self.consultation
                and (self.state is None or i.state == self.state)
                and (self.assignee is None or i.assignee == self.assignee)
                and (self.tag is None or self.tag in i.tags)
                and (self.flag is None or self.flag in i.flags)
            ),
            key=lambda i: i.position,
        )
        return QueuePage(selected, int(upper) if upper != float("inf") else None, position)
