"""Stored topics stay put when code moves.

Every stored event names its class by topic (`module:Class.Event`), and each aggregate's
creation event names the aggregate's class too. Those topics are in the log for good, so a
class that moves keeps the topic it was first stored under: `stored_as` pins it, for writing
(eventsourcing's `get_topic` honours a class's `TOPIC`) and for reading (`register_topic`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from eventsourcing.utils import register_topic

T = TypeVar("T", bound=type)
PINNED: list[type] = []  # every class pinned, aggregates and events, as their modules are imported


def stored_as(module: str) -> Callable[[T], T]:
    """Pin the topics of an aggregate class and of its event classes to `module`."""

    def pin(aggregate: T) -> T:
        for cls in (aggregate, *(v for v in vars(aggregate).values() if isinstance(v, type))):
            cls.TOPIC = f"{module}:{cls.__qualname__}"
            register_topic(cls.TOPIC, cls)
            PINNED.append(cls)
        return aggregate

    return pin
