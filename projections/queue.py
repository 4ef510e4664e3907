"""The review queue: every response's review state, oldest first, by state and assignee, and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic

from domain.consultations.response import Response
from domain.review.case import Outcome, ReviewCase, case_id
from projections.view import POSITION, RedisView, ViewReader, pairs

STATES = ("new", "claimed", "completed", "excluded")
REVIEWED = {Outcome.REVIEWED: "completed", Outcome.EXCLUDED: "excluded"}


class QueueView(RedisView):
    name = "queue"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the view holds for each case, as of the events staged so far; read back once after a restart.
        self._cases: dict[UUID, dict[str, str]] = {}

    MIRRORED = 10_000  # cases kept in memory between batches; the rest are read back when needed

    def open_case(self, tracking: Tracking, case: UUID, **fields: str) -> None:
        """A new response's case: nothing to read back first."""
        self._cases[case] = {}
        self.update(tracking, case, **fields)

    def flush(self, start: int) -> int | None:
        position = super().flush(start)
        if len(self._cases) > self.MIRRORED:  # written now, so safe to forget
            self.forget()
        return position

    def forget(self) -> None:
        self._cases.clear()

    def case(self, case: UUID) -> dict[str, str]:
        if case not in self._cases:
            stored = self.redis.hgetall(self.keys.key(self.generation, f"case:{case}"))
            self._cases[case] = {k.decode(): v.decode() for k, v in stored.items()}
        return self._cases[case]

    def update(self, tracking: Tracking, case: UUID, **fields: str) -> None:
        """Change a case's fields, keeping its state and assignee sets in step."""
        current = self.case(case)
        member, score = str(case), float(current.get("position") or fields["position"])
        if "state" in fields and fields["state"] != current.get("state"):
            if current.get("state"):
                self.zrem(tracking, f"state:{current['state']}", member)
            self.zadd(tracking, f"state:{fields['state']}", member, score)
        if "assignee" in fields and fields["assignee"] != current.get("assignee"):
            if current.get("assignee"):
                self.zrem(tracking, f"assignee:{current['assignee']}", member)
            if fields["assignee"]:
                self.zadd(tracking, f"assignee:{fields['assignee']}", member, score)
        if "until" in fields:
            if fields["until"]:
                self.zadd(tracking, "leases", member, datetime.fromisoformat(fields["until"]).timestamp())
            else:
                self.zrem(tracking, "leases", member)
        current.update(fields)
        self.hset(tracking, f"case:{case}", **fields)

    def label(self, tracking: Tracking, case: UUID, field: str, value: str, present: bool) -> None:
        """Add or remove a tag or flag: the case's `field` and the `{field}:{value}` set stay in step."""
        current = self.case(case)
        values = set(filter(None, current.get(field, "").split(",")))
        member = str(case)
        if present:
            values.add(value)
            self.zadd(tracking, f"{field}:{value}", member, float(current["position"]))
        else:
            values.discard(value)
            self.zrem(tracking, f"{field}:{value}", member)
        current[field] = ",".join(sorted(values))
        self.hset(tracking, f"case:{case}", **{field: current[field]})


class QueueProjection(Projection[QueueView]):
    name = "queue"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Response.Submitted, ReviewCase.Claimed, ReviewCase.Released, ReviewCase.Noted, ReviewCase.Tagged,
            ReviewCase.Untagged, ReviewCase.Flagged, ReviewCase.QuoteMarked, ReviewCase.Completed, ReviewCase.Reopened,
        )
    )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: Response.Submitted, tracking: Tracking) -> None:
        self.view.open_case(
            tracking, case_id(e.originator_id), response_id=str(e.originator_id), consultation_id=str(e.consultation_id),
            position=str(tracking.notification_id), submitted_at=e.timestamp.isoformat(), state="new",
        )
        self.view.hincrby(tracking, "progress", "total")

    @process_event.register
    def _(self, e: ReviewCase.Claimed, tracking: Tracking) -> None:
        self.view.update(tracking, e.originator_id, state="claimed", assignee=str(e.by), until=e.until.isoformat())

    @process_event.register
    def _(self, e: ReviewCase.Released, tracking: Tracking) -> None:
        self.view.update(tracking, e.originator_id, state="new", assignee="", until="")

    @process_event.register
    def _(self, e: ReviewCase.Noted, tracking: Tracking) -> None:
        self.view.hincrby(tracking, f"case:{e.originator_id}", "notes")

    @process_event.register
    def _(self, e: ReviewCase.Tagged, tracking: Tracking) -> None:
        self.view.label(tracking, e.originator_id, "tags", e.theme_id, present=True)

    @process_event.register
    def _(self, e: ReviewCase.Untagged, tracking: Tracking) -> None:
        self.view.label(tracking, e.originator_id, "tags", e.theme_id, present=False)

    @process_event.register
    def _(self, e: ReviewCase.Flagged, tracking: Tracking) -> None:
        self.view.label(tracking, e.originator_id, "flags", e.flag.value, present=True)

    @process_event.register
    def _(self, e: ReviewCase.QuoteMarked, tracking: Tracking) -> None:
        self.view.hincrby(tracking, f"case:{e.originator_id}", "quotes")

    @process_event.register
    def _(self, e: ReviewCase.Completed, tracking: Tracking) -> None:
        self.view.update(tracking, e.originator_id, state=REVIEWED[e.outcome], assignee="", until="")
        self.view.hincrby(tracking, "progress", "reviewed")

    @process_event.register
    def _(self, e: ReviewCase.Reopened, tracking: Tracking) -> None:
        self.view.update(tracking, e.originator_id, state="new")
        self.view.hincrby(tracking, "progress", "reviewed", -1)


class QueueItem(msgspec.Struct, frozen=True):
    response_id: UUID
    consultation_id: UUID
    position: int
    submitted_at: datetime
    state: str
    assignee: UUID | None
    claimed_until: datetime | None
    notes: int
    quotes: int
    tags: list[str]
    flags: list[str]


class QueuePage(msgspec.Struct, frozen=True):
    items: list[QueueItem]
    next_cursor: int | None  # pass as `cursor` for the next page
    position: int  # the view's position: poll with `?after=position+1` for what comes next


class Progress(msgspec.Struct, frozen=True):
    total: int
    reviewed: int
    percent_reviewed: float
    position: int


class QueueReader(ViewReader):
    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix, QueueView.name)

    async def page(
        self, application_name: str, state: str | None, assignee: UUID | None, tag: str | None, flag: str | None,
        cursor: int, limit: int, now: datetime,
    ) -> QueuePage:
        """Cases submitted after `cursor` (a position), oldest first, filtered by state, assignee, tag and flag.

        Without any filter it lists the new ones. A claim whose lease has run out is back in
        the queue: it lists as new.
        """
        if not (state or assignee or tag or flag):
            state = "new"
        index = (
            f"assignee:{assignee}" if assignee else f"tags:{tag}" if tag else f"flags:{flag}" if flag else f"state:{state}"
        )
        page, lapsed, position = await self.read(
            ("ZRANGEBYSCORE", index, (f"({cursor}", "+inf", "WITHSCORES", "LIMIT", 0, limit + 1)),
            ("ZRANGEBYSCORE", "leases", ("-inf", f"({now.timestamp()}")),
            ("HGET", POSITION, (application_name,)),
        )
        # The page is a window of the index; filters may leave fewer items than `limit` in it,
        # but the cursor moves over the whole window so no later match is ever passed over.
        scored = pairs(page)
        members = list(scored)[:limit]
        upper = float(scored[members[-1]]) if len(scored) > limit else float("inf")
        if index == "state:new":
            members += lapsed
        items = sorted(
            (
                i for i in await self._items(list(dict.fromkeys(members)), set(lapsed))
                if cursor < i.position <= upper
                and (state is None or i.state == state)
                and (assignee is None or i.assignee == assignee)
                and (tag is None or tag in i.tags)
                and (flag is None or flag in i.flags)
            ),
            key=lambda i: i.position,
        )
        return QueuePage(items, int(upper) if upper != float("inf") else None, int(position or 0))

    async def progress(self, application_name: str) -> Progress:
        counts, position = await self.read(("HGETALL", "progress", ()), ("HGET", POSITION, (application_name,)))
        c = {k.decode(): int(v) for k, v in pairs(counts).items()}
        total, reviewed = c.get("total", 0), c.get("reviewed", 0)
        return Progress(total, reviewed, round(100 * reviewed / total, 1) if total else 0.0, int(position or 0))

    async def _items(self, members: list[bytes], lapsed: set[bytes]) -> list[QueueItem]:
        if not members:
            return []
        hashes = await self.read(*(("HGETALL", f"case:{m.decode()}", ()) for m in members))
        return [_item(pairs(h), lapsed=m in lapsed) for m, h in zip(members, hashes, strict=True) if h]


def _item(h: dict[bytes, bytes], lapsed: bool) -> QueueItem:
    f = {k.decode(): v.decode() for k, v in h.items()}
    claimed = f["state"] == "claimed" and not lapsed
    return QueueItem(
        response_id=UUID(f["response_id"]),
        consultation_id=UUID(f["consultation_id"]),
        position=int(f["position"]),
        submitted_at=datetime.fromisoformat(f["submitted_at"]),
        state="new" if f["state"] == "claimed" and lapsed else f["state"],
        assignee=UUID(f["assignee"]) if claimed and f.get("assignee") else None,
        claimed_until=datetime.fromisoformat(f["until"]) if claimed and f.get("until") else None,
        notes=int(f.get("notes", 0)),
        quotes=int(f.get("quotes", 0)),
        tags=[t for t in f.get("tags", "").split(",") if t],
        flags=[t for t in f.get("flags", "").split(",") if t],
    )
