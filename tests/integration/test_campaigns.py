"""The clusterer and editors' decisions on a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.campaigns.cluster import Assignment, ClusterConflict, Likeness, first_cluster_id
from domain.campaigns.service import Campaigns, ClusterNotFound
from domain.consultations.service import Submission
from domain.errors import InvalidInput
from domain.staff.member import NotPermitted
from runtime import System
from tests.conftest import SLUG
from workers.clusterer import Clusterer

TEMPLATE = (
    "I oppose the proposed change to section four of the code of conduct because it removes the "
    "independent appeals panel and leaves every decision with the same committee that made it in the first place."
)
OTHER = (
    "The section on the use of artificial intelligence is clear and I like that it names examples of acceptable "
    "and unacceptable use, although the reporting address should be easier to find on the website."
)


def send(system: System, *texts: str | None) -> list[UUID]:
    answers = [{"familiarity": "read", **({"works_well": t} if t is not None else {})} for t in texts]
    receipts = system.consultations.submit_batch([Submission(SLUG, a) for a in answers])
    return [r.id for r in receipts]  # type: ignore[union-attr]


def assigned(system: System) -> list[Assignment.Assigned]:
    return list(system.app.select_events(Assignment.Assigned))


def test_each_response_is_assigned_once_identical_near_unique_or_not_at_all(system: System) -> None:
    ids = send(
        system, TEMPLATE, TEMPLATE.upper(), "Dear committee, " + TEMPLATE + " Regards, Ana",
        OTHER, "I agree.", "   ", None,
    )
    clusterer = system.clusterer()
    clusterer.catch_up()
    kinds = {e.response_id: (e.kind, e.cluster_id) for e in assigned(system)}
    first = first_cluster_id(ids[0])
    assert kinds[ids[0]] == (Likeness.UNIQUE, first)
    assert kinds[ids[1]] == (Likeness.IDENTICAL, first)
    assert kinds[ids[2]][0] == Likeness.NEAR and kinds[ids[2]][1] == first
    assert kinds[ids[3]] == (Likeness.UNIQUE, first_cluster_id(ids[3]))
    assert kinds[ids[4]] == (Likeness.UNCLUSTERED, None)  # too short ever to cluster
    assert ids[5] not in kinds and ids[6] not in kinds  # blank text is no answer: nothing to cluster
    _, clusters = system.campaigns.clusters(SLUG)
    assert {c: len(m) for c, m in clusters.items()} == {first: 3}

    # Nothing is decided twice: a fresh clusterer rebuilds its index from the log and records nothing.
    head = system.app.head()
    again = system.clusterer()
    again.catch_up()
    assert system.app.head() == head and len(again.indexes[system.consultations.get(SLUG).id]) == 4
    (late,) = send(system, TEMPLATE + " Thank you.")
    again.catch_up()
    clusterer.catch_up()  # the first clusterer, stale, collides with what the second recorded and rebuilds
    clusterer.catch_up()
    late_events = [e for e in assigned(system) if e.response_id == late]
    assert len(late_events) == 1 and late_events[0].cluster_id == first
    assert len(assigned(system)) == 6


def test_a_second_recording_is_refused_by_the_store(system: System) -> None:
    (response,) = send(system, TEMPLATE)
    one, two = system.clusterer(), Clusterer(system.app, system.texts, 0.8, batch=1)
    assert two.step() == 1 and two.pending  # a full batch: it folded the submission, and has not decided yet
    one.step()  # another clusterer decides and records first
    two._record()  # the store refuses the second recording
    assert len(assigned(system)) == 1 and two.position == 0 and not two.pending  # the loser starts again from the log
    two.catch_up()
    assert two.book.cluster_of(response) == first_cluster_id(response)


def test_clusters_are_per_consultation(system: System, seed) -> None:  # type: ignore[no-untyped-def]
    import msgspec

    other = msgspec.structs.replace(seed, slug="another-consultation")
    system.consultations.load(other)
    system.consultations.open("another-consultation")
    (a,) = send(system, TEMPLATE)
    (b,) = [r.id for r in system.consultations.submit_batch([Submission("another-consultation", {"familiarity": "read", "works_well": TEMPLATE})])]  # type: ignore[union-attr]
    clusterer = system.clusterer()
    clusterer.catch_up()
    assert clusterer.book.cluster_of(a) != clusterer.book.cluster_of(b)


def shred(system: System, staff: dict[str, UUID], response: UUID) -> None:
    system.review.claim(response, staff["reviewer"], timedelta(minutes=5))
    system.review.redact(response, staff["reviewer"], "works_well", 0, 5, "a name")
    system.review.shred_originals(response, staff["admin"], "works_well")


def test_a_shredded_member_leaves_its_cluster_and_the_index(system: System, staff: dict[str, UUID]) -> None:
    ids = send(system, TEMPLATE, TEMPLATE, TEMPLATE + " Yours, Bo")
    clusterer = system.clusterer()
    clusterer.catch_up()
    shred(system, staff, ids[1])
    clusterer.catch_up()
    _, clusters = system.campaigns.clusters(SLUG)
    assert [len(m) for m in clusters.values()] == [2] and ids[1] not in {m.response_id for m in clusters[first_cluster_id(ids[0])]}
    (left,) = [e for e in system.app.select_events(Assignment.Left)]
    assert left.originator_version == 2
    rebuilt = system.clusterer()
    rebuilt.catch_up()
    assert ids[1] not in rebuilt.indexes[system.consultations.get(SLUG).id] and len(list(system.app.select_events(Assignment.Left))) == 1
    # Shredded before it was ever assigned: it is not clustered at all.
    (unseen,) = send(system, TEMPLATE)
    shred(system, staff, unseen)
    rebuilt.catch_up()
    assert [e.kind for e in assigned(system) if e.response_id == unseen] == [Likeness.UNCLUSTERED]


def test_editors_confirm_split_and_merge_each_as_an_event_with_who_and_why(system: System, staff: dict[str, UUID]) -> None:
    ids = send(system, TEMPLATE, TEMPLATE, TEMPLATE + " Best, Cy", OTHER, OTHER + " Thanks.")
    system.clusterer().catch_up()
    campaigns, editor = system.campaigns, staff["editor"]
    first, second = first_cluster_id(ids[0]), first_cluster_id(ids[3])

    with pytest.raises(NotPermitted):
        campaigns.confirm(SLUG, first, staff["reviewer"], "Save the panel", "template")
    with pytest.raises(ClusterNotFound):
        campaigns.confirm(SLUG, uuid4(), editor, "Save the panel", "template")
    with pytest.raises(InvalidInput):
        campaigns.confirm(SLUG, first, editor, "", "template")
    head = system.app.head()
    assert campaigns.confirm(SLUG, first, editor, "Save the panel", "A mailing list's template") == head + 2  # opened, confirmed

    new_cluster, _ = campaigns.split(SLUG, first, ids[2], editor, "Adds an argument of its own")
    with pytest.raises(ClusterConflict):
        campaigns.split(SLUG, first, ids[3], editor, "not a member")
    with pytest.raises(ClusterConflict):
        campaigns.split(SLUG, new_cluster, ids[2], editor, "alone")
    campaigns.merge(SLUG, second, first, editor, "Same campaign, second template")
    with pytest.raises(InvalidInput):
        campaigns.merge(SLUG, second, first, editor, "again")  # merged: no longer a cluster of its own (named in the body)
    book, clusters = campaigns.clusters(SLUG, min_size=1)
    assert {c: sorted(m.response_id for m in ms) == sorted(r) for c, ms in clusters.items() for r in [
        [ids[0], ids[1], ids[3], ids[4]] if c == first else [ids[2]]]} == {first: True, new_cluster: True}
    assert book.campaigns == {first: "Save the panel"}
    assert [e.by for e in system.app.select_events(Assignment.SplitOut)] == [editor]

    # A split member stays where the editor put it: a new copy of its text does not join it.
    (copy,) = send(system, TEMPLATE + " Best, Cy")
    system.clusterer().catch_up()
    assert campaigns.book().cluster_of(copy) == first


def test_the_book_folds_only_the_events_since_and_a_copy_handed_out_stays_as_it_was(system: System, staff: dict[str, UUID]) -> None:
    """Each reading brings the kept book up to the log's head by the new events alone; what an earlier
    reading handed out does not change under its reader (requests run in threads)."""
    ids = send(system, TEMPLATE, TEMPLATE, TEMPLATE + " Best, Cy")
    system.clusterer().catch_up()
    campaigns, first = system.campaigns, first_cluster_id(ids[0])
    before = campaigns.book()
    new_cluster, _ = campaigns.split(SLUG, first, ids[2], staff["editor"], "Adds an argument of its own")
    campaigns.confirm(SLUG, first, staff["editor"], "Save the panel", "template")
    after = campaigns.book()
    assert (before.cluster_of(ids[2]), before.campaigns) == (first, {})
    assert (after.cluster_of(ids[2]), after.campaigns) == (new_cluster, {first: "Save the panel"})
    assert after == Campaigns(system.app, system.consultations, system.staff, system.review).book()  # a fold from scratch


# Over HTTP

def clustered(system: System) -> list[UUID]:
    """Two clusters (three of the template, two of the other text) and a unique response; assigned."""
    ids = send(system, TEMPLATE, TEMPLATE, "Dear committee, " + TEMPLATE + " Regards, Ana Lopez", OTHER, OTHER + " Thanks.", "A text unlike " * 5)
    system.clusterer().catch_up()
    return ids


def accesses(system: System) -> list[tuple[UUID, str, str]]:
    from domain.access.access import Access

    return [(e.by, e.what, e.subject) for e in system.app.select_events(Access.Recorded)]


async def test_staff_read_clusters_with_diffs_and_the_reading_is_on_record(client, system: System, staff: dict[str, UUID], headers) -> None:  # type: ignore[no-untyped-def]
    ids = clustered(system)
    base = f"/review/consultations/{SLUG}/clusters"
    first, second = first_cluster_id(ids[0]), first_cluster_id(ids[3])
    for role in ("reviewer", "editor", "auditor", "admin"):
        r = await client.get(base, headers=headers[role])
        assert r.status_code == 200, r.text
        assert [(c["id"], c["size"], c["kind"], c["campaign"], c["representative"]) for c in r.json()] == [
            (str(first), 3, "near", None, str(ids[0])), (str(second), 2, "near", None, str(ids[3])),
        ]
        assert r.json()[0]["excerpt"] == TEMPLATE[:240]
    paged = (await client.get(base, params={"cursor": 1, "limit": 1}, headers=headers["auditor"])).json()
    assert [c["id"] for c in paged] == [str(second)]

    r = await client.get(f"{base}/{first}", headers=headers["auditor"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["size"], body["representative"], body["text"], body["next_cursor"]) == (str(first), 3, str(ids[0]), TEMPLATE, None)
    assert [(m["response_id"], m["kind"]) for m in body["members"]] == [(str(ids[0]), "unique"), (str(ids[1]), "identical"), (str(ids[2]), "near")]
    assert body["members"][1]["changes"] == [{"op": " ", "text": TEMPLATE}]
    assert body["members"][2]["changes"] == [
        {"op": "+", "text": "Dear committee,"}, {"op": " ", "text": TEMPLATE}, {"op": "+", "text": "Regards, Ana Lopez"},
    ]
    assert 0.8 <= body["members"][2]["similarity"] < 1
    page = (await client.get(f"{base}/{first}", params={"limit": 2}, headers=headers["auditor"])).json()
    assert len(page["members"]) == 2 and page["next_cursor"] == 2
    rest = (await client.get(f"{base}/{first}", params={"cursor": 2}, headers=headers["auditor"])).json()
    assert [m["response_id"] for m in rest["members"]] == [str(ids[2])] and rest["next_cursor"] is None
    seen = accesses(system)
    # By cluster, and by each response whose text was shown (a tester's `response=` filter missed these).
    assert (staff["auditor"], "cluster free text", ",".join(map(str, [first, *ids[:3]]))) in seen
    assert (staff["auditor"], "cluster free text", f"{first},{ids[0]},{ids[2]}") in seen  # the second page: the representative and its member
    listed = next(s for by, what, s in seen if by == staff["reviewer"])
    assert listed.split(",")[:3] == [str(first), str(ids[0]), str(second)]

    # A redaction shows in the cluster's texts: nobody reads the original through a cluster.
    system.review.claim(ids[2], staff["reviewer"], timedelta(minutes=5))
    system.review.redact(ids[2], staff["reviewer"], "works_well", len("Dear committee, " + TEMPLATE + " Regards, "), len("Dear committee, " + TEMPLATE + " Regards, Ana Lopez"), "a name")
    body = (await client.get(f"{base}/{first}", headers=headers["reviewer"])).json()
    assert "Ana" not in str(body) and body["members"][2]["changes"][-1] == {"op": "+", "text": "Regards, [redacted]"}

    # A response's history lists its cluster assignment too, in the log's order (a tester found it missing).
    history = (await client.get(f"/review/responses/{ids[2]}/history", headers=headers["reviewer"])).json()
    assert [h["type"] for h in history] == [
        "response.submitted", "assignment.assigned", "review.opened", "review.claimed", "review.redacted",
    ]
    assert [h["position"] for h in history] == sorted(h["position"] for h in history)


async def test_cluster_routes_refuse_unknown_foreign_and_unauthenticated(client, system: System, seed, headers) -> None:  # type: ignore[no-untyped-def]
    import msgspec

    ids = clustered(system)
    first = first_cluster_id(ids[0])
    system.consultations.load(msgspec.structs.replace(seed, slug="another-consultation"))
    system.consultations.open("another-consultation")
    foreign = [r.id for r in system.consultations.submit_batch([Submission("another-consultation", {"familiarity": "read", "works_well": TEMPLATE})] * 2)]  # type: ignore[union-attr]
    system.clusterer().catch_up()
    theirs = first_cluster_id(foreign[0])
    base = f"/review/consultations/{SLUG}/clusters"
    head = system.app.head()
    for path in (f"{base}/{uuid4()}", f"{base}/{theirs}"):  # unknown, another consultation's
        r = await client.get(path, headers=headers["reviewer"])
        assert (r.status_code, r.json()["type"]) == (404, "/problems/cluster-not-found"), r.text
        r = await client.post(path + "/confirm", json={"name": "X", "reason": "y"}, headers=headers["editor"])
        assert (r.status_code, r.json()["type"]) == (404, "/problems/cluster-not-found"), r.text
    r = await client.post(f"{base}/{first}/merge", json={"other": str(theirs), "reason": "same"}, headers=headers["editor"])
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "other"), r.text  # named in the body, not the path
    r = await client.get("/review/consultations/nope/clusters", headers=headers["reviewer"])
    assert (r.status_code, r.json()["type"]) == (404, "/problems/consultation-not-found")
    r = await client.get(f"{base}/not-a-uuid", headers=headers["reviewer"])
    assert r.status_code in (400, 404) and r.json()["type"] in ("/problems/not-found", "/problems/malformed-request")
    assert (await client.get(base)).status_code == 401
    r = await client.get(base, params={"limit": 0}, headers=headers["reviewer"])
    assert (r.status_code, r.json()["type"]) == (400, "/problems/malformed-request")
    assert system.app.head() == head  # nothing recorded, not even an access


async def test_editors_confirm_split_and_merge_over_http_and_others_may_not(client, system: System, staff: dict[str, UUID], headers) -> None:  # type: ignore[no-untyped-def]
    ids = clustered(system)
    first, second = first_cluster_id(ids[0]), first_cluster_id(ids[3])
    base = f"/review/consultations/{SLUG}/clusters"
    bodies = {
        "confirm": {"name": "Save the panel", "reason": "A mailing list's template"},
        "split": {"response_id": str(ids[2]), "reason": "Adds an argument of its own"},
        "merge": {"other": str(second), "reason": "Same campaign, second template"},
    }
    head = system.app.head()
    for role in ("reviewer", "auditor", "admin"):
        for action, body in bodies.items():
            r = await client.post(f"{base}/{first}/{action}", json=body, headers=headers[role])
            assert (r.status_code, r.json()["type"]) == (403, "/problems/not-permitted"), (role, action, r.text)
    bad = [
        ("confirm", {"name": "", "reason": "why"}, 422, "invalid-input"),
        ("confirm", {"name": "Save", "reason": "   "}, 422, "invalid-input"),
        ("confirm", {"name": "Save"}, 400, "malformed-request"),
        ("confirm", {"name": "Save", "reason": "why", "extra": 1}, 400, "malformed-request"),
        ("confirm", {"name": "Save", "reason": "x" * 2001}, 400, "malformed-request"),
        ("split", {"response_id": "nope", "reason": "why"}, 400, "malformed-request"),
        ("split", {"response_id": str(ids[3]), "reason": "why"}, 409, "cluster-conflict"),  # not a member
        ("split", {"response_id": str(ids[2]), "reason": ""}, 422, "invalid-input"),
        ("merge", {"other": str(first), "reason": "why"}, 409, "cluster-conflict"),  # into itself
        ("merge", {"other": str(uuid4()), "reason": "why"}, 422, "invalid-input"),  # named in the body, not the path
        ("merge", {"other": str(second), "reason": ""}, 422, "invalid-input"),
    ]
    for action, body, status, name in bad:
        r = await client.post(f"{base}/{first}/{action}", json=body, headers=headers["editor"])
        assert (r.status_code, r.json()["type"]) == (status, f"/problems/{name}"), (action, body, r.text)
    assert system.app.head() == head  # nothing half-written

    r = await client.post(f"{base}/{first}/confirm", json=bodies["confirm"], headers=headers["editor"])
    assert r.status_code == 201 and r.json()["position"] == system.app.head()
    r = await client.post(f"{base}/{first}/split", json=bodies["split"], headers=headers["editor"])
    assert r.status_code == 201, r.text
    alone = UUID(r.json()["cluster_id"])
    r = await client.post(f"{base}/{alone}/split", json={"response_id": str(ids[2]), "reason": "again"}, headers=headers["editor"])
    assert (r.status_code, r.json()["type"]) == (409, "/problems/cluster-conflict")  # its only member
    r = await client.post(f"{base}/{first}/merge", json=bodies["merge"], headers=headers["editor"])
    assert r.status_code == 201, r.text
    r = await client.post(f"{base}/{first}/merge", json=bodies["merge"], headers=headers["editor"])
    assert (r.status_code, r.json()["type"]) == (422, "/problems/invalid-input")  # merged already (named in the body)

    listed = (await client.get(base, headers=headers["reviewer"])).json()
    assert [(c["id"], c["size"], c["kind"], c["campaign"]) for c in listed] == [(str(first), 4, "near", "Save the panel")]
    merged = (await client.get(f"{base}/{second}", headers=headers["reviewer"])).json()  # answers as the cluster it joined
    assert merged["id"] == str(first) and {m["response_id"] for m in merged["members"]} == {str(i) for i in (ids[0], ids[1], ids[3], ids[4])}
    assert [(e.by, e.reason) for e in system.app.select_events(Assignment.SplitOut)] == [(staff["editor"], "Adds an argument of its own")]
