"""One fold, four uses: replayed in memory, a view is byte for byte the live Redis view, at the head or at any position;
and `audit.replay.view_at` decodes a replay exactly as the API's readers decode the live view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import redis
import redis.asyncio

from audit.replay import DECODERS, Snapshot, view_at
from domain.consultations.consultation import Definition, consultation_id
from domain.consultations.service import Submission
from domain.reports.report import report_id
from domain.signups.signup import Purpose
from domain.staff.member import Role
from projections import queue
from projections.live import VIEWS, FormReader, QueueReader, ReportReader, StatsReader
from projections.state import Memory, replay
from projections.view import pairs
from projections.stats import stats_key, tally
from runtime import System
from tests.conftest import REDIS_URL, SLUG
from tests.integration.test_projections import dump, review_some, submit
from tests.integration.test_signups import SESSIONS, future
from workers.follower import Follower


def live(system: System, client: redis.Redis, prefix: str, batch: int = 5) -> list[Follower]:
    return [Follower(system.app, projection(view(client, prefix)), batch=batch) for projection, view in VIEWS.values()]


def in_memory(system: System, upto: int | None = None) -> dict[str, object]:
    """Every view replayed into memory, keyed as `dump` keys the Redis views."""
    out: dict[str, object] = {}
    for name, (projection, _) in VIEWS.items():
        memory: Memory = replay(system.app, projection, upto=upto)
        out.update((f"{name}:{suffix}", value) for suffix, value in memory.dump().items())
    return out


def test_replaying_the_log_into_memory_gives_the_live_views(
    system: System, sync_redis: redis.Redis, redis_prefix: str, seed: Definition
) -> None:
    followers = live(system, sync_redis, redis_prefix)
    system.consultations.load(msgspec.structs.replace(seed, slug="second-one"))
    submit(system, 12)
    for f in followers:
        f.step()  # some batches land before the rest is written: the live views were built piecemeal
    system.consultations.close(SLUG)
    system.consultations.move_closing_time(SLUG, None)
    submit(system, 7, slug="second-one")
    review_some(system)
    for f in followers:
        f.catch_up()
    expected = dump(sync_redis, redis_prefix)
    assert expected["queue:tags:ai_use"] and expected["queue:" + queue.state_key("excluded", system.consultations.get(SLUG).id)] and expected["stats:stats:" + str(system.consultations.get(SLUG).id)]
    assert in_memory(system) == expected


def test_a_replay_up_to_a_position_gives_the_view_as_it_stood_there(
    system: System, sync_redis: redis.Redis, redis_prefix: str
) -> None:
    followers = live(system, sync_redis, redis_prefix, batch=1000)
    submit(system, 10)
    review_some(system)
    for f in followers:
        f.catch_up()
    then, position = dump(sync_redis, redis_prefix), system.app.head()
    submit(system, 6)
    system.consultations.close(SLUG)
    for f in followers:
        f.catch_up()
    assert dump(sync_redis, redis_prefix) != then
    assert in_memory(system, upto=position) == then


async def test_the_counting_rules_read_alike_from_redis_and_from_memory(
    system: System, sync_redis: redis.Redis, redis_prefix: str, seed: Definition
) -> None:
    submit(system, 25)
    for f in live(system, sync_redis, redis_prefix):
        f.catch_up()
    consultation_id = system.consultations.get(SLUG).id
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        served = await StatsReader(client, redis_prefix).stats(consultation_id, system.app.name)
    finally:
        await client.aclose()
    memory = replay(system.app, VIEWS["stats"][0])
    assert served == tally(seed, memory.hgetall(stats_key(consultation_id)), memory.position(system.app.name))
    assert served is not None and served.responses == 25 and served.position == system.app.head()


async def served(system: System, prefix: str, view: str) -> bytes:
    """The live view in Redis as the API's readers read it, in the shape of a replay (`audit.replay.Snapshot`)."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        position = await StatsReader(client, prefix).position(system.app.name)
        slugs = sorted(system.consultations.slugs())
        ids = {slug: consultation_id(slug) for slug in slugs}
        if view == "form":
            forms = FormReader(client, prefix)
            return msgspec.json.encode(Snapshot(view, position, {s: await forms.form(ids[s]) for s in slugs}))
        if view == "stats":
            stats = StatsReader(client, prefix)
            return msgspec.json.encode(Snapshot(view, position, {s: await stats.stats(ids[s], system.app.name) for s in slugs}))
        if view == "queue":
            reader, now = QueueReader(client, prefix), datetime.now(UTC)
            cases = {s: (await reader.page(system.app.name, None, None, None, None, 0, 10_000, now, ids[s])).items for s in slugs}
            (counts,) = await reader.read(("HGETALL", queue.PROGRESS, ()))
            return msgspec.json.encode(Snapshot(view, position, cases, progress=queue.progress(pairs(counts), position)))
        reports = ReportReader(client, prefix)
        versions = {s: await reports.versions(report_id(ids[s])) for s in slugs}
        erasures = {e for _, e in versions.values()}
        assert len(erasures) == 1
        return msgspec.json.encode(Snapshot(view, position, {s: v for s, (v, _) in versions.items()}, erasures=erasures.pop()))
    finally:
        await client.aclose()


def test_every_live_view_can_be_replayed_at_a_position() -> None:
    assert DECODERS.keys() == VIEWS.keys()


async def test_a_view_replayed_at_a_position_is_byte_for_byte_the_live_view_captured_there(
    system: System, sync_redis: redis.Redis, redis_prefix: str, seed: Definition
) -> None:
    followers = live(system, sync_redis, redis_prefix)
    admin = system.staff.enrol("root@example.org", "Root", "a long enough password", [Role.ADMIN], by=None)
    reviewer = system.staff.enrol("r@example.org", "R", "a long enough password", [Role.REVIEWER], by=admin)
    captured: dict[int, dict[str, bytes]] = {}

    async def capture() -> None:
        for f in followers:
            f.catch_up()
        captured[system.app.head()] = {view: await served(system, redis_prefix, view) for view in VIEWS}

    submit(system, 12)
    await capture()
    system.consultations.load(future(seed))
    signup = system.signups.request(SESSIONS, "session_1300", "Someone", "someone@example.org", True)
    system.signups.confirm(signup, system.signups.links.token(Purpose.CONFIRM, signup, 1))
    submit(system, 5, slug=SESSIONS)
    await capture()
    review_some(system)
    (text,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": "Call Jane on 555."})])
    system.review.claim(text.id, reviewer, timedelta(minutes=30))
    system.review.redact(text.id, reviewer, "works_well", 5, 9, "a name")
    system.review.shred_originals(text.id, admin, "works_well")
    await capture()
    system.consultations.close(SLUG)
    system.signups.erase(signup, token=None)
    await capture()
    assert len(captured) == 4
    for position, views in captured.items():
        for view, live_bytes in views.items():
            assert view_at(system.app, view, position) == live_bytes, (view, position)
    final = msgspec.json.decode(captured[system.app.head()]["queue"])
    assert final["progress"]["reviewed"] == 1 and {i["state"] for i in final["consultations"][SLUG]} == {"new", "claimed", "excluded"}
    assert msgspec.json.decode(captured[system.app.head()]["report"])["erasures"] == 1
    earlier = min(captured)
    assert view_at(system.app, "stats", earlier) != view_at(system.app, "stats", None)
