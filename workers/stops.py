"""Where followers stopped on an event their fold fails on (a poison event), and the operator's decisions.

A follower that fails on one event a few times records it here and stops that view only;
`agora status` shows the record, `agora rebuild VIEW` (after a fix) clears it, and
`agora skip VIEW POSITION` decides the view does without that one event (workers/follower.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis


class Stops:
    """Which views stopped on an event their fold fails on, and the operator's decisions on them.

    One Redis hash beside the views, a field per view: rebuildable state like them (a Redis that
    lost it has followers try the event again, and record it again).
    """

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.key = f"{prefix}:stopped"

    def record(self, view: str, position: int, error: str, attempts: int) -> None:
        stop = {"position": position, "error": error, "attempts": attempts, "at": time.time(), "skip": False}
        self.redis.hset(self.key, view, json.dumps(stop))

    def get(self, view: str) -> dict[str, Any] | None:
        found = self.redis.hget(self.key, view)
        return json.loads(found) if found else None

    def all(self) -> dict[str, dict[str, Any]]:
        return {k.decode(): json.loads(v) for k, v in self.redis.hgetall(self.key).items()}

    def clear(self, view: str) -> None:
        self.redis.hdel(self.key, view)

    def skip(self, view: str, position: int) -> None:
        """Decide that `view` does without the event at `position`: only the one it stopped on."""
        stop = self.get(view)
        if stop is None:
            raise ValueError(f"view {view} is not stopped on any event")
        if stop["position"] != position:
            raise ValueError(f"view {view} stopped on event {stop['position']}, not {position}")
        self.redis.hset(self.key, view, json.dumps({**stop, "skip": True}))
