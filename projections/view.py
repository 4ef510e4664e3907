"""Materialised views in Redis, written exactly once per event.

A follower hands a view a batch of events; the view folds their changes together (counts
summed, fields and memberships set, last change winning) and writes them with the batch's
last position in one Lua script. Redis runs a script atomically, and the script refuses a
batch unless the view is exactly where the batch was read from, so a crash, a replay or a
Redis that lost data never counts an event twice or skips one.

Every key of a view shares the hash tag `{name}`, so a view's script touches one slot and
stays atomic on Redis Cluster. Keys live under a generation: a rebuild writes a fresh
generation beside the live one and switches over only once it has caught up, so readers
never see a half-built view.

What a view holds is decided by its projection's fold (projections.state describes what a fold
may do); this module only writes and reads it. The views themselves, writer and reader, are in
projections.live.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import Future, wait
from itertools import chain
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec
import redis
from eventsourcing.persistence import Tracking

from projections.background import background
from projections.state import POSITION, State

# KEYS: generation, position, then the keys the batch changes. ARGV: generation, must-be-current,
# application, the position the batch was read from and its last notification, then the batch's
# commands as one MessagePack array (command, key index, nargs, args...)*: packed by msgspec and
# unpacked by Redis's cmsgpack in C, rather than thousands of arguments each packed by the client.
# Applies the batch only if the view is exactly where the batch was read from, so nothing is
# applied twice or skipped (say, after Redis lost data); either way returns the view's position
# after it (or -1 if the generation is no longer current).
_APPLY = """
if ARGV[2] == '1' and (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local position = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if position ~= tonumber(ARGV[4]) then return position end
local batch = cmsgpack.unpack(ARGV[6])
local i = 1
while i <= #batch do
  local n = batch[i + 2]
  redis.call(batch[i], KEYS[batch[i + 1]], unpack(batch, i + 3, i + 2 + n))
  i = i + 3 + n
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
return tonumber(ARGV[5])
"""

# Switch readers and writers to a rebuilt generation, if it is at least as far along as the live one, or
# ARGV[4] is '1' (the live one was found past the log's head: it is wrong, the log lost events).
_SWITCH = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0') < old and ARGV[4] ~= '1' then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# Expire the keys given (an old generation's), in 30 seconds.
_EXPIRE = "for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, 30) end"
_RETIRE_PAGE = 10_000  # keys scanned per round trip when retiring a generation

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

_PACK = msgspec.msgpack.Encoder().encode
_ARGS = 1000  # arguments per command in a batch; a longer command is sent in parts


FOLD = "fold"  # a generation's key holding the version of the fold that wrote it


class StaleGeneration(Exception):
    """The view was switched to a rebuilt generation; resume from its position."""


class Keys:
    """Where a view lives: `{prefix}:{{name}}:{generation}:{suffix}`."""

    def __init__(self, prefix: str, name: str) -> None:
        self.prefix = prefix
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


class RedisView(State):
    """A view's writer. Projections stage changes; a follower calls `flush()` once per batch.

    What the fold reads back (`hash`, `members`) comes from a mirror: read from Redis once, with
    the changes staged since applied, and kept in step with what is staged after.
    """

    name: ClassVar[str]
    MIRRORED = 10_000  # hashes and sets a live view keeps in memory between batches; the rest are read back when needed
    REBUILD_MIRRORED = 500_000  # a rebuild's: it reads back what it wrote from memory, not from Redis

    def __init__(self, client: redis.Redis, prefix: str, generation: int | None = None) -> None:
        self.redis = client
        self.keys = Keys(prefix, self.name)
        # A rebuild writes to its own generation; a live view writes to whichever is current.
        self.pinned = generation is not None
        self.generation = generation if self.pinned else self.current_generation()
        self.mirrored = self.REBUILD_MIRRORED if self.pinned else self.MIRRORED
        self._apply = client.register_script(_APPLY)
        self._sending: tuple[Future[int], int] | None = None  # a rebuild's batch Redis is applying, and its last position
        self.retiring: Future[int] | None = None  # after a rebuild's switch: expiring the generation it replaced
        self.discard()

    def hset(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        self._fields.setdefault(suffix, {}).update(fields)
        if suffix in self._hashes:
            self._hashes[suffix].update(fields)
        self.insert_tracking(tracking)

    def hcreate(self, tracking: Tracking, suffix: str, **fields: str) -> None:
        self._fields.setdefault(suffix, {}).update(fields)
        self._hashes[suffix] = fields  # nothing to read back
        self.insert_tracking(tracking)

    def hincrby(self, tracking: Tracking, suffix: str, field: str, amount: int = 1) -> None:
        self._counts[suffix][field] += amount
        if suffix in self._hashes:
            mirrored = self._hashes[suffix]
            mirrored[field] = str(int(mirrored.get(field, 0)) + amount)
        self.insert_tracking(tracking)

    def sadd(self, tracking: Tracking, suffix: str, *members: str) -> None:
        if members:
            self._members.setdefault(suffix, set()).update(members)
            if suffix in self._sets:
                self._sets[suffix] = self._sets[suffix].union(members)
        self.insert_tracking(tracking)

    def zadd(self, tracking: Tracking, suffix: str, member: str, score: float) -> None:
        self._scores[(suffix, member)] = score
        self.insert_tracking(tracking)

    def zrem(self, tracking: Tracking, suffix: str, member: str) -> None:
        self._scores[(suffix, member)] = None
        self.insert_tracking(tracking)

    def insert_tracking(self, tracking: Tracking) -> None:
        self._last = tracking

    def hash(self, suffix: str) -> Mapping[str, str]:
        if suffix not in self._hashes:
            self._wait()
            stored = self.redis.hgetall(self.keys.key(self.generation, suffix))
            mirrored = {k.decode(): v.decode() for k, v in stored.items()}
            mirrored.update(self._fields.get(suffix, {}))
            for field, n in self._counts.get(suffix, {}).items():
                mirrored[field] = str(int(mirrored.get(field, 0)) + n)
            self._hashes[suffix] = mirrored
        return MappingProxyType(self._hashes[suffix])  # read-only, not copied: folds read many

    def members(self, suffix: str) -> frozenset[str]:
        if suffix not in self._sets:
            self._wait()
            stored = self.redis.smembers(self.keys.key(self.generation, suffix))
            self._sets[suffix] = frozenset(m.decode() for m in stored).union(self._members.get(suffix, ()))
        return self._sets[suffix]

    def flush(self, start: int) -> int | None:
        """Write the batch read from position `start` and its last position at once; returns the view's position.

        Any other answer than the batch's last position means the batch was refused: the
        caller resumes from the position returned. A rebuild's batch (a pinned generation) is
        applied by Redis while the fold goes on with the next one: this returns at once, with
        the batch's last position, after taking the answer to the batch before (`settle`).
        """
        if self._last is None:
            return None
        keys, args, last = self._packed(start)
        self._unstage()
        if not self.pinned:
            return self._landed(lambda: self._run(keys, args), last)
        before = self.settle()
        if before is not None and before != start:
            return before  # the batch before was refused, so this one would be
        self._sending = (background(self._run, keys, args), last)
        return last

    def settle(self) -> int | None:
        """Wait for the rebuild's batch Redis is applying; the view's position after it (None: none sent)."""
        if self._sending is None:
            return None
        sending, last = self._sending
        self._sending = None
        return self._landed(sending.result, last)

    def _packed(self, start: int) -> tuple[list[str], list[Any], int]:
        """The staged changes as the script's keys and arguments, and the batch's last position."""
        assert self._last is not None
        added: defaultdict[str, list[str]] = defaultdict(list)
        removed: defaultdict[str, list[str]] = defaultdict(list)
        for (suffix, member), score in self._scores.items():
            if score is None:
                removed[suffix].append(member)
            else:
                added[suffix] += (score, member)  # a number: Lua passes it on to Redis with all its digits
        commands: list[tuple[str, str, list[Any]]] = [
            *(("HSET", suffix, [*chain.from_iterable(fields.items())]) for suffix, fields in self._fields.items()),
            *(("HINCRBY", suffix, [field, str(n)]) for suffix, counts in self._counts.items() for field, n in counts.items()),
            *(("SADD", suffix, sorted(members)) for suffix, members in self._members.items()),
            *(("ZADD", suffix, scored) for suffix, scored in added.items()),
            *(("ZREM", suffix, members) for suffix, members in removed.items()),
        ]
        base = self.keys.key(self.generation, "")
        keys = [self.keys.generation, base + POSITION]
        batch: list[Any] = []
        for command, suffix, params in commands:
            keys.append(base + suffix)
            if len(params) <= _ARGS:
                batch += (command, len(keys), len(params), *params)
                continue
            for i in range(0, len(params), _ARGS):  # Lua's unpack takes a few thousand values at most
                part = params[i : i + _ARGS]
                batch += (command, len(keys), len(part), *part)
        last = self._last.notification_id
        args = [self.generation, "0" if self.pinned else "1", self._last.application_name, start, last, _PACK(batch)]
        return keys, args, last

    def _run(self, keys: list[str], args: list[Any]) -> int:
        return int(self._apply(keys=keys, args=args))

    def _landed(self, answer: Callable[[], int], last: int) -> int:
        """The view's position after a batch ending at `last`, from Redis's `answer`."""
        try:
            position = answer()
        except Exception:
            self.forget()
            raise
        if position != last or len(self._hashes) + len(self._sets) > self.mirrored:
            self.forget()  # did not land as staged; or written now, so safe to forget
        if position == -1:
            self.generation = self.current_generation()
            raise StaleGeneration(f"view {self.name} moved to generation {self.generation}")
        return position

    def _wait(self) -> None:
        """Before reading Redis: let the batch in flight land (its answer is taken by `settle`)."""
        if self._sending is not None:
            wait([self._sending[0]])

    def forget(self) -> None:
        """Drop what the view remembers in memory of its contents: a batch did not land as staged."""
        self._hashes: dict[str, dict[str, str]] = {}
        self._sets: dict[str, frozenset[str]] = {}

    def discard(self) -> None:
        """Drop staged changes that were not written (the follower re-reads them), and the mirror that saw them."""
        self._unstage()
        self.forget()

    def _unstage(self) -> None:
        self._fields: dict[str, dict[str, str]] = {}
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._members: dict[str, set[str]] = {}
        self._scores: dict[tuple[str, str], float | None] = {}  # sorted-set membership, last change wins
        self._last: Tracking | None = None

    def max_tracking_id(self, application_name: str) -> int | None:
        position = self.redis.hget(self.keys.key(self.generation, POSITION), application_name)
        return int(position) if position is not None else None

    # Rebuilds

    @classmethod
    def new_generation(cls, client: redis.Redis, prefix: str) -> RedisView:
        return cls(client, prefix, generation=int(client.incr(Keys(prefix, cls.name).generations)))

    def switch(self, application_name: str, over_wrong: bool = False) -> bool:
        """Make this rebuilt generation current if it has caught up with the live one (or `over_wrong`: the live
        one is past the log's head); then expire the old one, in `retiring`."""
        self.settle()
        old = self.current_generation()
        switched = self.redis.eval(
            _SWITCH,
            3,
            self.keys.generation,
            self.keys.key(old, POSITION),
            self.keys.key(self.generation, POSITION),
            old,
            self.generation,
            application_name,
            "1" if over_wrong else "0",
        )
        if switched == 1:  # readers have moved: the old generation's keys are expired meanwhile
            self.retiring = background(self._retire, old)
        return switched == 1

    def _retire(self, old: int) -> int:
        # Expire rather than delete, so a read that began on the old generation still finishes: a page
        # of keys at a time, each page one script call (not one command per key built by the client).
        cursor, expired = None, 0
        while cursor != 0:
            cursor, keys = self.redis.scan(cursor or 0, match=self.keys.key(old, "*"), count=_RETIRE_PAGE)
            if keys:
                self.redis.eval(_EXPIRE, len(keys), *keys)
                expired += len(keys)
        return expired

    def fold_version(self) -> int | None:
        """The version of the fold that wrote this generation (None: not marked, from before versions or empty)."""
        version = self.redis.get(self.keys.key(self.generation, FOLD))
        return int(version) if version is not None else None

    def mark_fold(self, version: int) -> None:
        self.redis.set(self.keys.key(self.generation, FOLD), version)

    def rebuilt(self) -> RedisView:
        """A fresh generation of this view, for a rebuild."""
        return type(self).new_generation(self.redis, self.keys.prefix)

    def live_position(self, application_name: str) -> int:
        """The position of the generation readers use now."""
        return int(self.redis.hget(self.keys.key(self.current_generation(), POSITION), application_name) or 0)

    def current_generation(self) -> int:
        """The generation readers and live writers use now (a rebuild's switch moves it on)."""
        return int(self.redis.get(self.keys.generation) or 0)
