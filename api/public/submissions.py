"""Group commit: submissions that arrive together are recorded in one transaction.

One transaction per request tops out around 1,500 durable writes a second here; batching
the requests that queue up while the previous transaction commits raises that several
times without delaying a lone request (an empty queue is written at once).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from domain.consultations.service import Consultations, Receipt, Submission
from domain.errors import DomainError

MAX_BATCH = 500


class GroupCommit:
    def __init__(self, consultations: Consultations) -> None:
        self.consultations = consultations
        self._queue: asyncio.Queue[tuple[Submission, asyncio.Future[Receipt]]] = asyncio.Queue()
        # One writer thread: eventsourcing is synchronous, and one writer keeps batches whole.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._task: asyncio.Task[None] | None = None

    async def submit(self, submission: Submission) -> Receipt:
        """Record one submission; raises the domain error that refused it."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((submission, future))
        return await future

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._writer, self.consultations.submit_batch, [s for s, _ in batch])
            except Exception as e:  # noqa: BLE001 - the whole transaction failed: every caller hears why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the client went away; its response is recorded all the same
                    continue
                if isinstance(result, DomainError):
                    future.set_exception(result)
                else:
                    future.set_result(result)
