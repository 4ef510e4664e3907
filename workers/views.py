"""The views the followers keep, and the operator's work on them: positions and rebuilds."""

from __future__ import annotations

import time
from typing import Any

import redis
from eventsourcing.application import Application

from projections.live import VIEWS
from workers.follower import Follower, Followers
from workers.mailer import Mailer


def followers(app: Application[Any], client: redis.Redis, prefix: str, mailer: Mailer | None = None) -> Followers:
    return Followers([Follower(app, projection(view(client, prefix))) for projection, view in VIEWS.values()], mailer)


def positions(app: Application[Any], client: redis.Redis, prefix: str) -> dict[str, int]:
    return {name: view(client, prefix).max_tracking_id(app.name) or 0 for name, (_, view) in VIEWS.items()}


def rebuild(app: Application[Any], client: redis.Redis, prefix: str, name: str) -> tuple[int, float]:
    """Replay the whole log into a fresh generation of a view, then switch readers to it.

    Returns the number of events replayed and the seconds it took.
    """
    projection_class, view_class = VIEWS[name]
    view = view_class.new_generation(client, prefix)
    follower = Follower(app, projection_class(view))
    started = time.perf_counter()
    while True:
        follower.catch_up()
        if view.switch(app.name):
            return follower.position, time.perf_counter() - started
