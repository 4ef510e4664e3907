"""The clusterer and editors' decisions on a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.campaigns.cluster import Assignment, ClusterConflict, Kind, first_cluster_id
from domain.campaigns.service import ClusterNotFound
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
    assert kinds[ids[0]] == (Kind.UNIQUE, first)
    assert kinds[ids[1]] == (Kind.IDENTICAL, first)
    assert kinds[ids[2]][0] == Kind.NEAR and kinds[ids[2]][1] == first
    assert kinds[ids[3]] == (Kind.UNIQUE, first_cluster_id(ids[3]))
    assert kinds[ids[4]] == (Kind.UNCLUSTERED, None)  # too short ever to cluster
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
    assert [e.kind for e in assigned(system) if e.response_id == unseen] == [Kind.UNCLUSTERED]


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
    with pytest.raises(ClusterNotFound):
        campaigns.merge(SLUG, second, first, editor, "again")  # merged: no longer a cluster of its own
    book, clusters = campaigns.clusters(SLUG, min_size=1)
    assert {c: sorted(m.response_id for m in ms) == sorted(r) for c, ms in clusters.items() for r in [
        [ids[0], ids[1], ids[3], ids[4]] if c == first else [ids[2]]]} == {first: True, new_cluster: True}
    assert book.campaigns == {first: "Save the panel"}
    assert [e.by for e in system.app.select_events(Assignment.SplitOut)] == [editor]

    # A split member stays where the editor put it: a new copy of its text does not join it.
    (copy,) = send(system, TEMPLATE + " Best, Cy")
    system.clusterer().catch_up()
    assert campaigns.book().cluster_of(copy) == first
