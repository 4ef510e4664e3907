"""Long-running work beside the API: the projection followers and the mailer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

import redis
from eventsourcing.application import Application

import store
from domain.application import Agora
from projections.form import FormProjection, FormView
from projections.queue import QueueProjection, QueueView
from projections.stats import StatsProjection, StatsView
from workers.follower import Follower, Followers
from workers.mail import FolderTransport, Transport, transport
from workers.mailer import Mailer

PROJECTIONS = {
    "form": (FormProjection, FormView),
    "stats": (StatsProjection, StatsView),
    "queue": (QueueProjection, QueueView),
}


def followers(app: Application[Any], client: redis.Redis, prefix: str, mailer: Mailer | None = None) -> Followers:
    return Followers([Follower(app, projection(view(client, prefix))) for projection, view in PROJECTIONS.values()], mailer)


def build_mailer(app: Agora, smtp_url: str, sender: str, public_url: str) -> Mailer:
    return Mailer(app, mail_transport(smtp_url), sender, public_url)


def mail_transport(smtp_url: str) -> Transport:
    """SMTP if `smtp_url` is set, else the data folder's `outbox`, one .eml per message."""
    return transport(smtp_url or None, _outbox())


def forget_mail(signup_id: UUID) -> None:
    """Delete a person's messages from the outbox, if there is one (say, from before SMTP was set up)."""
    if _outbox().exists():
        FolderTransport(_outbox()).forget(str(signup_id))


def _outbox() -> Path:
    return store.data_dir() / "outbox"


def positions(app: Application[Any], client: redis.Redis, prefix: str) -> dict[str, int]:
    return {name: view(client, prefix).max_tracking_id(app.name) or 0 for name, (_, view) in PROJECTIONS.items()}


def rebuild(app: Application[Any], client: redis.Redis, prefix: str, name: str) -> tuple[int, float]:
    """Replay the whole log into a fresh generation of a view, then switch readers to it.

    Returns the number of events replayed and the seconds it took.
    """
    projection_class, view_class = PROJECTIONS[name]
    view = view_class.new_generation(client, prefix)
    follower = Follower(app, projection_class(view))
    started = time.perf_counter()
    while True:
        follower.catch_up()
        if view.switch(app.name):
            return follower.position, time.perf_counter() - started
