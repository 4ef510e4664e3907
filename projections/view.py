"""Materialised views in Redis, written exactly once per event.

A view's changes are staged per event and written together with its tracking position by
one Lua script: Redis runs a script atomically, and the script skips every staged change
whose event is at or below the recorded position, so a crash or a replay never counts an
event twice.

Every key of a view shares the hash tag `{name}`, so a view's script touches one slot and
stays atomic on Redis Cluster. Keys live under a generation: a rebuild writes a fresh
generation beside the live one and switches over only once it has caught up, so readers
never see a half-built view.
"""

from __future__ import annotations

from typing import Any, ClassVar

import redis
from eventsourcing.persistence import Tracking, TrackingRecorder

_APPLY = """
if ARGV[2] == '1' and (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local position = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
local i, k = 5, 3
while i <= #ARGV do
  local id, n = tonumber(ARGV[i]), tonumber(ARGV[i + 2])
  if id > position then redis.call(ARGV[i + 1], KEYS[k], unpack(ARGV, i + 3, i + 2 + n)) end
  i, k = i + 3 + n, k + 1
end
if tonumber(ARGV[4]) > position then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return 1
"""

# Switch readers and writers to a rebuilt generation, if it is at least as far along as the live one.
_SWITCH = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0') < old then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# Read several keys of the current generation at once: ARGV = base, then (command, suffix, nargs, args...)*.
_READ = """
local g = redis.call('GET', KEYS[1]) or '0'
local out, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 2])
  out[#out + 1] = redis.call(ARGV[i], ARGV[1] .. ':' .. g .. ':' .. ARGV[i + 1], unpack(ARGV, i + 3, i + 2 + n))
  i = i + 3 + n
end
return out
"""

POSITION = "position"


class StaleGeneration(Exception):
    """The view was switched to a rebuilt generation; resume from its position."""


class Keys:
    """Where a view lives: `{prefix}:{{name}}:{generation}:{suffix}`."""

    def __init__(self, prefix: str, name: str) -> None:
        self.base = f"{prefix}:{{{name}}}"
        self.generation = f"{self.base}:generation"
        self.generations = f"{self.base}:generations"

    def key(self, generation: int | str, suffix: str) -> str:
        return f"{self.base}:{generation}:{suffix}"


def pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash from a script's flat HGETALL reply."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


class ViewReader:
    """Reads a view's current generation (asyncio client): several commands, one round trip."""

    def __init__(self, client: Any, prefix: str, name: str) -> None:
        self.keys = Keys(prefix, name)
        self._read = client.register_script(_READ)

    async def position(self, application_name: str) -> int:
        (position,) = await self.read(("HGET", POSITION, (application_name,)))
        return int(position or 0)

    async def read(self, *commands: tuple[str, str, tuple[Any, ...]]) -> list[Any]:
        args: list[Any] = [self.keys.base]
        for command, suffix, params in commands:
            args += [command, suffix, len(params), *params]
        return await self._read(keys=[self.keys.generation], args=args)


class RedisView(TrackingRecorder):
    """A view's writer. Subclasses stage changes with `stage()`; a follower calls `flush()` per batch."""

    name: ClassVar[str]

    def __init__(self, client: redis.Redis, prefix: str, generation: int | None = None) -> None:
        self.redis = client
        self.keys = Keys(prefix, self.name)
        # A rebuild writes to its own generation; a live view writes to whichever is current.
        self.pinned = generation is not None
        self.generation = generation if self.pinned else self._current_generation()
        self._apply = client.register_script(_APPLY)
        self._staged: list[tuple[int, str, str, tuple[Any, ...]]] = []
        self._tracking: Tracking | None = None

    def stage(self, tracking: Tracking, command: str, suffix: str, *args: Any) -> None:
        self._staged.append((tracking.notification_id, command, suffix, args))
        self.insert_tracking(tracking)

    def insert_tracking(self, tracking: Tracking) -> None:
        self._tracking = tracking

    def flush(self) -> None:
        """Write the staged changes and the last tracking position in one script call."""
        if self._tracking is None:
            return
        args: list[Any] = [self.generation, "0" if self.pinned else "1", self._tracking.application_name, self._tracking.notification_id]
        keys = [self.keys.generation, self.keys.key(self.generation, POSITION)]
        for notification_id, command, suffix, params in self._staged:
            args += [notification_id, command, len(params), *params]
            keys.append(self.keys.key(self.generation, suffix))
        self.discard()
        if self._apply(keys=keys, args=args) == -1:
            self.generation = self._current_generation()
            raise StaleGeneration(f"view {self.name} moved to generation {self.generation}")

    def discard(self) -> None:
        """Drop staged changes that were not written (the follower re-reads them)."""
        self._staged, self._tracking = [], None

    def max_tracking_id(self, application_name: str) -> int | None:
        position = self.redis.hget(self.keys.key(self.generation, POSITION), application_name)
        return int(position) if position is not None else None

    # Rebuilds

    @classmethod
    def new_generation(cls, client: redis.Redis, prefix: str) -> RedisView:
        return cls(client, prefix, generation=int(client.incr(Keys(prefix, cls.name).generations)))

    def switch(self, application_name: str) -> bool:
        """Make this rebuilt generation current if it has caught up; retire the old one."""
        old = self._current_generation()
        switched = self.redis.eval(
            _SWITCH,
            3,
            self.keys.generation,
            self.keys.key(old, POSITION),
            self.keys.key(self.generation, POSITION),
            old,
            self.generation,
            application_name,
        )
        if switched == 1:
            self._retire(keep=self.generation)
        return switched == 1

    def _retire(self, keep: int) -> None:
        # Expire rather than delete, so a read that began on the old generation still finishes.
        control = {self.keys.generation, self.keys.generations}
        for key in self.redis.scan_iter(match=f"{self.keys.base}:*", count=1000):
            name = key.decode()
            if name not in control and not name.startswith(f"{self.keys.base}:{keep}:"):
                self.redis.expire(name, 30)

    def _current_generation(self) -> int:
        return int(self.redis.get(self.keys.generation) or 0)
