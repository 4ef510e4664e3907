"""Stored topics stay put when code moves.

Every stored event names its class by topic (`module:Class.Event`), and each aggregate's
creation event names the aggregate's class too. Those topics are in the log for good, so a
class that moves keeps the topic it was first stored under: `stored_as` pins it, for writing
(eventsourcing's `get_topic` honours a class's `TOPIC`) and for reading (`register_topic`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.utils import register_topic

T = TypeVar("T", bound=type)
PINNED: list[type] = []  # every class pinned, aggregates and events, as their modules are imported


def every_pinned() -> list[type]:
    """Every class pinned in the domain, its modules imported first (a topic such as `domain.frame:…`
    names no module: it resolves only once the class that pinned it is imported)."""
    import domain

    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    return PINNED


def stored_as(module: str) -> Callable[[T], T]:
    """Pin the topics of an aggregate class and of its event classes to `module`."""

    def pin(aggregate: T) -> T:
        for cls in (aggregate, *(v for v in vars(aggregate).values() if isinstance(v, type))):
            cls.TOPIC = f"{module}:{cls.__qualname__}"
            register_topic(cls.TOPIC, cls)
            PINNED.append(cls)
        return aggregate

    return pin
