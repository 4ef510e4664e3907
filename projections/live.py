"""The views in Redis: each fold's writer (for followers and rebuilds) and its reader (for the API).

A reader fetches what it needs in one round trip per view and hands it to the fold's pure decoding
(projections.form, .stats, .queue, .report), so the API, a replay in memory and a report read alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID


from projections import queue
from projections.form import Form, FormProjection, decode_form, form_key
from projections.queue import LEASES, Progress, QueueItem, QueueProjection, QueuePage, Query, case_key, clusters_to_read, progress_key
from projections.report import ERASURES, ReportProjection, ReportVersion, decode_versions, report_key
from projections.state import POSITION, Fold
from projections.stats import Stats, StatsProjection, campaigns_key, cluster_key, names_key, stats_key, tally
from projections.view import RedisView, ViewReader, pairs


class FormView(RedisView):
    name = "form"


class StatsView(RedisView):
    name = "stats"


class QueueView(RedisView):
    name = "queue"


class ReportView(RedisView):
    name = "report"


VIEWS: dict[str, tuple[type[Fold], type[RedisView]]] = {
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
        view = (
            ("HGETALL", stats_key(consultation_id), ()), ("ZRANGE", campaigns_key(consultation_id), (0, -1)),
            ("HGETALL", names_key(consultation_id), ()), ("HGET", POSITION, (application_name,)),
        )
        # The campaigns' counts are read in the same script as the rest, so that all of it stands at
        # one position: with campaigns, that takes a second read (another if the list changed meanwhile).
        campaigns: list[bytes] = []
        while True:
            *members, counts, listed, names, position = await self.read(
                *(("HGETALL", cluster_key(c.decode()), ()) for c in campaigns), *view
            )
            if listed == campaigns:
                break
            campaigns = listed
        named = pairs(names)
        found = [(named[c].decode(), pairs(m)) for c, m in zip(campaigns, members, strict=True)]
        return tally(form.definition, pairs(counts), int(position or 0), found)


class QueueReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, QueueView.name)

    async def page(
        self, application_name: str, state: str | None, assignee: UUID | None, tag: str | None, flag: str | None,
        cursor: int, limit: int, now: datetime, consultation: UUID,
    ) -> QueuePage:
        """A consultation's cases submitted after `cursor` (a position), oldest first, filtered by
        state, assignee, tag and flag (none: every case). A claim whose lease has run out is back in
        the queue: it lists as new.
        """
        query = Query(consultation, state, assignee, tag, flag)
        window, lapsed, position = await self.read(
            ("ZRANGEBYSCORE", query.index, (f"({cursor}", "+inf", "WITHSCORES", "LIMIT", 0, limit + 1)),
            ("ZRANGEBYSCORE", LEASES, ("-inf", f"({now.timestamp()}")),
            ("HGET", POSITION, (application_name,)),
        )
        members, upper = query.window(pairs(window), limit, lapsed)
        return query.page(await self._items(members, set(lapsed)), cursor, upper, int(position or 0))

    async def progress(self, application_name: str, consultation: UUID) -> Progress:
        """A consultation's progress."""
        counts, position = await self.read(("HGETALL", progress_key(consultation), ()), ("HGET", POSITION, (application_name,)))
        return queue.progress(pairs(counts), int(position or 0))

    async def _items(self, members: list[bytes], lapsed: set[bytes]) -> list[QueueItem]:
        if not members:
            return []
        hashes = [pairs(h) for h in await self.read(*(("HGETALL", case_key(m.decode()), ()) for m in members))]
        clusters: dict[str, dict[bytes, bytes]] = {}
        while wanted := clusters_to_read(hashes, clusters):  # the clusters named, then those merged ones joined
            clusters.update(zip(wanted, map(pairs, await self.read(*(("HGETALL", k, ()) for k in wanted))), strict=True))
        return [queue.item(h, m in lapsed, clusters) for m, h in zip(members, hashes, strict=True) if h]


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
