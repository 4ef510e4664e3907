"""The statistics' fold with campaigns: totals with and without confirmed campaigns, in memory (no Redis)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import msgspec

from domain.campaigns.cluster import Assignment, Cluster, Likeness, first_cluster_id
from domain.consultations.consultation import Consultation
from domain.consultations.response import Response
from domain.sealed import Sealed
from projections.state import Memory
from projections.stats import Stats, StatsProjection, campaigns_in, stats_key, tally
from tests.unit.test_folds import APP, DEFINITION, Log, consultation

EDITOR = uuid4()


def respond(log: Log, c: Consultation, **answers: Any) -> Response:
    """A response with free text (only those are clustered; the text is never read here)."""
    r = Response(c.id, 1, answers, {"why": Sealed("a key", b"ciphertext")}, "receipt")
    log.record(r)
    return r


def assign(log: Log, c: Consultation, response: Response, cluster: UUID | None) -> Assignment:
    kind = Likeness.UNCLUSTERED if cluster is None else Likeness.UNIQUE if cluster == first_cluster_id(response.id) else Likeness.NEAR
    a = Assignment(response_id=response.id, consultation_id=c.id, cluster_id=cluster, kind=kind, similarity=0.0)
    log.record(a)
    return a


def confirm(log: Log, c: Consultation, cluster: UUID, name: str) -> Cluster:
    k = Cluster(consultation_id=c.id, id=cluster)
    k.confirm(EDITOR, name, "a template")
    log.record(k)
    return k


def stats(log: Log, c: Consultation) -> Stats:
    memory: Memory = log.fold(StatsProjection)
    return tally(DEFINITION, memory.hgetall(stats_key(c.id)), memory.position(APP), campaigns_in(memory, c.id))


def counts(s: Stats) -> tuple[int, int, list[tuple[str, int, int]]]:
    """Responses, those in no campaign, and each campaign's name, members and reds."""
    return s.responses, s.without_campaigns.responses, [(k.name, k.responses, k.answers["colour"]["red"]) for k in s.campaigns]


def test_a_campaign_confirmed_after_its_members_were_counted() -> None:
    log = Log()
    c = consultation(log)
    first, second, other, short = (respond(log, c, colour=colour, agree=True) for colour in ("red", "red", "blue", "green"))
    cluster = first_cluster_id(first.id)
    assign(log, c, first, cluster)
    assign(log, c, second, cluster)
    assign(log, c, other, first_cluster_id(other.id))
    assign(log, c, short, None)
    before = stats(log, c)
    assert counts(before) == (4, 4, []) and before.without_campaigns.answers == {"colour": before.answers["colour"], "agree": before.answers["agree"]}
    campaign = confirm(log, c, cluster, "Save the panel")
    after = stats(log, c)
    assert counts(after) == (4, 2, [("Save the panel", 2, 2)])
    assert after.answers == before.answers  # today's totals, unchanged
    assert after.without_campaigns.answers == {"colour": {"red": 0, "blue": 1, "green": 1}, "agree": {"true": 2, "false": 0}}
    assert after.campaigns[0].answers == {"colour": {"red": 2, "blue": 0, "green": 0}, "agree": {"true": 2, "false": 0}}
    # A member that arrives later counts with it; a second confirmation renames it, in its place.
    assign(log, c, respond(log, c, colour="blue"), cluster)
    confirm(log, c, first_cluster_id(other.id), "Another")
    campaign.confirm(EDITOR, "Keep the panel", "renamed")
    log.record(campaign)
    assert counts(stats(log, c)) == (5, 1, [("Keep the panel", 3, 2), ("Another", 1, 0)])


def test_split_out_and_left_move_a_members_counts() -> None:
    log = Log()
    c = consultation(log)
    a, b, d = (respond(log, c, colour=colour) for colour in ("red", "blue", "red"))
    cluster = first_cluster_id(a.id)
    assignments = [assign(log, c, r, cluster) for r in (a, b, d)]
    confirm(log, c, cluster, "Template")
    assert counts(stats(log, c)) == (3, 0, [("Template", 3, 2)])
    assignments[1].split_out(EDITOR, "not the template")
    log.record(assignments[1])
    assert counts(stats(log, c)) == (3, 1, [("Template", 2, 2)])
    assignments[2].leave("its original text was shredded")  # shredded: it leaves its cluster and the campaign's counts
    log.record(assignments[2])
    s = stats(log, c)
    assert counts(s) == (3, 2, [("Template", 1, 1)]) and s.without_campaigns.answers["colour"] == {"red": 1, "blue": 1, "green": 0}
    # The split-out member's own cluster, confirmed, counts it alone.
    confirm(log, c, assignments[1].cluster_id, "Another")
    assert counts(stats(log, c)) == (3, 1, [("Template", 1, 1), ("Another", 1, 0)])


def test_a_merge_moves_members_and_the_target_decides_whether_they_are_a_campaign() -> None:
    log = Log()
    c = consultation(log)
    a, b, d = (respond(log, c, colour=colour) for colour in ("red", "red", "blue"))
    one, two = first_cluster_id(a.id), first_cluster_id(d.id)
    assign(log, c, a, one)
    assign(log, c, b, one)
    assign(log, c, d, two)
    source = confirm(log, c, one, "Campaign one")
    target = Cluster(consultation_id=c.id, id=two)
    source.merge_into(EDITOR, target, "the same template")
    log.record(source, target)
    # Merged into an unconfirmed cluster: no campaign until an editor confirms that one.
    assert counts(stats(log, c)) == (3, 3, [])
    target.confirm(EDITOR, "Campaign two", "the template")
    log.record(target)
    assert counts(stats(log, c)) == (3, 0, [("Campaign two", 3, 2)])
    # A member assigned to the merged cluster later, or leaving it, counts in the cluster it now is.
    late = respond(log, c, colour="red")
    later = assign(log, c, late, one)
    assert counts(stats(log, c)) == (4, 0, [("Campaign two", 4, 3)])
    later.leave("shredded")
    log.record(later)
    assert counts(stats(log, c)) == (4, 1, [("Campaign two", 3, 2)])


def test_the_stats_never_name_a_response_or_hold_its_text() -> None:
    log = Log()
    c = consultation(log)
    r = respond(log, c, colour="red")
    assign(log, c, r, first_cluster_id(r.id))
    confirm(log, c, first_cluster_id(r.id), "Named by an editor")
    body = msgspec.json.encode(stats(log, c))
    assert b"Alice" not in body and str(r.id).encode() not in body and str(first_cluster_id(r.id)).encode() not in body
    assert b"Named by an editor" in body
