"""Counts with and without confirmed campaigns: the live statistics and the report, on SQLite and PostgreSQL.

Clusters come from the real clusterer (workers/clusterer.py); editors confirm, split and merge
through the campaigns context; a shredded member leaves its cluster when the clusterer records it.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import msgspec
import redis
import redis.asyncio
from litestar.testing import AsyncTestClient

from domain.campaigns.cluster import first_cluster_id
from domain.consultations.consultation import consultation_id
from domain.consultations.service import Submission
from domain.reports.report import Report
from domain.review.case import Flag, Outcome
from projections.live import StatsReader
from projections.state import replay
from projections.stats import Stats, StatsProjection, campaigns_in, stats_key, tally
from reports import render
from reports.content import BUILDER, build, canonical, digest, representative_ref
from runtime import System
from runtime.settings import Settings
from tests.conftest import REDIS_URL, SLUG
from tests.integration.test_projections import dump
from tests.integration.test_replay import in_memory, live

LEASE = timedelta(minutes=5)
TEMPLATE = (
    "I oppose the proposed change to section four of the code of conduct because it removes the "
    "independent appeals panel and leaves every decision with the same committee that made it in the first place."
)
NAMED = "Alice Smith writes: " + TEMPLATE  # the first of the campaign: its representative, once read
OTHER = (
    "The section on the use of artificial intelligence is clear and I like that it names examples of acceptable "
    "and unacceptable use, although the reporting address should be easier to find on the website."
)
FIXTURES = Path(__file__).parent.parent / "fixtures"


def send(system: System) -> list[UUID]:
    """Three of a campaign (the first named), one other text, one without text."""
    answers = [
        {"familiarity": "read", "works_well": NAMED, "join_session": True},
        {"familiarity": "know_well", "works_well": TEMPLATE, "join_session": True},
        {"familiarity": "read", "works_well": TEMPLATE + " Regards, Bo", "join_session": False},
        {"familiarity": "not_aware", "works_well": OTHER},
        {"familiarity": "aware_not_read", "join_session": False},
    ]
    ids = [r.id for r in system.consultations.submit_batch([Submission(SLUG, a) for a in answers])]  # type: ignore[union-attr]
    system.clusterer().catch_up()
    assert system.campaigns.book().cluster_of(ids[2]) == first_cluster_id(ids[0])
    return ids


def read_alone(system: System, staff: dict[str, UUID], response: UUID, marked: str | None = None) -> None:
    """A reviewer reads it on its own, marks the passage `marked` of its answer (if given) and keeps it."""
    system.review.claim(response, staff["reviewer"], LEASE)
    if marked is not None:
        answer = system.review.answers(response)["works_well"]
        start = answer.index(marked)
        system.review.mark_quote(response, staff["reviewer"], "works_well", start, start + len(marked))
    system.review.complete(response, staff["reviewer"], Outcome.REVIEWED, "")


def shred(system: System, staff: dict[str, UUID], response: UUID) -> None:
    """Its name redacted (again, if it was before) and every earlier version of its text shredded."""
    system.review.reopen(response, staff["editor"], "a name to shred")
    system.review.claim(response, staff["reviewer"], LEASE)
    system.review.redact(response, staff["reviewer"], "works_well", 0, len("[redacted]"), "a name")  # the marker whole, if it was redacted before
    system.review.shred_originals(response, staff["admin"], "works_well")
    system.clusterer().catch_up()  # records that it left its cluster


async def read_stats(system: System, prefix: str) -> Stats:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        stats = await StatsReader(client, prefix).stats(consultation_id(SLUG), system.app.name)
    finally:
        await client.aclose()
    assert stats is not None
    return stats


def replayed(system: System) -> Stats:
    memory = replay(system.app, StatsProjection)
    cid = consultation_id(SLUG)
    return tally(system.consultations.get(SLUG).definition, memory.hgetall(stats_key(cid)), memory.position(system.app.name), campaigns_in(memory, cid))


def figures(stats: Stats) -> tuple[int, int, list[tuple[str, int, dict[str, int]]]]:
    return stats.responses, stats.without_campaigns.responses, [(c.name, c.responses, c.answers["familiarity"]) for c in stats.campaigns]


FAMILIARITY = dict.fromkeys(("not_aware", "aware_not_read", "read", "know_well"), 0)


def familiarity(**counts: int) -> dict[str, int]:
    return {**FAMILIARITY, **counts}


def test_live_counts_follow_confirm_split_merge_and_shred(
    system: System, staff: dict[str, UUID], sync_redis: redis.Redis, redis_prefix: str
) -> None:
    followers = live(system, sync_redis, redis_prefix, batch=3)
    ids = send(system)
    campaign, other = first_cluster_id(ids[0]), first_cluster_id(ids[3])
    editor = staff["editor"]

    def served() -> Stats:
        for f in followers:
            f.catch_up()
        stats = asyncio.run(read_stats(system, redis_prefix))
        assert stats == replayed(system) and dump(sync_redis, redis_prefix) == in_memory(system)  # the live view is the fold's
        return stats

    before = served()
    assert figures(before) == (5, 5, []) and before.without_campaigns.answers == before.answers
    system.campaigns.confirm(SLUG, campaign, editor, "Save the appeals panel", "one template")
    confirmed = served()
    assert figures(confirmed) == (5, 2, [("Save the appeals panel", 3, familiarity(read=2, know_well=1))])
    assert confirmed.answers == before.answers  # today's totals are unchanged
    assert confirmed.without_campaigns.answers == {
        "familiarity": familiarity(not_aware=1, aware_not_read=1), "join_session": {"true": 0, "false": 1},
    }
    assert confirmed.campaigns[0].answers["join_session"] == {"true": 2, "false": 1}
    # Split out: it counts in its own cluster, in no campaign.
    split, _ = system.campaigns.split(SLUG, campaign, ids[2], editor, "not quite the template")
    assert figures(served()) == (5, 3, [("Save the appeals panel", 2, familiarity(read=1, know_well=1))])
    # Merged into the campaign: the other cluster's members count as the campaign's.
    system.campaigns.merge(SLUG, other, campaign, editor, "the same people")
    assert figures(served()) == (5, 2, [("Save the appeals panel", 3, familiarity(read=1, know_well=1, not_aware=1))])
    # The campaign merged into an unconfirmed cluster counts as no campaign, until that one is confirmed.
    system.campaigns.merge(SLUG, campaign, split, editor, "the split one is the template after all")
    assert figures(served()) == (5, 5, [])
    system.campaigns.confirm(SLUG, split, editor, "Appeals", "the template")
    assert figures(served()) == (5, 1, [("Appeals", 4, familiarity(read=2, know_well=1, not_aware=1))])
    # A shredded member leaves its cluster, and the campaign's counts: it counts in no campaign.
    system.review.claim(ids[1], staff["reviewer"], LEASE)
    system.review.complete(ids[1], staff["reviewer"], Outcome.REVIEWED, "")
    shred(system, staff, ids[1])
    assert figures(served()) == (5, 2, [("Appeals", 3, familiarity(read=2, not_aware=1))])


async def test_the_public_stats_name_campaigns_and_show_no_text(client: AsyncTestClient, system: System, staff: dict[str, UUID]) -> None:
    ids = send(system)
    position = system.campaigns.confirm(SLUG, first_cluster_id(ids[0]), staff["editor"], "Save the appeals panel", "one template")
    r = await client.get(f"/consultations/{SLUG}/stats", params={"after": position})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["responses"] == 5 and body["without_campaigns"]["responses"] == 2
    assert body["campaigns"] == [{"name": "Save the appeals panel", "responses": 3, "answers": {
        "familiarity": familiarity(read=2, know_well=1), "join_session": {"true": 2, "false": 1},
    }}]
    for secret in ("Alice", "appeals panel and leaves", "Regards", str(first_cluster_id(ids[0])), *map(str, ids)):
        assert secret not in r.text, secret


def test_the_report_counts_campaigns_with_a_redacted_representative_and_verifies_after_a_shred(
    system: System, staff: dict[str, UUID],
) -> None:
    ids = send(system)
    campaign = first_cluster_id(ids[0])
    reviewer, editor = staff["reviewer"], staff["editor"]
    system.campaigns.confirm(SLUG, campaign, editor, "Save the appeals panel", "one template")
    system.review.claim(ids[0], reviewer, LEASE)
    system.review.redact(ids[0], reviewer, "works_well", 0, len("Alice Smith"), "a name")
    system.review.mark_quote(ids[0], reviewer, "works_well", 0, len("[redacted] writes: " + TEMPLATE))
    system.review.complete(ids[0], reviewer, Outcome.REVIEWED, "")
    system.review.claim(ids[1], reviewer, LEASE)
    system.review.complete(ids[1], reviewer, Outcome.EXCLUDED, "a copy")
    read_alone(system, staff, ids[2], marked=TEMPLATE)  # its signature left out
    one = system.reports.publish(SLUG, editor, final=False)
    c = one.content
    assert c.builder == BUILDER and c.format == 4 and c.campaigns is not None
    assert (c.responses.received, c.responses.counted, c.campaigns.counted) == (5, 4, 2)
    (k,) = c.campaigns.campaigns
    assert (k.id, k.name, k.received, k.counted) == (campaign, "Save the appeals panel", 3, 2)  # the excluded one is not counted
    assert k.answers["familiarity"] == familiarity(read=2) and c.campaigns.answers["familiarity"] == familiarity(not_aware=1, aware_not_read=1)
    assert k.representative is not None and k.representative.response_id == ids[0]
    assert k.representative.text == "[redacted] writes: " + TEMPLATE  # redacted like any quote
    # Its hash is recorded with the version, beside the quotes'; its text is not in the digest.
    (event,) = [e for e in system.app.select_events(Report.Published)]
    assert event.quotes == {representative_ref(campaign): k.representative.sha256}
    page, data = render.page(one), render.data_zip(one)
    assert b'<h2 id="campaigns">Campaigns</h2>' in page and b"[redacted] writes: I oppose" in page and b"Save the appeals panel" in page
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {name: z.read(name) for name in z.namelist()}
    assert list(files)[-2:] == ["campaigns.csv", "campaign_answers.csv"]
    assert f"{campaign},Save the appeals panel,3,2,{ids[0]},[redacted] writes: I oppose".encode() in files["campaigns.csv"]
    assert b",,familiarity,not_aware,I didn't know there was one,1\r\n" in files["campaign_answers.csv"]
    assert b"campaigns.csv: " in files["README.txt"]
    for body in (one.body, page, *files.values()):
        assert b"Alice" not in body

    # Its text shredded since: version 1 still verifies, its representative reads as erased.
    shred(system, staff, ids[0])
    rebuilt = system.reports.version(SLUG, 1)
    (erased,) = rebuilt.content.campaigns.campaigns  # type: ignore[union-attr]
    assert rebuilt.digest == one.digest and erased.representative is not None and erased.representative.text is None
    assert erased.representative.sha256 == k.representative.sha256 and b"I oppose" not in rebuilt.body
    assert b"This text has been erased since the report was published." in render.page(rebuilt)
    result = system.reports.verify(SLUG, 1)
    assert result.ok and result.erased == [representative_ref(campaign)]
    # It left its cluster: the next version counts it in no campaign, and the next one read stands for the campaign.
    two = system.reports.publish(SLUG, editor, final=False).content.campaigns
    assert two is not None and (two.counted, two.campaigns[0].received, two.campaigns[0].counted) == (3, 2, 1)
    assert two.campaigns[0].representative is not None and two.campaigns[0].representative.response_id == ids[2]
    assert two.campaigns[0].representative.text == TEMPLATE  # the passage marked: not its "Regards, Bo"


def test_a_group_review_reads_no_member_on_its_own_so_none_stands_for_the_campaign(system: System, staff: dict[str, UUID]) -> None:
    """A near-duplicate may add a signature no one saw: only a member a reviewer read alone is published."""
    ids = send(system)
    campaign = first_cluster_id(ids[0])
    reviewer, editor = staff["reviewer"], staff["editor"]
    system.campaigns.confirm(SLUG, campaign, editor, "Save the appeals panel", "one template")
    done = system.campaigns.review_group(SLUG, campaign, reviewer, [], Outcome.REVIEWED, "", None)
    assert done.members == 3
    one = system.reports.publish(SLUG, editor, final=False)
    (k,) = one.content.campaigns.campaigns  # type: ignore[union-attr]
    assert (k.counted, k.representative) == (3, None)
    assert b"Alice" not in one.body and b"Alice" not in render.page(one) and b"Alice" not in render.data_zip(one)
    # The page says why it quotes none, and shows no placeholder as a respondent's words (a tester was misled).
    assert b"is not quoted: when this version was built, no response of it had been read on its own" in render.page(one)
    assert b"in the words of one of" not in render.page(one)
    # By agora-report/2's rules the first member, which no one had read, stood for it: versions it built rebuild so.
    earlier = build(system.app, system.texts, consultation_id(SLUG), one.content.position, 1, False, builder="agora-report/2")
    (old,) = earlier.campaigns.campaigns  # type: ignore[union-attr]
    assert old.representative is not None and (old.representative.response_id, old.representative.text) == (ids[0], NAMED)
    # Reopened and read on its own, the second member stands for the campaign.
    system.review.reopen(ids[1], editor, "to read it")
    read_alone(system, staff, ids[1], marked=TEMPLATE)
    (k,) = system.reports.publish(SLUG, editor, final=False).content.campaigns.campaigns  # type: ignore[union-attr]
    assert k.representative is not None and (k.representative.response_id, k.representative.text) == (ids[1], TEMPLATE)


def test_a_member_flagged_as_holding_personal_data_does_not_stand_for_its_campaign(system: System, staff: dict[str, UUID]) -> None:
    """The flag says a reviewer found personal data; it stays until the data is redacted and the flag removed."""
    ids = send(system)
    campaign = first_cluster_id(ids[0])
    reviewer, editor = staff["reviewer"], staff["editor"]
    system.campaigns.confirm(SLUG, campaign, editor, "Save the appeals panel", "one template")
    system.review.claim(ids[0], reviewer, LEASE)
    system.review.flag(ids[0], reviewer, Flag.PERSONAL_DATA, "a name at the start")
    system.review.mark_quote(ids[0], reviewer, "works_well", 0, len(NAMED))
    system.review.complete(ids[0], reviewer, Outcome.REVIEWED, "")
    read_alone(system, staff, ids[1], marked=TEMPLATE)
    one = system.reports.publish(SLUG, editor, final=False)
    (k,) = one.content.campaigns.campaigns  # type: ignore[union-attr]
    assert k.representative is not None and (k.representative.response_id, k.representative.text) == (ids[1], TEMPLATE)
    assert b"Alice" not in render.page(one)
    earlier = build(system.app, system.texts, consultation_id(SLUG), one.content.position, 1, False, builder="agora-report/2")
    (old,) = earlier.campaigns.campaigns  # type: ignore[union-attr]
    assert old.representative is not None and old.representative.response_id == ids[0]  # agora-report/2's rule


def test_a_representative_is_the_passage_a_reviewer_marked_not_the_rest_of_its_text(system: System, staff: dict[str, UUID]) -> None:
    """Two testers saw a member's other answer (a name in it) and its signature published, which no one chose."""
    template = TEMPLATE
    answers = [
        {"familiarity": "read", "works_well": "Hello. " + template + " Regards, Max", "missing_or_unclear": "My name is Secret Person."},
        {"familiarity": "read", "works_well": template},
    ]
    ids = [r.id for r in system.consultations.submit_batch([Submission(SLUG, a) for a in answers])]  # type: ignore[union-attr]
    system.clusterer().catch_up()
    system.campaigns.confirm(SLUG, first_cluster_id(ids[0]), staff["editor"], "Save the appeals panel", "one template")
    read_alone(system, staff, ids[0])  # read and kept, but no passage marked: it cannot stand for the campaign
    preview = system.reports.preview(SLUG, staff["editor"]).content
    assert preview.campaigns.campaigns[0].representative is None  # type: ignore[union-attr]
    system.review.reopen(ids[0], staff["editor"], "mark its passage")
    read_alone(system, staff, ids[0], marked=template)
    built = system.reports.publish(SLUG, staff["editor"], final=False)
    (k,) = built.content.campaigns.campaigns  # type: ignore[union-attr]
    assert k.representative is not None and (k.representative.response_id, k.representative.text) == (ids[0], template)
    for body in (built.body, render.page(built), render.data_zip(built)):
        assert b"Secret Person" not in body and b"Max" not in body
    assert system.reports.verify(SLUG).ok
    # By agora-report/4's rules, all its free text stood for the campaign: such versions rebuild so.
    old = build(system.app, system.texts, consultation_id(SLUG), built.content.position, 1, False, builder="agora-report/4")
    assert "Secret Person" in old.campaigns.campaigns[0].representative.text  # type: ignore[union-attr]


def test_a_representative_key_gone_without_a_recorded_shredding_is_a_difference(system: System, staff: dict[str, UUID]) -> None:
    ids = send(system)
    system.campaigns.confirm(SLUG, first_cluster_id(ids[0]), staff["editor"], "Save the appeals panel", "one template")
    read_alone(system, staff, ids[0], marked=TEMPLATE)
    system.reports.publish(SLUG, staff["editor"], final=False)
    (submitted,) = system.app.events.get(ids[0], limit=1)
    system.texts.destroy([submitted.texts["works_well"].key_id])  # outside Agora's rules: no event says so
    result = system.reports.verify(SLUG)
    assert not result.ok and result.erased == []
    assert f"the representative text of campaign {first_cluster_id(ids[0])}: its text cannot be read" in (result.difference or "")


def test_without_campaigns_nothing_changes_but_the_rules_named(system: System, staff: dict[str, UUID]) -> None:
    """No campaign confirmed: the page and open data are as before; the content adds only its empty `campaigns`."""
    send(system)
    built = system.reports.publish(SLUG, staff["editor"], final=False)
    assert built.content.campaigns is not None and built.content.campaigns.campaigns == []
    assert built.content.campaigns.counted == built.content.responses.counted
    assert b"Campaigns" not in render.page(built)
    old = build(system.app, system.texts, consultation_id(SLUG), built.content.position, 1, False, builder="agora-report/1")
    assert b'"campaigns"' not in canonical(old) and old.format == 1
    responses = msgspec.structs.replace(built.content.responses, in_group_reviews=None)  # format 4 on
    assert canonical(msgspec.structs.replace(built.content, format=1, builder="agora-report/1", campaigns=None, responses=responses)) == canonical(old)


def test_versions_published_by_earlier_rules_rebuild_to_their_recorded_digests(tmp_path: Path, data_dir: Path) -> None:
    """fixtures/report-v1.sqlite (made by fixtures/make_report_v1.py.txt at 2af420a, agora-report/1): version 1 was
    published before a campaign was confirmed, version 2 after; both rebuild, by their rules, byte for byte."""
    db = tmp_path / "report-v1.sqlite"
    shutil.copy(FIXTURES / "report-v1.sqlite", db)
    settings = Settings(data_dir=str(data_dir), secret="s" * 48, password_profile="CHEAPEST")
    with System(settings, {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(db)}) as system:
        recorded = {
            1: "89292f3d47cff91e069f61b5dda90ecc1fe8c4568461476e4ac33ab3360b3052",
            2: "2c4012897a69f994864fe1b12342a571f988c60cee8f76ff358876a147d44d9c",
        }
        for version, published in recorded.items():
            built = system.reports.version(SLUG, version)
            assert built.digest == published and built.content.builder == "agora-report/1" and b'"campaigns"' not in built.body
            assert system.reports.verify(SLUG, version).ok
            assert "campaigns.csv" not in zipfile.ZipFile(io.BytesIO(render.data_zip(built))).namelist()
        # By today's rules the same position reads otherwise: the campaign counts.
        today = build(system.app, system.texts, consultation_id(SLUG), built.content.position, 2, False)
        assert digest(today) != recorded[2] and today.campaigns is not None and today.campaigns.campaigns[0].received == 3
        # A version published now is built by today's rules: the campaign, and no representative, as no reviewer
        # marked a passage in its members; agora-report/3 and /4 published all the text of the first one read.
        editor = next(iter(system.app.select_events(Report.Published))).by
        new = system.reports.publish(SLUG, editor, final=False).content
        assert new.builder == BUILDER and new.campaigns is not None and new.campaigns.counted == 2
        (k,) = new.campaigns.campaigns
        assert (k.name, k.received, k.counted, k.representative) == ("Save the appeals panel", 3, 3, None)
        old = build(system.app, system.texts, consultation_id(SLUG), new.position, 3, False, builder="agora-report/4")
        assert old.campaigns is not None and old.campaigns.campaigns[0].representative.text == TEMPLATE  # type: ignore[union-attr]
        assert system.reports.verify(SLUG).ok
