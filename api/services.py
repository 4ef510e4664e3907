"""What the handlers use, built once per process: the contexts, Redis readers, group commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter
from litestar.security.jwt import JWTAuth
from redis.exceptions import RedisError

from api.problems import problem
from api.public.submissions import GroupCommit
from domain.consultations.service import Submission
from domain.errors import ConsultationNotFound
from projections.live import FormReader, QueueReader, StatsReader
from projections.view import ViewReader
from runtime import System

log = logging.getLogger(__name__)


After = Annotated[
    int | None, QueryParameter(ge=0, description="Answer once the view has processed this notification position")
]


async def wait(services: Services, view: ViewReader, after: int | None) -> None:
    """Read-your-writes: hold the answer until the view has caught up, or say it has not."""
    if after is not None and not await services.caught_up(view, after):
        detail = f"This view has not reached position {after} yet; retry shortly."
        raise problem(503, "view-behind", "The view has not caught up yet", detail, headers={"Retry-After": "1"})


async def absent(services: Services, view: ViewReader, missing: Exception) -> Exception:
    """What to answer for what `view` lacks: `missing`, unless the view holds nothing at all (being
    rebuilt, say after Redis lost its data), or lacks a consultation the log holds (not folded yet, or
    its key lost in Redis: logged for the operator): then 503, not a 404 for what the log holds."""
    if await view.position(services.app_name) == 0:
        detail = "This view is being rebuilt from the log; retry shortly."
        return problem(503, "view-behind", "The view has not caught up yet", detail, headers={"Retry-After": "1"})
    if isinstance(missing, ConsultationNotFound) and await asyncio.to_thread(services.consultations.exists, missing.slug):
        log.error("view %s lacks consultation %r, which the log holds: if it stays so, `agora rebuild` that view", view.keys.base, missing.slug)
        detail = "This view has not caught up with the log; retry shortly."
        return problem(503, "view-behind", "The view has not caught up yet", detail, headers={"Retry-After": "1"})
    return missing


class Services:
    def __init__(self, system: System, client: Any, auth: JWTAuth[Any, Any]) -> None:
        self.settings = settings = system.settings
        self.app_name = system.app.name  # names the log in the views' positions
        self.consultations, self.staff, self.review, self.signups = system.consultations, system.staff, system.review, system.signups
        self.auth = auth
        self.queue = QueueReader(client, settings.redis_prefix)
        self.forms = FormReader(client, settings.redis_prefix)
        self.stats = StatsReader(client, settings.redis_prefix)
        self.commits = GroupCommit(system.consultations)
        self._watches: dict[str, Watch] = {}
        self.commits.start()

    async def close(self) -> None:
        await self.commits.stop()
        for watch in self._watches.values():
            await watch.close()

    async def submit(self, slug: str, answers: dict[str, Any], idempotency_key: str | None) -> bytes:
        """Record a response; the receipt's JSON. A repeated key returns the first receipt (the event store decides)."""
        return msgspec.json.encode(await self.commits.submit(Submission(slug, answers, idempotency_key)))

    async def caught_up(self, view: ViewReader, position: int) -> bool:
        """Whether `view` reached `position` within the configured wait (read-your-writes)."""
        watch = self._watches.setdefault(view.keys.base, Watch(view, self.app_name))
        return await watch.reached(position, self.settings.view_wait_seconds)


class Watch:
    """One poller per view and process, shared by every request waiting for a position.

    Waiters cost no Redis traffic of their own however many there are; the poller runs only
    while someone waits. A view's position only grows (a rebuild switches over only once it
    has caught up), so the last position read is a safe lower bound for everyone.
    """

    INTERVAL = 0.002  # seconds between reads while someone waits

    def __init__(self, view: ViewReader, application_name: str) -> None:
        self.view = view
        self.application_name = application_name
        self.position = 0
        self._changed = asyncio.Condition()
        self._waiting = 0
        self._poller: asyncio.Task[None] | None = None

    async def reached(self, position: int, timeout: float) -> bool:
        if position <= self.position:
            return True
        self._waiting += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.position >= position), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll(self) -> None:
        while self._waiting:
            try:
                position = await self.view.position(self.application_name)
            except RedisError as e:  # waiters time out with a 503; keep trying meanwhile
                log.warning("reading the %s view's position: %s", self.view.keys.base, e)
            else:
                if position > self.position:  # only then: each wake-up costs every waiter a turn of the loop
                    self.position = position
                    async with self._changed:
                        self._changed.notify_all()
            await asyncio.sleep(self.INTERVAL)
