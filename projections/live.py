"""The views in Redis: each fold's writer (for followers and rebuilds) and its reader (for the API).

A reader fetches what it needs in one round trip per view and hands it to the fold's pure decoding
(projections.form, .stats, .queue, .report), so the API, a replay in memory and a report read alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.projection import Projection

from projections import queue
from projections.form import Form, FormProjection, decode_form, form_key
from projections.queue import LEASES, Progress, QueueItem, QueueProjection, QueuePage, Query, case_key, progress_key
from projections.report import ERASURES, ReportProjection, ReportVersion, decode_versions, report_key
from projections.state import POSITION, State
from projections.stats import Stats, StatsProjection, stats_key, tally
from projections.view import RedisView, ViewReader, pairs


class FormView(RedisView):
    name = "form"


class StatsView(RedisView):
    name = "stats"


class QueueView(RedisView):
    name = "queue"


class ReportView(RedisView):
    name = "report"


VIEWS: dict[str, tuple[type[Projection[State]], type[RedisView]]] = {
    "form": (FormProjection, FormView),
    "stats": (StatsProjection, StatsView),
    "queue": (QueueProjection, QueueView),
    "report": (ReportProjection, ReportView),
}


class FormReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, FormView.name)

    async def form(self, consultation_id: UUID) -> Form | None:
        (fields,) = await self.read(("HGETALL", form_key(consultation_id), ()))
        return decode_form(pairs(fields))


class StatsReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, StatsView.name)
        self._forms = FormReader(client, prefix)

    async def stats(self, consultation_id: UUID, application_name: str) -> Stats | None:
        form = await self._forms.form(consultation_id)
        if form is None:
            return None
        counts, position = await self.read(
            ("HGETALL", stats_key(consultation_id), ()), ("HGET", POSITION, (application_name,))
        )
        return tally(form.definition, pairs(counts), int(position or 0))


class QueueReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, QueueView.name)

    async def page(
        self, application_name: str, state: str | None, assignee: UUID | None, tag: str | None, flag: str | None,
        cursor: int, limit: int, now: datetime, consultation: UUID | None = None,
    ) -> QueuePage:
        """Cases submitted after `cursor` (a position), oldest first, of one consultation or of all,
        filtered by state, assignee, tag and flag.

        Without any filter it lists every case of the consultation, or the new ones of all. A claim
        whose lease has run out is back in the queue: it lists as new.
        """
        query = Query.of(state, assignee, tag, flag, consultation)
        window, lapsed, position = await self.read(
            ("ZRANGEBYSCORE", query.index, (f"({cursor}", "+inf", "WITHSCORES", "LIMIT", 0, limit + 1)),
            ("ZRANGEBYSCORE", LEASES, ("-inf", f"({now.timestamp()}")),
            ("HGET", POSITION, (application_name,)),
        )
        members, upper = query.window(pairs(window), limit, lapsed)
        return query.page(await self._items(members, set(lapsed)), cursor, upper, int(position or 0))

    async def progress(self, application_name: str, consultation: UUID | None = None) -> Progress:
        """Progress of one consultation, or of all."""
        counts, position = await self.read(("HGETALL", progress_key(consultation), ()), ("HGET", POSITION, (application_name,)))
        return queue.progress(pairs(counts), int(position or 0))

    async def _items(self, members: list[bytes], lapsed: set[bytes]) -> list[QueueItem]:
        if not members:
            return []
        hashes = await self.read(*(("HGETALL", case_key(m.decode()), ()) for m in members))
        return [queue.item(pairs(h), lapsed=m in lapsed) for m, h in zip(members, hashes, strict=True) if h]


class ReportReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, ReportView.name)

    async def versions(self, report_id: UUID) -> tuple[list[ReportVersion], int]:
        """The report's published versions, oldest first (none if nothing is published), and the erasures so far."""
        fields, erasures = await self.read(("HGETALL", report_key(report_id), ()), ("HGET", ERASURES, ("count",)))
        return decode_versions(pairs(fields)), int(erasures or 0)

    async def erasures(self) -> int:
        (erasures,) = await self.read(("HGET", ERASURES, ("count",)))
        return int(erasures or 0)
