"""The one application behind every context: one event store, one notification log.

A single log gives auditors one total order of everything that happened and gives readers one
position space for `?after=`. The contexts (consultations, staff, review, signups) each keep
their use cases in a module of their own and share only what is here: finding an aggregate,
recording aggregates and returning the log position, retrying on a concurrent write, reading
the log.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Notification
from eventsourcing.utils import get_topic

from domain.errors import UnreadableEvent

A = TypeVar("A", bound=Aggregate)

ATTEMPTS = 30


def read_log(
    app: Application[Any], topics: Sequence[str] = (), after: int = 0, upto: int | None = None, batch: int = 1000,
    unreadable: Callable[[Notification], Any] | None = None,
) -> Iterator[tuple[int, Any]]:
    """The log's events of `topics` (all if none) past position `after` and up to `upto` (the head
    if None), oldest first, each with its position; the store filters the topics, `batch` at a time.
    An event that cannot be decoded raises UnreadableEvent, or given `unreadable`, is what it makes of the record."""
    decode = app.mapper.to_domain_event
    position = after
    while upto is None or position < upto:
        notifications = app.recorder.select_notifications(start=position, limit=batch, stop=upto, topics=topics, inclusive_of_start=False)
        for n in notifications:
            try:
                if not isinstance(n.originator_id, UUID):  # kept as text by the store: written outside Agora
                    raise ValueError(f"its aggregate id {n.originator_id!r} is no UUID")
                event = decode(n)
            except Exception as e:  # noqa: BLE001 - whatever bytes this code cannot read make the decoder raise
                if unreadable is None:
                    raise UnreadableEvent(n.id, e) from e
                event = unreadable(n)
            yield n.id, event
        if len(notifications) < batch:
            return
        position = notifications[-1].id


class Agora(Application[UUID]):
    name = "agora"  # names the log in every view's tracking position: never change it
    # Consultations are read on every submission batch; the cache fast-forwards from
    # the store, so a close recorded by another process is still seen.
    env = {"AGGREGATE_CACHE_MAXSIZE": "256"}

    def find(self, aggregate_id: UUID, cls: type[A]) -> A | None:
        """The aggregate, or None if there is none of that class with this id."""
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def record(self, *aggregates: Aggregate) -> int | None:
        """Save the aggregates' new events together; the position of the last, or None if there were none."""
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def retrying(self, command: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        """Run a command on fresh copies of its aggregates and save them together, again if another
        writer got there first (optimistic concurrency). Confirmations of one session all write to
        its seats: under a rush they collide, and back off at random so that each gets its turn."""
        for attempt in itertools.count():
            aggregates = command()
            try:
                self.save(*aggregates)
                return aggregates
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 7)))  # at most a quarter second

    def recorded_at(self, aggregate_id: UUID, version: int) -> datetime:
        """When an aggregate's event of this version was recorded."""
        (recorded,) = self.events.get(aggregate_id, gt=version - 1, lte=version)
        return recorded.timestamp

    def select_events(self, *classes: type) -> Iterator[Any]:
        """Every recorded event of these classes, oldest first."""
        return (e for _, e in read_log(self, [get_topic(cls) for cls in classes]))

    def head(self) -> int:
        """The position of the last event in the log (0 if empty)."""
        return self.recorder.max_notification_id() or 0
