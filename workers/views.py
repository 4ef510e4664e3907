"""The views the followers keep, and the operator's work on them: positions, rebuilds, stops and skips."""

from __future__ import annotations

import time
from typing import Any

import redis
from eventsourcing.application import Application

from projections.live import VIEWS
from store import locks
from workers.follower import ATTEMPTS, Follower, Followers, FoldFailed, lock, rebuild as rebuild_view
from workers.mailer import Mailer
from workers.stops import Stops


def followers(
    app: Application[Any], client: redis.Redis, prefix: str, mailer: Mailer | None = None, attempts: int = ATTEMPTS
) -> Followers:
    stops = Stops(client, prefix)
    return Followers([Follower(app, projection(view(client, prefix)), stops=stops, attempts=attempts) for projection, view in VIEWS.values()], mailer)


def followed(app: Application[Any]) -> dict[str, bool]:
    """Whether a follower of this deployment holds each view's lock (one folds it; any other stands by)."""
    return {name: locks.taken(app.recorder, lock(name)) for name in VIEWS}


def stalled(app: Application[Any]) -> dict[str, float]:
    """How long each view's follower has not answered, in seconds (`store.locks.unanswered`)."""
    return {name: locks.unanswered(app.recorder, lock(name)) for name in VIEWS}


def positions(app: Application[Any], client: redis.Redis, prefix: str) -> dict[str, int]:
    return {name: view(client, prefix).max_tracking_id(app.name) or 0 for name, (_, view) in VIEWS.items()}


def rebuild(app: Application[Any], client: redis.Redis, prefix: str, name: str) -> tuple[int, float]:
    """Replay the whole log into a fresh generation of a view, then switch readers to it.

    Returns the number of events replayed and the seconds it took until readers switched to it (the old
    generation's keys are expired after, before this returns). Once switched, the view's record
    of a poison event it stopped on is cleared: its follower folds on from the rebuilt view. If the
    fold fails on an event, nothing is switched and the refusal names the event.
    """
    projection_class, view_class = VIEWS[name]
    started = time.perf_counter()
    view = view_class.new_generation(client, prefix)
    try:
        follower = rebuild_view(app, projection_class, view)
        assert follower is not None  # given no stop, it returns only once switched
    except FoldFailed as e:
        raise ValueError(f"cannot rebuild {name}: its fold fails on {e}; the live view is untouched") from e
    seconds = time.perf_counter() - started  # until readers switched to it
    Stops(client, prefix).clear(name)
    if view.retiring:
        view.retiring.result()  # the old generation's keys expiring: before the caller closes `client`
    return follower.position, seconds
