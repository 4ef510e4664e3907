"""Rate limits counted in one atomic step in Redis, so that they hold across API processes.

litestar's RateLimitMiddleware reads a client's count from its store and writes it back, locked only
within its own process: the API processes of `agora serve` overwrote each other's counts and let more
through than the limit. Here Redis counts, in a script, and litestar makes the answer as before: its
headers, and a 429 (a problem with `Retry-After`, see api.problems) over the limit.

While Redis cannot count (down, or hung: the API's client gives up on a reply after a few seconds),
respondents' requests pass uncounted for `OUTAGE` seconds rather than fail: the event store, the
only truth, may well be up, and a retried submission is decided there. Staff sign-in fails closed
instead: its limit stands between a guesser and the passwords, and staff work needs Redis's views anyway.
A process too busy to count is not Redis down: with no connection free in time, or with its event loop
running late (a reply that came but was not read in time), the request is refused, never let through,
or a flood of requests would turn the limits off.
"""

from __future__ import annotations

import asyncio
import logging
import math
from time import monotonic, time
from typing import Any

from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import DURATION_VALUES, CacheObject, RateLimitMiddleware
from litestar.stores.redis import RedisStore
from litestar.types import Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, RedisError  # noqa: A004 - redis-py's, not the builtin

log = logging.getLogger(__name__)
OUTAGE = 15.0  # seconds requests pass uncounted after Redis failed to count one (one log line each time)
BEAT, LATE = 0.1, 0.5  # seconds between the event loop watch's beats; how late a beat shows the process busy

# KEYS[1]: the bucket; ARGV: the limit, the window in seconds. Counts the request unless the bucket
# is full (a refused request is not counted, as in litestar's); the window opens with its first request.
_TAKE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local taken = 0
if count < tonumber(ARGV[1]) then
    count = redis.call('INCR', KEYS[1])
    if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
    taken = 1
end
return {taken, count, redis.call('PTTL', KEYS[1])}
"""


class CountingStore(RedisStore):
    """litestar's Redis store, and a counter per key taken atomically; and whether Redis could count lately."""

    __slots__ = ("_beat", "_late_at", "_take", "_uncounted_until")

    def __init__(self, redis: Redis, **kwargs: Any) -> None:
        super().__init__(redis, **kwargs)
        self._take = redis.register_script(_TAKE)
        self._uncounted_until = 0.0  # monotonic time until which requests that may pass uncounted do
        self._beat = self._late_at = -math.inf  # when watch() last beat, and last beat late

    @property
    def uncounting(self) -> bool:
        return monotonic() < self._uncounted_until

    async def watch(self) -> None:
        """Beat every BEAT seconds, noting when this process's event loop ran late (run it while the app serves)."""
        while True:
            due = monotonic() + BEAT
            await asyncio.sleep(BEAT)
            self._beat = monotonic()
            if self._beat - due > LATE:
                self._late_at = self._beat

    def uncount(self, e: RedisError, since: float) -> bool:
        """Whether Redis itself failed to count a request sent at `since` (`e`): then requests that may pass
        uncounted do, for OUTAGE seconds. Not when this process was too busy: no connection was free in time
        (redis-py's pool says so with a ConnectionError caused by its timeout), or its loop ran late meanwhile
        or is late now (a reply not read in time, or watch() not running)."""
        pool_timeout = isinstance(e, ConnectionError) and isinstance(e.__cause__, TimeoutError)
        if pool_timeout or self._late_at >= since or monotonic() - self._beat > BEAT + LATE:
            return False
        if not self.uncounting:  # one line as the limits open, not one per request failing meanwhile
            log.warning("rate limits: Redis cannot count requests (%s: %s); they pass uncounted for %g s", type(e).__name__, e, OUTAGE)
        self._uncounted_until = monotonic() + OUTAGE
        return True

    async def take(self, key: str, limit: int, seconds: int) -> tuple[bool, int, int]:
        """Count one request in `key`'s window of `seconds` if fewer than `limit` are counted:
        whether it was, the count, and the whole seconds left of the window (rounded up)."""
        taken, count, ms = await self._take(keys=[self._make_key(key)], args=[limit, seconds])
        return bool(taken), int(count), math.ceil(max(int(ms), 0) / 1000)


class AtomicRateLimit(RateLimitMiddleware):
    """litestar's middleware, counting in a CountingStore instead of reading and writing a history."""

    open_when_down = False  # whether a request passes uncounted while Redis cannot count it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        store = self.config.get_store_from_app(app)
        assert isinstance(store, CountingStore)
        if await self.should_check_request(request=request) and not (self.open_when_down and store.uncounting):
            key, sent = self.cache_key_from_request(request), monotonic()
            try:
                taken, count, left = await store.take(key, self.max_requests, DURATION_VALUES[self.unit])
            except RedisError as e:
                if not (self.open_when_down and store.uncount(e, sent)):
                    raise
                await self.app(scope, receive, send)
                return
            # What litestar makes its headers of: a history as long as the count, and when the window ends.
            counted = CacheObject(history=[0] * count, reset=int(time()) + left)
            headers = self.config.set_rate_limit_headers
            if not taken:
                raise TooManyRequestsException(headers=self.create_response_headers(cache_object=counted) if headers else None)
            if headers:
                send = self.create_send_wrapper(send=send, cache_object=counted)
        await self.app(scope, receive, send)


class OpenWhenRedisDown(AtomicRateLimit):
    open_when_down = True

