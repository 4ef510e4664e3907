"""Idempotency-Key: a retried POST returns the first result and records nothing new.

Follows the IETF httpapi Idempotency-Key draft: the same key with another body is a 422,
the same key while the first request is still running is a 409. Keys live in Redis for a day.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from api.problems import problem


class _Entry(msgspec.Struct):
    fingerprint: str
    body: bytes | None = None


def _fingerprint(request: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).hexdigest()


class Idempotency:
    def __init__(self, client: Any, prefix: str, ttl_seconds: int) -> None:
        self.redis = client
        self.prefix = f"{prefix}:idempotency"
        self.ttl = ttl_seconds

    def _key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
        return f"{self.prefix}:{digest}"

    async def begin(self, scope: str, key: str, request: Any) -> bytes | None:
        """Reserve the key for this request; returns the stored answer if it was already given."""
        fingerprint = _fingerprint(request)
        redis_key = self._key(scope, key)
        if await self.redis.set(redis_key, msgspec.json.encode(_Entry(fingerprint)), nx=True, ex=self.ttl):
            return None
        stored = await self.redis.get(redis_key)
        entry = msgspec.json.decode(stored, type=_Entry) if stored else _Entry(fingerprint)
        if entry.fingerprint != fingerprint:
            raise problem(
                422, "idempotency-key-reused", "Idempotency key reused",
                "This Idempotency-Key was used with a different request body.", field="Idempotency-Key",
            )
        if entry.body is None:
            raise problem(
                409, "idempotency-key-in-use", "Request in progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                headers={"Retry-After": "1"}, field="Idempotency-Key",
            )
        return entry.body

    async def finish(self, scope: str, key: str, request: Any, body: bytes) -> None:
        await self.redis.set(self._key(scope, key), msgspec.json.encode(_Entry(_fingerprint(request), body)), ex=self.ttl)

    async def release(self, scope: str, key: str) -> None:
        """Forget a reservation whose request recorded nothing, so a corrected retry can use the key."""
        await self.redis.delete(self._key(scope, key))
