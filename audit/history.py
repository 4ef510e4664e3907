"""The auditors' reading of the log: every event in order, filtered, under the one disclosure policy.

The log is read in batches from a position, so a page or a stream holds one batch in memory
however long the log is. A page reads at most `SCAN` events: a filter that matches little
still answers promptly, with the position to go on from (`next`), null once the head is reached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier

from audit.disclosure import UNREADABLE, AuditEvent, Unreadable, disclose, read, readable
from domain.access.access import Access
from domain.consultations.consultation import Consultation, consultation_id
from domain.staff.member import Role, StaffMember
from domain.core import Agora, read_log


FIRST = -(2**63)  # below any position a store can hold


class Keys(Protocol):
    def get(self, key_id: str) -> bytes | None: ...


class StaffEntry(msgspec.Struct):
    """A staff member as auditors see them: never their email or password hash."""

    id: UUID
    name: str
    roles: list[Role]
    active: bool
    enrolled_at: datetime


class Filter(msgspec.Struct, frozen=True):
    """Which events to show; every condition given must hold."""

    consultation: UUID | None = None  # its own events and those of its frame, responses, cases, signups, seats
    aggregates: frozenset[UUID] | None = None
    subject: str | None = None  # with `aggregates`: also the access records naming it (one of their comma-joined subjects)
    type: str | None = None  # readable, e.g. "review.claimed"
    actor: UUID | None = None
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before


def _names(subject: str | None, event: Any) -> bool:
    return subject is not None and isinstance(event, Access.Recorded) and subject in event.subject.split(",")


class Page(msgspec.Struct):
    events: list[AuditEvent]
    next: int | None  # pass as `after` for the next page; null: the page reached the head of the log


class History:
    BATCH = 500  # events read from the store at a time
    SCAN = 10_000  # events a page reads at most

    def __init__(self, app: Agora, keys: Sequence[Keys], names: Callable[[UUID], str | None]) -> None:
        """`keys`: the key stores of sealed values (free text, signups' and staff's contacts), asked whether
        a key still exists; `names`: a staff member's name, "erased staff member", or None if no such member."""
        self.app = app
        self.keys = keys
        self.names = names
        # What an aggregate belongs to follows from its first event, which never changes.
        self.consultation_of = functools.lru_cache(maxsize=100_000)(self._consultation_of)

    def key_present(self, key_id: str) -> bool:
        return any(store.get(key_id) is not None for store in self.keys)

    def page(self, after: int, limit: int, where: Filter) -> Page:
        head = self.app.head()
        found: list[tuple[int, Any]] = []
        last = head
        for scanned, (position, event) in enumerate(self._scan(after, head), 1):
            if self._matches(where, event):
                found.append((position, event))
            if len(found) == limit or scanned == self.SCAN:
                last = position
                break
        return Page(self._disclose(found), None if last >= head else last)

    def stream(self, after: int, limit: int | None, where: Filter) -> Iterator[bytes]:
        """Matching events up to the head as it is now, as NDJSON: one chunk per batch read."""
        left = limit
        batch: list[tuple[int, Any]] = []
        for position, event in self._scan(after, self.app.head()):
            if self._matches(where, event):
                batch.append((position, event))
                if left is not None and (left := left - 1) == 0:
                    break
            if len(batch) == self.BATCH:
                yield _ndjson(self._disclose(batch))
                batch = []
        if batch:
            yield _ndjson(self._disclose(batch))

    def of_aggregates(self, aggregate_ids: Iterable[UUID]) -> list[AuditEvent]:
        """Every event of these aggregates, with their positions, in the log's order."""
        found = []
        for aggregate_id in aggregate_ids:
            positions = self._positions(aggregate_id)
            # Read one by one: an event this code cannot read is `unreadable` here too, as on the log's pages.
            found += [(positions[stored.originator_version], read(self.app.mapper, stored)) for stored in self.app.recorder.select_events(aggregate_id)]
        return self._disclose(sorted(found, key=lambda f: f[0]))

    def directory(self) -> list[StaffEntry]:
        entries = []
        for enrolled in self.app.select_events(StaffMember.Enrolled):
            member = self.app.find(enrolled.originator_id, StaffMember)
            assert member is not None
            entries.append(StaffEntry(member.id, self.names(member.id) or "", sorted(member.roles), member.active, enrolled.timestamp))
        return entries

    def _scan(self, after: int, upto: int) -> Iterator[tuple[int, Any]]:
        # From the start (after=0), from the very first, whatever its position: one put at 0 or below by hand (the log
        # never puts one there, yet its aggregate reads it) is listed too, as `agora audit verify` names it.
        return read_log(self.app, after=after or FIRST, upto=upto, batch=self.BATCH, unreadable=Unreadable)

    def _matches(self, where: Filter, event: Any) -> bool:
        return (
            (where.aggregates is None or event.originator_id in where.aggregates or _names(where.subject, event))
            and (where.type is None or (UNREADABLE if isinstance(event, Unreadable) else readable(type(event))[0]) == where.type)
            and (where.actor is None or getattr(event, "by", None) == where.actor)
            and (where.since is None or event.timestamp >= where.since)
            and (where.until is None or event.timestamp < where.until)
            and (where.consultation is None or where.consultation in self._about(event))
        )

    def _about(self, event: Any) -> set[UUID | None]:
        """The consultations an event is about: an access record's, those its subjects belong to (a slug,
        `slug/session`, a response's or a cluster's id); any other's, its aggregate's."""
        if isinstance(event, Unreadable):
            return {None}  # what it is about cannot be read
        if not isinstance(event, Access.Recorded):
            return {self.consultation_of(event.originator_id)}
        found: set[UUID | None] = set()
        for subject in event.subject.split(","):
            named = subject.partition("/")[0]
            try:
                found.add(self.consultation_of(UUID(named)))
            except ValueError:
                found.add(consultation_id(named))
        return found

    def _consultation_of(self, aggregate_id: UUID) -> UUID | None:
        """The consultation an aggregate is about, by its first event: a consultation itself, anything
        naming one (frame, response, signup, seats, cluster), a review case by its response; None for staff and accesses."""
        stored = self.app.recorder.select_events(aggregate_id, lte=1)
        try:
            first = self.app.mapper.to_domain_event(stored[0]) if stored else None
        except Exception:  # noqa: BLE001 - its first event cannot be read (shown as `unreadable`): about no consultation known
            return None
        if isinstance(first, Consultation.Created):
            return aggregate_id
        if isinstance(consultation := getattr(first, "consultation_id", None), UUID):
            return consultation
        if isinstance(response := getattr(first, "response_id", None), UUID):
            return self.consultation_of(response)
        return None

    def _disclose(self, events: list[tuple[int, Any]]) -> list[AuditEvent]:
        # Looked up for each page, not kept: a name changes once, when its member is erased.
        actors = {getattr(e, "by", None) for _, e in events} - {None}
        names = {actor: name for actor in actors if (name := self.names(actor)) is not None}
        return [disclose(e, position, names, keys_present=self.key_present) for position, e in events]

    def _positions(self, aggregate_id: UUID) -> dict[int, int]:
        """An aggregate's events' positions in the log, by version (the recorders do not say)."""
        recorder: Any = self.app.recorder
        if isinstance(recorder.datastore, SQLiteDatastore):
            with recorder.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT originator_version AS version, rowid AS position FROM {recorder.events_table_name} WHERE originator_id = ?",
                    (aggregate_id.hex,),
                )
                rows = c.fetchall()
        else:
            statement = SQL("SELECT originator_version AS version, notification_id AS position FROM {}.{} WHERE originator_id = %s")
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement.format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)), (aggregate_id,))
                rows = curs.fetchall()
        return {row["version"]: row["position"] for row in rows}


_encode = msgspec.json.Encoder().encode


def _ndjson(events: list[AuditEvent]) -> bytes:
    return b"".join(_encode(e) + b"\n" for e in events)
