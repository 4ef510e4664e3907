"""Followers: read the notification log in batches and feed a projection.

One follower runs one projection. It reads whatever the log holds past the view's
position (up to a batch), lets the projection stage its changes, and flushes them with
the last position in one Redis transaction. Under load a batch holds many events, so the
view keeps up with one round trip per batch; when idle it waits on the store's doorbell.
Run it in a thread of the API process (embedded) or in a process of its own (`agora work`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import redis
from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from projections.view import RedisView, StaleGeneration
from store import Doorbell

if TYPE_CHECKING:
    from workers.mailer import Mailer

log = logging.getLogger(__name__)

BATCH = 1000
IDLE_POLL = 0.5  # seconds; how soon a write from another SQLite process is seen


class Follower:
    def __init__(self, app: Application[Any], projection: Projection[RedisView], batch: int = BATCH) -> None:
        self.app = app
        self.projection = projection
        self.view = projection.view
        self.batch = batch
        self.topics = frozenset(projection.topics)
        self._process = projection.process_event  # bound once: binding a dispatching method is not free
        self.position = self.view.max_tracking_id(app.name) or 0
        self.bell: Doorbell | None = None  # while running
        self.name = self.view.name

    def step(self) -> int:
        """Process one batch past the view's position; returns how many events it read."""
        notifications = self.app.recorder.select_notifications(start=self.position, limit=self.batch, inclusive_of_start=False)
        for n in notifications:
            tracking = Tracking(self.app.name, n.id)
            if n.topic in self.topics:
                self._process(self.app.mapper.to_domain_event(n), tracking)
            else:
                self.view.insert_tracking(tracking)  # not decoded: this view ignores it
        try:
            position = self.view.flush(self.position)
        except StaleGeneration:
            position = self.view.max_tracking_id(self.app.name) or 0
        # Normally the batch's last event; wherever the view is if it refused the batch.
        if position is not None:
            self.position = position
        return len(notifications)

    def catch_up(self, head: int | None = None) -> None:
        """Process until the view has reached `head` (default: the log's head now)."""
        head = (self.app.recorder.max_notification_id() or 0) if head is None else head
        while self.position < head and self.step():
            pass

    def run(self, stop: threading.Event) -> None:
        """Follow the log until `stop` is set (then ring `bell`), surviving Redis or store outages."""
        self.bell = Doorbell(self.app.recorder)
        try:
            while not stop.is_set():
                self.bell.clear()
                try:
                    if self.step() or self.repaired():
                        continue
                except Exception as e:  # noqa: BLE001 - a follower outlives outages; it reports and retries
                    log.warning("follower %s: %s; resuming from the view's position", self.view.name, e)
                    stop.wait(1.0)
                    self._resume()
                    continue
                self.bell.wait(IDLE_POLL)
        finally:
            self.bell.close()

    def repaired(self) -> bool:
        """When idle: if the view stands behind where this follower left it (Redis restarted empty,
        or its keys were deleted), fold again from where the view stands, without waiting for an event."""
        stored = self.view.max_tracking_id(self.app.name) or 0
        if stored >= self.position:
            return False
        log.warning("view %s is at %d, behind %d where it was left: folding the log again from there", self.view.name, stored, self.position)
        self.view.discard()
        self.position = stored
        return True

    def _resume(self) -> None:
        self.view.discard()
        try:
            self.position = self.view.max_tracking_id(self.app.name) or 0
        except redis.RedisError:
            pass


class Followers:
    """Threads running followers, and the mailer if given, until stopped."""

    def __init__(self, followers: list[Follower], mailer: Mailer | None = None) -> None:
        self.followers = followers
        self.runners: list[Any] = [*followers, *([mailer] if mailer else [])]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Followers:
        """Run each of `runners` (any object with `name`, `app`, `bell` and `run(stop)`) in a thread of its own."""
        self._threads = [threading.Thread(target=r.run, args=(self._stop,), name=f"worker-{r.name}", daemon=True) for r in self.runners]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for r in self.runners:
            if r.bell:
                r.bell.ring()
        for t in self._threads:
            t.join()

    def close(self) -> None:
        """Stop, and close what the workers were given: their applications and Redis clients."""
        self.stop()
        for app in {r.app for r in self.runners}:
            app.close()
        for client in {f.view.redis for f in self.followers}:
            client.close()
