"""Followers: read the notification log in batches and feed a projection.

One follower runs one projection. It reads whatever the log holds past the view's
position (up to a batch), lets the projection stage its changes, and flushes them with
the last position in one Redis transaction. Under load a batch holds many events, so the
view keeps up with one round trip per batch; when idle it waits on the store's doorbell.
Run it in a thread of the API process (embedded) or in a process of its own (`agora work`).
One follower of each view folds per deployment (a lock in the event store's database); any
other stands by and takes over within seconds when the holder stops or dies.

An outage (Redis or the store) is retried forever. An event the fold itself fails on is
retried a few times (a poison event: retrying will not help), then the follower stops that
view only, records where and why in `Stops` (`agora status` shows it) and waits for the
operator: `agora rebuild VIEW` (after a fix) clears the record, `agora skip VIEW POSITION`
folds on past that one event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking
from projections.state import Fold, collector_paused
from projections.view import RedisView, StaleGeneration
from store import Doorbell
from store.locks import one_at_a_time
from workers.reads import reads
from workers.stops import Stops

if TYPE_CHECKING:
    from workers.mailer import Mailer

log = logging.getLogger(__name__)

BATCH = 1000
IDLE_POLL = 0.5  # seconds; how soon a write from another SQLite process is seen
ATTEMPTS = 5  # tries of an event the fold fails on before its view stops
STANDBY = 2.0  # seconds between a standby follower's attempts to take over its view
LOCK_CHECK = 1.0  # seconds between a folding follower's looks at whether it still holds its view's lock
REPAIR_CHECK = 1.0  # seconds between an idle follower's looks at whether its view fell behind (a Redis round trip)


def lock(view: str) -> str:
    """The name of the deployment's lock that the follower of `view` holds while it folds."""
    return f"view-{view}"


def wrong_type(e: redis.RedisError) -> bool:
    """Whether a view's key holds another type than its fold writes (set by hand): damage that retrying will not
    mend (`agora rebuild` will), so the view stops as on a poison event rather than retry as in an outage."""
    return isinstance(e, redis.ResponseError) and str(e).startswith("WRONGTYPE")


class FoldFailed(Exception):
    """The projection raised on one event (not an outage): retrying the same code will not help."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(f"event {position}: {type(error).__name__}: {error}")
        self.position = position


class Follower:
    def __init__(
        self, app: Application[Any], projection: Fold, batch: int = BATCH,
        stops: Stops | None = None, attempts: int = ATTEMPTS,
    ) -> None:
        """Without `stops`, an event the fold fails on raises `FoldFailed` from `step()` (as in a rebuild)."""
        self.app = app
        self.projection = projection
        self.view = projection.view
        self.batch = batch
        self.handlers = projection.handlers()
        self.position = self.view.max_tracking_id(app.name) or 0
        self.bell: Doorbell | None = None  # while running
        self.name = self.view.name
        self.stops = stops
        self.attempts = attempts
        self.failed: tuple[int, int] = (0, 0)  # the event the fold last failed on, and how many times in a row
        self.stopped_on = 0  # the poison event this view is stopped on, while it is
        self.recorded: int | None = None  # the event `stops` holds a record of for this view (None: not read yet)
        self.skip = 0  # the event the operator decided this view does without

    def step(self, upto: int | None = None, since: float | None = None) -> int:
        """Process one batch past the view's position; returns how many events it read.

        Given `upto`, a position the log has reached, it reads only the events the projection
        subscribes to, up to there, and once it has folded them all moves the view to `upto`.
        Otherwise it reads the whole log, sharing a read begun at `since` or later (None: now) with
        the process's other followers (`workers.reads`).
        """
        if upto is None:
            notifications, batch = reads(self.app).after(self.position, self.batch, since)
            decode = batch.event
        else:
            notifications, decode = self._read(self.position, upto), self.app.mapper.to_domain_event
        name, handlers = self.app.name, self.handlers  # per event: looked up once
        for n in notifications:
            tracking = Tracking(name, n.id)
            process = handlers.get(n.topic)
            if process is not None and n.id != self.skip:
                try:
                    process(decode(n), tracking)
                except redis.RedisError as e:
                    if not wrong_type(e):
                        raise  # an outage (a fold may read its view back), not the event
                    raise FoldFailed(n.id, e) from e
                except Exception as e:
                    raise FoldFailed(n.id, e) from e
            else:
                self.view.insert_tracking(tracking)  # not decoded: this view ignores it (or does without it)
        if upto is not None and len(notifications) < self.batch:
            self.view.insert_tracking(Tracking(self.app.name, upto))  # nothing else it subscribes to up to there
        try:
            position = self.view.flush(self.position)
        except StaleGeneration:
            position = self.view.max_tracking_id(self.app.name) or 0
        except redis.ResponseError as e:
            if not (wrong_type(e) and notifications):
                raise
            raise FoldFailed(notifications[0].id, e) from e  # the batch's first: where the next attempt starts
        # Normally the batch's last event; wherever the view is if it refused the batch.
        if position is not None:
            self.position = position
        return len(notifications)

    def _read(self, start: int, upto: int) -> Sequence[Notification]:
        # In the fold's own thread. sqlite3 lets go of the GIL for each row it steps, psycopg for each part of a result
        # it takes in: a read in a thread beside the busy fold waited for the GIL each time (1,000 rows took 1.4 ms
        # alone and 548 ms beside a busy thread, on SQLite), so reading ahead made a rebuild slower, not faster.
        return self.app.recorder.select_notifications(
            start=start, limit=self.batch, stop=upto, topics=self.projection.topics, inclusive_of_start=False
        )

    def catch_up(self, head: int | None = None, stop: threading.Event | None = None) -> None:
        """Process until the view has reached `head` (default: the log's head now), or `stop` is set."""
        head = (self.app.recorder.max_notification_id() or 0) if head is None else head
        while not (stop and stop.is_set()):
            if self.position < head:
                self.step(head)
                continue
            settled = self.view.settle()  # a rebuild's last batch, which Redis may still be applying
            if settled is None or settled == self.position:
                return
            self.position = settled  # refused: fold again from where it stands

    def run(self, stop: threading.Event) -> None:
        """Follow the log until `stop` is set (then ring `bell`), surviving Redis or store outages.

        One follower of a view per deployment folds: it holds the view's lock in the event store's
        database (`store.locks`); any other, say in a second `agora work`, stands by to take over.
        """
        one_at_a_time(self.app.recorder, lock(self.name), stop, lambda locked: self._serve(stop, locked), STANDBY)

    def _serve(self, stop: threading.Event, locked: Callable[[], bool]) -> None:
        """Follow while `locked` (looked at every LOCK_CHECK seconds: on PostgreSQL it is a round trip) and until `stop`."""
        self._resume()  # where the view is now: another follower may have folded it meanwhile
        upgraded = False
        self.bell = Doorbell(self.app.recorder)
        checked, looked = time.monotonic(), -math.inf  # looked: at once, once idle (a view restored past the log)
        try:
            while not stop.is_set():
                if time.monotonic() - checked > LOCK_CHECK:
                    if not locked():
                        log.warning("follower %s: lost its lock; standing by", self.name)
                        return
                    checked = time.monotonic()
                since = self.bell.clear()  # a read begun since holds every commit that rang the bell
                try:
                    if not upgraded:
                        upgraded = self.upgrade(stop)
                    if self.held():
                        stop.wait(1.0)
                        continue
                    read = self.step(since=since)
                    if read:
                        self.passed()
                        if read == self.batch:
                            continue  # more may be waiting; otherwise the bell says when there is
                    elif time.monotonic() - looked > REPAIR_CHECK:
                        looked = time.monotonic()
                        if self.repaired(stop):
                            continue
                except FoldFailed as e:
                    self.failing(e)
                    stop.wait(1.0)
                    self._resume()
                    continue
                except Exception as e:  # noqa: BLE001 - a follower outlives outages; it reports and retries
                    log.warning("follower %s: %s; resuming from the view's position", self.view.name, e)
                    stop.wait(1.0)
                    self._resume()
                    continue
                self.bell.wait(IDLE_POLL)
        finally:
            self.bell.close()
            self.bell = None

    def upgrade(self, stop: threading.Event) -> bool:
        """If the view was written by another version of its fold (a release changed it), rebuild it
        beside the live one, which readers keep using until the rebuilt one has caught up. False if
        `stop` came first: the next start rebuilds it."""
        version, marked = type(self.projection).version, self.view.fold_version()
        written_by = marked or (1 if self.position else version)  # unmarked: from before versions, or new
        if written_by == version:
            if marked is None:
                self.view.mark_fold(version)
            return True
        log.warning("view %s was written by version %d of its fold, this code's is %d: rebuilding it", self.name, written_by, version)
        return self._rebuild(stop)

    def _rebuild(self, stop: threading.Event) -> bool:
        """Rebuild the view beside the live one and follow the rebuilt one; False if `stop` came first."""
        try:
            if rebuild(self.app, type(self.projection), self.view.rebuilt(), stop) is None:
                return False
        except FoldFailed as e:
            log.error("view %s: rebuilding it stopped on %s; following it as it stands (`agora rebuild %s` once fixed)", self.name, e, self.name)
            return True
        if self.stops is not None:
            self.stops.clear(self.name)
        self._resume()
        return True

    def repaired(self, stop: threading.Event) -> bool:
        """When idle: if the view stands behind where this follower left it (Redis restarted from an older
        snapshot), fold again from where the view stands, without waiting for an event; with no position at
        all (Redis restarted empty, or the position key alone lost), rebuild it beside the live one.
        If it stands past the log's head, the log lost events it folded (a store restored from a backup):
        rebuild it, or the events recorded again at those positions would never be folded."""
        if self.view.generation != self.view.current_generation():
            # Readers were switched to another generation (`agora rebuild`), whose old one's keys are gone: follow the new one.
            self._resume()
            return True
        stored = self.view.max_tracking_id(self.app.name) or 0
        head = self.app.recorder.max_notification_id() or 0  # read after: a view never gets past a log that lost nothing
        if stored > head:
            log.warning("view %s is at %d, past the log's head at %d: the log lost events it folded (restored from a backup?); rebuilding it", self.name, stored, head)
            return self._rebuild(stop)
        if stored >= self.position:
            return False
        if not stored:
            # Its position gone: Redis restarted empty, or that one key was lost (evicted, deleted) and the data is
            # still there, which folding the log again onto would count twice (a tester's). Rebuilt beside it, either is right.
            log.warning("view %s has lost its position (it was at %d): rebuilding it", self.name, self.position)
            return self._rebuild(stop)
        # Position and data are written together: the view is as it stood at `stored`.
        log.warning("view %s is at %d, behind %d where it was left: folding the log again from there", self.view.name, stored, self.position)
        self.view.discard()
        self.position = stored
        return True

    # Poison events

    def failing(self, failure: FoldFailed) -> None:
        """Count a failure of the fold; at `attempts` in a row on one event, record it and stop this view there."""
        position, count = self.failed
        self.failed = (failure.position, count + 1 if position == failure.position else 1)
        log.warning("follower %s: %s (attempt %d of %d)", self.name, failure, self.failed[1], self.attempts)
        if self.stops is None or self.failed[1] < self.attempts:
            return
        log.error(
            "view %s stopped on event %d, its fold failed %d times: %s; the other views run on. "
            "Fix it and `agora rebuild %s`, or `agora skip %s %d` to do without the event",
            self.name, failure.position, self.failed[1], failure.__cause__, self.name, self.name, failure.position,
        )
        self.stops.record(self.name, failure.position, str(failure), self.failed[1])
        self.stopped_on = self.recorded = failure.position

    def held(self) -> bool:
        """Whether this view stays stopped on its poison event: until the record is cleared or says skip."""
        if self.stops is None:
            return False
        if self.recorded is None:  # first look: a record from before a restart (the new code may fold it)
            found = self.stops.get(self.name)
            self.recorded = found["position"] if found else 0
            self.skip = self.recorded if found and found["skip"] else 0
        if not self.stopped_on:
            return False
        decision = self.stops.get(self.name)
        if decision is None or decision["position"] != self.stopped_on:
            log.warning("view %s: its stop on event %d was cleared; folding again", self.name, self.stopped_on)
            self.recorded = 0
        elif decision["skip"]:
            log.warning("view %s does without event %d, as the operator decided (`agora skip`)", self.name, self.stopped_on)
            self.skip = self.stopped_on
        else:
            return True
        self.stopped_on, self.failed = 0, (0, 0)
        self._resume()
        return False

    def passed(self) -> None:
        """Once past a recorded poison event (skipped, or folded by fixed code), clear its record."""
        if self.recorded and self.position >= self.recorded:
            assert self.stops is not None
            self.stops.clear(self.name)
            self.recorded = 0

    def _resume(self) -> None:
        self.view.discard()
        try:
            self.view.generation = self.view.current_generation()  # a rebuild may have switched it meanwhile
            self.position = self.view.max_tracking_id(self.app.name) or 0
        except redis.RedisError:
            pass


def rebuild(app: Application[Any], fold: type[Fold], view: RedisView, stop: threading.Event | None = None) -> Follower | None:
    """Fold the whole log into `view`, a fresh generation, then switch readers to it; its follower,
    at the view's position, or None if `stop` was set first (nothing switched). Raises `FoldFailed`
    (nothing switched) if the fold fails on an event."""
    view.mark_fold(fold.version)
    follower = Follower(app, fold(view))
    # Read before the head, so a live view past it is past the log for good (the log lost events): the rebuilt
    # one replaces it, where otherwise it waits to catch up with it, and would wait forever.
    live = view.live_position(app.name)
    wrong = live > (app.recorder.max_notification_id() or 0)
    with collector_paused():
        while not (stop and stop.is_set()):
            follower.catch_up(stop=stop)
            if view.switch(app.name, over_wrong=wrong):
                return follower
    return None


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
            if bell := r.bell:  # None while standing by
                bell.ring()
        for t in self._threads:
            t.join()

    def close(self) -> None:
        """Stop, and close what the workers were given: their applications and Redis clients."""
        self.stop()
        for app in {r.app for r in self.runners}:
            app.close()
        for client in {f.view.redis for f in self.followers}:
            client.close()
