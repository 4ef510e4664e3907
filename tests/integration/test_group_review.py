"""Group review of a confirmed campaign, and clusters in the queue, on a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from domain.campaigns.cluster import ClusterConflict, first_cluster_id
from domain.campaigns.group import GroupReview
from domain.campaigns.service import ClusterNotFound, NotACampaign, Skipped
from domain.errors import InvalidInput
from domain.review.case import Outcome, ReviewCase, case_id
from domain.staff.member import NotPermitted
from projections import queue
from projections.live import QueueProjection
from projections.state import replay
from reports.content import build
from reports.render import TABLES, page
from domain.consultations.consultation import consultation_id
from runtime import System
from tests.conftest import SLUG
from tests.integration.test_campaigns import OTHER, TEMPLATE, send

QUEUE = f"/review/consultations/{SLUG}/queue"
CLUSTERS = f"/review/consultations/{SLUG}/clusters"


def campaign(system: System, staff: dict[str, UUID], copies: int = 3) -> tuple[UUID, list[UUID]]:
    """A confirmed campaign of `copies` members (the template, lightly personalised), and its members."""
    ids = send(system, TEMPLATE, *(f"{TEMPLATE} Regards, {name}" for name in ["Ana", "Bo", "Cy", "Di"][: copies - 1]))
    system.clusterer().catch_up()
    cluster = first_cluster_id(ids[0])
    system.campaigns.confirm(SLUG, cluster, staff["editor"], "Save the panel", "A mailing list's template")
    return cluster, ids


def events_of(system: System, response: UUID) -> list[Any]:
    return list(system.app.events.get(case_id(response)))


def test_a_group_review_records_one_group_event_and_each_members_own_events_naming_it(system: System, staff: dict[str, UUID]) -> None:
    cluster, ids = campaign(system, staff)
    reviewer = staff["reviewer"]
    done = system.campaigns.review_group(SLUG, cluster, reviewer, ["ai_use", "consent", "ai_use"], Outcome.REVIEWED, "", "One template, read once.")
    assert done.position == system.app.head() and done.members == 3 and done.skipped == []

    (group,) = system.app.select_events(GroupReview.Applied)
    assert (group.originator_id, group.cluster_id, group.by, group.themes, group.outcome) == (done.id, cluster, reviewer, ("ai_use", "consent"), Outcome.REVIEWED)
    assert group.members == tuple(ids) and group.note == "One template, read once."
    for response in ids:
        events = events_of(system, response)
        assert [type(e).__name__ for e in events] == ["Opened", "Tagged", "Tagged", "Completed"]  # no claim needed
        assert {e.group for e in events[1:]} == {done.id} and {e.by for e in events[1:]} == {reviewer}
        case = system.app.find(case_id(response), ReviewCase)
        assert case is not None and case.outcome is Outcome.REVIEWED and case.tags == {"ai_use", "consent"} and case.group == done.id

    # History and the whole case show the group it was read in.
    history = system.history.of_aggregates([ids[1], case_id(ids[1])])
    assert [(h.type, h.payload.get("group")) for h in history[-3:]] == [
        ("review.tagged", done.id), ("review.tagged", done.id), ("review.completed", done.id),
    ]
    file = system.review.case_file(ids[1], originals=False)
    assert (file.state, file.tags, file.group_review) == ("completed", ["ai_use", "consent"], done.id)
    # So does a report's provenance: which steps behind a theme's count were one group review's (a tester could not tell).
    (trail,) = [t for t in system.reports.provenance(SLUG, staff["editor"]).themes if t.theme_id == "ai_use"]
    assert sorted((s.what, s.response_id, s.group) for s in trail.steps) == sorted(
        (what, response, done.id) for response in ids for what in ("completed", "tagged")
    )

    # Reopened by an editor, a member is a case of its own again.
    system.review.reopen(ids[1], staff["editor"], "Reads differently")
    assert system.review.case_file(ids[1], originals=False).group_review is None


def test_the_report_counts_the_responses_completed_in_group_reviews_apart_and_does_not_call_them_read(
    system: System, staff: dict[str, UUID],
) -> None:
    cluster, ids = campaign(system, staff)
    other = send(system, OTHER)[0]
    system.review.claim(other, staff["reviewer"], timedelta(minutes=30))
    system.review.complete(other, staff["reviewer"], Outcome.REVIEWED, "")
    system.campaigns.review_group(SLUG, cluster, staff["reviewer"], [], Outcome.REVIEWED, "", "One template.")
    built = system.reports.preview(SLUG, staff["editor"])
    counts = built.content.responses
    assert (counts.received, counts.completed, counts.in_group_reviews) == (4, 4, 3)
    shown = page(built).decode()
    assert "reviewers completed 4 of them (100.0%): 1 one by one, and 3 in group reviews of campaigns" in shown
    assert " and read " not in shown and "Read (" not in shown
    (responses,) = [t for t in TABLES if t.name == "responses.csv"]
    assert ("completed_in_group_reviews", 3) in list(responses.rows(built.content))
    # A version built by earlier rules has no such count, byte for byte as it was; its page says "completed" all the same.
    earlier = build(system.app, system.texts, consultation_id(SLUG), system.app.head(), 1, False, builder="agora-report/6")
    assert earlier.format == 3 and earlier.responses.in_group_reviews is None and b"in_group_reviews" not in msgspec.json.encode(earlier)


def test_members_claimed_by_someone_else_or_completed_are_skipped_and_reported(system: System, staff: dict[str, UUID]) -> None:
    cluster, ids = campaign(system, staff, copies=4)
    reviewer, other = staff["reviewer"], staff["reviewer2"]
    system.review.claim(ids[0], other, timedelta(minutes=5))  # someone else is reading it
    system.review.claim(ids[1], reviewer, timedelta(minutes=5))  # mine: the group review completes it
    system.review.claim(ids[2], other, timedelta(minutes=5))
    system.review.complete(ids[2], other, Outcome.EXCLUDED, "spam")  # read already
    done = system.campaigns.review_group(SLUG, cluster, reviewer, [], Outcome.REVIEWED, "", None)
    assert done.members == 2
    assert done.skipped == [Skipped(ids[0], "claimed", other), Skipped(ids[2], "completed")]
    (group,) = system.app.select_events(GroupReview.Applied)
    assert group.members == (ids[1], ids[3])
    assert [type(e).__name__ for e in events_of(system, ids[0])] == ["Opened", "Claimed"]  # untouched
    assert [(type(e).__name__, getattr(e, "group", None)) for e in events_of(system, ids[1])][-1] == ("Completed", done.id)

    # Nothing left to cover: refused, nothing recorded.
    head = system.app.head()
    with pytest.raises(ClusterConflict):
        system.campaigns.review_group(SLUG, cluster, reviewer, [], Outcome.REVIEWED, "", None)
    assert system.app.head() == head


def test_a_race_on_one_member_records_nothing_of_the_first_attempt(system: System, staff: dict[str, UUID], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another reviewer claims a member between the group review's reading and its saving: the whole
    transaction is refused (no member's events land), and the retry skips that member."""
    cluster, ids = campaign(system, staff)
    find, raced = system.app.find, []

    def find_then_race(aggregate_id: UUID, cls: type) -> Any:
        found = find(aggregate_id, cls)
        if aggregate_id == case_id(ids[1]) and not raced:
            raced.append(True)
            system.review.claim(ids[1], staff["reviewer2"], timedelta(minutes=5))
        return found

    monkeypatch.setattr(system.app, "find", find_then_race)
    done = system.campaigns.review_group(SLUG, cluster, staff["reviewer"], ["consent"], Outcome.REVIEWED, "", None)
    assert raced and done.members == 2 and done.skipped == [Skipped(ids[1], "claimed", staff["reviewer2"])]
    assert len(list(system.app.select_events(GroupReview.Applied))) == 1
    for response in (ids[0], ids[2]):  # once each: the first attempt left nothing behind
        assert [type(e).__name__ for e in events_of(system, response)] == ["Opened", "Tagged", "Completed"]


def test_only_a_confirmed_live_campaign_by_a_reviewer_with_valid_input(system: System, staff: dict[str, UUID]) -> None:
    ids = send(system, TEMPLATE, TEMPLATE, OTHER, OTHER + " Thanks.")
    system.clusterer().catch_up()
    first, second = first_cluster_id(ids[0]), first_cluster_id(ids[2])
    reviewer = staff["reviewer"]
    head = system.app.head()
    with pytest.raises(NotACampaign):
        system.campaigns.review_group(SLUG, first, reviewer, [], Outcome.REVIEWED, "", None)
    system.campaigns.confirm(SLUG, first, staff["editor"], "Save the panel", "template")
    head = system.app.head()
    with pytest.raises(NotPermitted):
        system.campaigns.review_group(SLUG, first, staff["editor"], [], Outcome.REVIEWED, "", None)
    with pytest.raises(ClusterNotFound):
        system.campaigns.review_group(SLUG, uuid4(), reviewer, [], Outcome.REVIEWED, "", None)
    for themes, outcome, reason, note, field in [
        (["no_such_theme"], Outcome.REVIEWED, "", None, "tags"),
        ([], Outcome.EXCLUDED, "  ", None, "reason"),
        ([], Outcome.REVIEWED, "", " \u200b ", "note"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            system.campaigns.review_group(SLUG, first, reviewer, themes, outcome, reason, note)
        assert [e.field for e in refused.value.errors] == [field]
    assert system.app.head() == head

    # Merged into another: act on the one it joined, which covers its members too.
    system.campaigns.merge(SLUG, first, second, staff["editor"], "Same campaign")
    with pytest.raises(ClusterNotFound):
        system.campaigns.review_group(SLUG, first, reviewer, [], Outcome.REVIEWED, "", None)
    with pytest.raises(NotACampaign):  # the cluster it joined is not confirmed
        system.campaigns.review_group(SLUG, second, reviewer, [], Outcome.REVIEWED, "", None)


def test_members_who_join_later_are_not_covered_until_a_second_group_review(system: System, staff: dict[str, UUID]) -> None:
    cluster, ids = campaign(system, staff, copies=2)
    first = system.campaigns.review_group(SLUG, cluster, staff["reviewer"], ["ai_use"], Outcome.REVIEWED, "", None)
    (late,) = send(system, TEMPLATE + " Regards, Ed")
    system.clusterer().catch_up()
    book, members = system.campaigns.cluster(SLUG, cluster)
    assert [book.covered.get(m.response_id) for m in members] == [first.id, first.id, None]
    assert events_of(system, late) == []  # not silently reviewed
    second = system.campaigns.review_group(SLUG, cluster, staff["reviewer"], ["ai_use"], Outcome.REVIEWED, "", None)
    assert second.members == 1 and [s.reason for s in second.skipped] == ["completed", "completed"]
    book, _ = system.campaigns.cluster(SLUG, cluster)
    assert book.covered[late] == second.id and [r.originator_id for r in book.group_reviews(cluster)] == [first.id, second.id]
    # A member reopened is to review again: no longer covered (a tester's cluster still said 12 of 12 covered).
    system.review.reopen(late, staff["editor"], "read it on its own")
    book, members = system.campaigns.cluster(SLUG, cluster)
    assert [book.covered.get(m.response_id) for m in members] == [first.id, first.id, None]
    third = system.campaigns.review_group(SLUG, cluster, staff["reviewer"], ["ai_use"], Outcome.REVIEWED, "", None)
    assert third.members == 1 and system.campaigns.cluster(SLUG, cluster)[0].covered[late] == third.id


# Over HTTP, with the queue view


async def queue_items(client: AsyncTestClient, headers: dict[str, str], after: int) -> dict[UUID, dict[str, Any]]:
    r = await client.get(QUEUE, params={"after": after}, headers=headers)
    assert r.status_code == 200, r.text
    return {UUID(i["response_id"]): i for i in r.json()["items"]}


def clusters_in(items: dict[UUID, dict[str, Any]]) -> dict[UUID, tuple[str | None, int, str | None]]:
    return {r: (i["cluster_id"], i["cluster_size"], i["campaign"]) for r, i in items.items()}


async def test_the_queue_shows_each_cases_cluster_and_follows_splits_merges_departures_and_group_reviews(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    ids = send(system, TEMPLATE, TEMPLATE, TEMPLATE + " Regards, Ana", OTHER, OTHER + " Thanks.", "Short one.", None)
    system.clusterer().catch_up()
    first, second = first_cluster_id(ids[0]), first_cluster_id(ids[3])
    items = await queue_items(client, headers["reviewer"], system.app.head())
    f, s = str(first), str(second)
    assert clusters_in(items) == {
        ids[0]: (f, 3, None), ids[1]: (f, 3, None), ids[2]: (f, 3, None), ids[3]: (s, 2, None), ids[4]: (s, 2, None),
        ids[5]: (None, 0, None), ids[6]: (None, 0, None),  # too short to cluster; no free text
    }

    editor = staff["editor"]
    system.campaigns.confirm(SLUG, first, editor, "Save the panel", "template")
    alone, _ = system.campaigns.split(SLUG, first, ids[2], editor, "Adds an argument")
    items = await queue_items(client, headers["reviewer"], system.app.head())
    assert clusters_in(items)[ids[0]] == (f, 2, "Save the panel") and clusters_in(items)[ids[2]] == (str(alone), 1, None)

    # Merged into a cluster that is then merged itself: every member reads as the live cluster.
    system.campaigns.merge(SLUG, second, alone, editor, "Same argument")
    system.campaigns.merge(SLUG, alone, first, editor, "Same campaign after all")
    (late,) = send(system, OTHER + " Many thanks.")
    system.clusterer().catch_up()
    items = await queue_items(client, headers["reviewer"], system.app.head())
    assert {r: c for r, c in clusters_in(items).items() if c[0]} == {r: (f, 6, "Save the panel") for r in (*ids[:5], late)}

    # A shredded member leaves its cluster; a group review shows on each member it covered.
    system.review.claim(ids[4], staff["reviewer"], timedelta(minutes=5))
    system.review.redact(ids[4], staff["reviewer"], "works_well", 0, 3, "a name")
    system.review.shred_originals(ids[4], staff["admin"], "works_well")
    system.clusterer().catch_up()
    system.review.release(ids[4], staff["reviewer"])
    done = system.campaigns.review_group(SLUG, first, staff["reviewer2"], ["consent"], Outcome.REVIEWED, "", None)
    items = await queue_items(client, headers["reviewer"], done.position)
    assert items[ids[4]]["cluster_id"] is None and items[ids[4]]["group_review"] is None
    covered = {r for r, i in items.items() if i["group_review"] == str(done.id)}
    assert covered == {r for r, i in items.items() if i["cluster_id"] == f} and len(covered) == done.members
    assert all(items[r]["state"] == "completed" and items[r]["tags"] == ["consent"] for r in covered)

    # The view is a fold of the log: replayed in memory, it reads the same.
    memory = replay(system.app, QueueProjection)
    replayed = {i.response_id: i for i in (queue.item(memory.hgetall(queue.case_key(case_id(r))), False, memory.hashes) for r in items)}
    assert {r: (str(i.cluster_id) if i.cluster_id else None, i.cluster_size, i.campaign) for r, i in replayed.items()} == clusters_in(items)
    assert {r for r, i in replayed.items() if i.group_review == done.id} == covered


async def test_the_group_review_route(client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]]) -> None:
    cluster, ids = campaign(system, staff)
    (plain,) = [first_cluster_id(r) for r in send(system, OTHER, OTHER + " Thanks.")[:1]]
    system.clusterer().catch_up()
    path = f"{CLUSTERS}/{cluster}/review"
    head = system.app.head()
    for role in ("editor", "auditor", "admin"):
        r = await client.post(path, json={"outcome": "reviewed"}, headers=headers[role])
        assert (r.status_code, r.json()["type"]) == (403, "/problems/not-permitted"), role
    assert (await client.post(path, json={"outcome": "reviewed"})).status_code == 401
    bad = [
        (path, {"outcome": "reviewed", "tags": ["nope"]}, 422, "invalid-input"),
        (path, {"outcome": "excluded"}, 422, "invalid-input"),
        (path, {"outcome": "reviewed", "note": "  "}, 422, "invalid-input"),
        (path, {"outcome": "perfect"}, 400, "malformed-request"),
        (path, {"outcome": "reviewed", "extra": 1}, 400, "malformed-request"),
        (path, {"tags": ["consent"]}, 400, "malformed-request"),
        (path, {"outcome": "reviewed", "note": "x" * 5001}, 400, "malformed-request"),
        (f"{CLUSTERS}/{plain}/review", {"outcome": "reviewed"}, 409, "not-a-campaign"),
        (f"{CLUSTERS}/{uuid4()}/review", {"outcome": "reviewed"}, 404, "cluster-not-found"),
        (f"/review/consultations/nope/clusters/{cluster}/review", {"outcome": "reviewed"}, 404, "consultation-not-found"),
    ]
    for url, body, status, name in bad:
        r = await client.post(url, json=body, headers=headers["reviewer"])
        assert (r.status_code, r.json()["type"]) == (status, f"/problems/{name}"), (body, r.text)
    assert system.app.head() == head

    system.review.claim(ids[2], staff["reviewer2"], timedelta(minutes=5))
    r = await client.post(path, json={"outcome": "reviewed", "tags": ["consent"], "note": "Template text."}, headers=headers["reviewer"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["position"], body["members"]) == (system.app.head(), 2)
    assert body["skipped"] == [{"response_id": str(ids[2]), "reason": "claimed", "holder": str(staff["reviewer2"])}]
    group = body["group_review"]
    r = await client.post(path, json={"outcome": "reviewed"}, headers=headers["reviewer"])
    assert (r.status_code, r.json()["type"]) == (409, "/problems/cluster-conflict")  # the rest is claimed or completed

    view = (await client.get(f"{CLUSTERS}/{cluster}", headers=headers["auditor"])).json()
    assert view["covered"] == 2 and [m["group_review"] for m in view["members"]] == [group, group, None]
    (applied,) = view["group_reviews"]
    assert (applied["id"], applied["by"], applied["tags"], applied["outcome"], applied["note"], applied["members"]) == (
        group, str(staff["reviewer"]), ["consent"], "reviewed", "Template text.", 2,
    )
    listed = (await client.get(CLUSTERS, headers=headers["reviewer"])).json()
    assert [(c["id"], c["covered"]) for c in listed if c["id"] == str(cluster)] == [(str(cluster), 2)]
    case = (await client.get(f"/review/responses/{ids[0]}/case", headers=headers["auditor"])).json()
    assert (case["state"], case["tags"], case["group_review"]) == ("completed", ["consent"], group)
    history = (await client.get(f"/review/responses/{ids[0]}/history", headers=headers["auditor"])).json()
    assert [(h["type"], h["actor"], h["payload"]["group"]) for h in history[-2:]] == [
        ("review.tagged", str(staff["reviewer"]), group), ("review.completed", str(staff["reviewer"]), group),
    ]
    items = await queue_items(client, headers["reviewer"], body["position"])
    assert [items[r]["group_review"] for r in ids] == [group, group, None]
    reopened = await client.post(f"/review/responses/{ids[0]}/reopen", json={"reason": "Reads differently"}, headers=headers["editor"])
    items = await queue_items(client, headers["reviewer"], reopened.json()["position"])
    assert (items[ids[0]]["state"], items[ids[0]]["group_review"]) == ("new", None)
