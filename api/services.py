"""What the handlers use, built once per process: the application, Redis readers, group commit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from api.idempotency import Idempotency
from api.settings import Settings
from api.submissions import GroupCommit
from domain.application import Agora, Submission
from projections.form import FormReader
from projections.stats import StatsReader
from projections.view import ViewReader


class Services:
    def __init__(self, agora: Agora, client: Any, settings: Settings) -> None:
        self.agora = agora
        self.settings = settings
        self.forms = FormReader(client, settings.redis_prefix)
        self.stats = StatsReader(client, settings.redis_prefix)
        self.commits = GroupCommit(agora)
        self.idempotency = Idempotency(client, settings.redis_prefix, settings.idempotency_ttl_seconds)

    async def submit(self, slug: str, answers: dict[str, Any], idempotency_key: str | None) -> bytes:
        """Record a response; the receipt's JSON. A repeated key returns the first receipt."""
        request = {"answers": answers}
        if idempotency_key is not None:
            stored = await self.idempotency.begin(slug, idempotency_key, request)
            if stored is not None:
                return stored
        try:
            receipt = await self.commits.submit(Submission(slug, answers))
        except BaseException:
            if idempotency_key is not None:
                await self.idempotency.release(slug, idempotency_key)
            raise
        body = msgspec.json.encode(receipt)
        if idempotency_key is not None:
            await self.idempotency.finish(slug, idempotency_key, request, body)
        return body

    async def caught_up(self, view: ViewReader, position: int) -> bool:
        """Whether `view` reached `position` within the configured wait (read-your-writes)."""
        deadline = time.monotonic() + self.settings.view_wait_seconds
        pause = 0.002
        while await view.position(self.agora.name) < position:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True
