"""What a fold writes to, and a plain in-memory one: one fold for the live view, a rebuild, a replay and a report.

A projection's fold sees a view as a few named hashes, sets and sorted sets (its "suffixes"),
changed with the tracking position of the event that changed them, and can read back a hash or a
set it wrote before. `State` is that contract. The Redis writer (projections.view) implements it
for the live view and its rebuilds; `Memory` implements it with dicts, for a point-in-time replay
(`replay`), a report, or a test, and holds exactly the bytes the Redis view holds.
"""

from __future__ import annotations

import gc
import inspect
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import resolve_topic

from domain.core import read_log

if TYPE_CHECKING:
    from eventsourcing.application import Application

POSITION = "position"  # the hash of positions, by application: where the view stands in each log


class State(TrackingRecorder):
    """The operations of a fold. Every change records its event's position (`insert_tracking`). Values are text."""

    @abstractmethod
    def hset(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        """Set fields of a hash."""

    @abstractmethod
    def hcreate(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        """Set the fields of a hash that did not exist yet (a writer need not read it back later)."""

    @abstractmethod
    def hincrby(self, tracking: Tracking, suffix: str, field: str, amount: int = 1) -> None:
        """Add to a field of a hash (a field is either counted or set, never both)."""

    @abstractmethod
    def sadd(self, tracking: Tracking, suffix: str, *members: str) -> None:
        """Add members to a set."""

    @abstractmethod
    def zadd(self, tracking: Tracking, suffix: str, member: str, score: float) -> None:
        """Add a member to a sorted set, or move it to a new score."""

    @abstractmethod
    def zrem(self, tracking: Tracking, suffix: str, member: str) -> None:
        """Remove a member from a sorted set."""

    @abstractmethod
    def hash(self, suffix: str) -> Mapping[str, str]:
        """A hash as the events folded so far left it, decoded (empty if there is none); read-only."""

    @abstractmethod
    def members(self, suffix: str) -> frozenset[str]:
        """A set as the events folded so far left it, decoded."""


class Fold(Projection[State]):
    """A view's fold. Its `version` names what it writes: a release that changes that bumps it, and
    a follower that finds its view written by another version rebuilds it (workers.follower)."""

    version: ClassVar[int] = 1

    def handlers(self) -> dict[str, Callable[[Any, Tracking], None]]:
        """The fold's method for each topic it subscribes to, bound: found once per topic, where calling
        `process_event` dispatches on every event (a sixteenth of a rebuild's time went to that)."""
        process = self.process_event  # the first look registers the methods the class deferred
        dispatcher = getattr(inspect.getattr_static(self, "process_event"), "dispatcher", None)
        if dispatcher is None:  # a plain method (a subclass's, around the fold's): it is called for every topic
            return dict.fromkeys(self.topics, process)
        return {topic: dispatcher.dispatch(resolve_topic(topic)).__get__(self) for topic in self.topics}


class Memory(State):
    """A view in plain dicts, byte for byte what the Redis view holds; no Redis anywhere."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.sets: dict[str, set[bytes]] = {}
        self.sorted_sets: dict[str, dict[bytes, float]] = {}

    # Writes

    def hset(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        if fields:
            self.hashes.setdefault(suffix, {}).update((k.encode(), v.encode()) for k, v in fields.items())
        self.insert_tracking(tracking)

    def hcreate(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        self.hset(tracking, suffix, **fields)

    def hincrby(self, tracking: Tracking, suffix: str, field: str, amount: int = 1) -> None:
        h = self.hashes.setdefault(suffix, {})
        h[field.encode()] = str(int(h.get(field.encode(), b"0")) + amount).encode()
        self.insert_tracking(tracking)

    def sadd(self, tracking: Tracking, suffix: str, *members: str) -> None:
        if members:
            self.sets.setdefault(suffix, set()).update(m.encode() for m in members)
        self.insert_tracking(tracking)

    def zadd(self, tracking: Tracking, suffix: str, member: str, score: float) -> None:
        self.sorted_sets.setdefault(suffix, {})[member.encode()] = float(score)
        self.insert_tracking(tracking)

    def zrem(self, tracking: Tracking, suffix: str, member: str) -> None:
        z = self.sorted_sets.get(suffix, {})
        z.pop(member.encode(), None)
        if not z:  # Redis drops an empty key
            self.sorted_sets.pop(suffix, None)
        self.insert_tracking(tracking)

    def insert_tracking(self, tracking: Tracking) -> None:
        self.hashes.setdefault(POSITION, {})[tracking.application_name.encode()] = str(tracking.notification_id).encode()

    # Reads: what the fold reads back, and what Redis would answer

    def hash(self, suffix: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.hgetall(suffix).items()}

    def members(self, suffix: str) -> frozenset[str]:
        return frozenset(m.decode() for m in self.sets.get(suffix, ()))

    def max_tracking_id(self, application_name: str) -> int | None:
        position = self.hashes.get(POSITION, {}).get(application_name.encode())
        return int(position) if position is not None else None

    def position(self, application_name: str) -> int:
        return self.max_tracking_id(application_name) or 0

    def hgetall(self, suffix: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(suffix, {}))

    def smembers(self, suffix: str) -> set[bytes]:
        return set(self.sets.get(suffix, ()))

    def zrange(self, suffix: str) -> list[tuple[bytes, float]]:
        """A sorted set's members with their scores, in Redis's order (by score, then member)."""
        return sorted(self.sorted_sets.get(suffix, {}).items(), key=lambda ms: (ms[1], ms[0]))

    def dump(self) -> dict[str, object]:
        """Every key by suffix: a hash as its sorted items, a set sorted, a sorted set in order."""
        out: dict[str, object] = {suffix: sorted(h.items()) for suffix, h in self.hashes.items() if h}
        out.update((suffix, sorted(s)) for suffix, s in self.sets.items() if s)
        out.update((suffix, self.zrange(suffix)) for suffix in self.sorted_sets)
        return out


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while folding a whole log: a fold keeps a small object
    per response (a report's) or case (a view's mirror) until it ends, and the collector would walk
    them all again and again, for nothing (folds make no cycles); it took a third of a report's fold."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def replay(app: Application[Any], projection_class: type[Projection[Any]], upto: int | None = None, batch: int = 1000) -> Memory:
    """The view as it stood at position `upto` in the log (default: the head now), folded in memory.

    Reads only the events the projection subscribes to; the view's position is `upto` all the same.
    """
    memory = Memory()
    projection = projection_class(memory)
    head = (app.recorder.max_notification_id() or 0) if upto is None else upto
    with collector_paused():
        for position, e in read_log(app, projection.topics, upto=head, batch=batch):
            projection.process_event(e, Tracking(app.name, position))
    if head:
        memory.insert_tracking(Tracking(app.name, head))
    return memory
