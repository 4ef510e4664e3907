"""One fold, four uses: replayed in memory, a view is byte for byte the live Redis view, at the head or at any position."""

from __future__ import annotations

import msgspec
import redis
import redis.asyncio

from domain.consultations.consultation import Definition
from projections.live import VIEWS, StatsReader
from projections.state import Memory, replay
from projections.stats import stats_key, tally
from runtime import System
from tests.conftest import REDIS_URL, SLUG
from tests.integration.test_projections import dump, review_some, submit
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
    assert expected["queue:tags:ai_use"] and expected["queue:state:excluded"] and expected["stats:stats:" + str(system.consultations.get(SLUG).id)]
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
