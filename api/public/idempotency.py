"""Idempotency-Key: a retried POST returns the first result and records nothing new.

Follows the IETF httpapi Idempotency-Key draft: the same key with another body is a 422,
the same key while the first request is still running is a 409. Answers live in Redis for a
day, sealed under a key derived from the Idempotency-Key itself: Redis never holds a receipt
that only the client who chose the key can read.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.exceptions import RedisError

from api.problems import problem


class _Entry(msgspec.Struct):
    fingerprint: str
    body: bytes | None = None


RESERVATION_SECONDS = 60
log = logging.getLogger(__name__)


def _cipher(key: str) -> AESGCM:
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=b"agora idempotency").derive(key.encode()))


def _seal(key: str, body: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + _cipher(key).encrypt(nonce, body, None)


def _open(key: str, sealed: bytes) -> bytes:
    return _cipher(key).decrypt(sealed[:12], sealed[12:], None)


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
        # A short reservation: a process that dies before answering frees the key soon.
        if await self.redis.set(redis_key, msgspec.json.encode(_Entry(fingerprint)), nx=True, ex=RESERVATION_SECONDS):
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
        return _open(key, entry.body)

    async def finish(self, scope: str, key: str, request: Any, body: bytes) -> None:
        """Remember the answer; if Redis fails now, the answer still goes out (a retry may then record again)."""
        entry = _Entry(_fingerprint(request), _seal(key, body))
        try:
            await self.redis.set(self._key(scope, key), msgspec.json.encode(entry), ex=self.ttl)
        except RedisError:
            log.exception("could not remember an idempotent answer")

    async def release(self, scope: str, key: str) -> None:
        """Forget a reservation whose request recorded nothing, so a corrected retry can use the key."""
        await self.redis.delete(self._key(scope, key))
