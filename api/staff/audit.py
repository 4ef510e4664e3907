"""The auditors' routes: the whole history in order, the staff directory, the views at any position.

For auditors and admins. Every event is shown under the one disclosure policy (audit.disclosure).
Every /audit route refuses query parameters it does not know: an auditor who misspells a filter
must not get the unfiltered log and take it for the filtered one.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from api.auth import requires
from api.problems import STAFF_PROBLEMS, problem
from audit.disclosure import types
from audit.history import Filter, Page, StaffEntry
from audit.replay import DECODERS, view_at
from domain.campaigns.cluster import assignment_id
from domain.consultations.consultation import consultation_id
from domain.errors import ConsultationNotFound, FieldError, InvalidInput, ResponseNotFound
from domain.review.case import case_id
from domain.staff.member import Role
from domain.text import excerpt
from runtime import System

AUDITORS = requires(Role.AUDITOR, Role.ADMIN)
NDJSON = "application/x-ndjson"


GUARDS = [AUDITORS]


class NDJSONStream(Stream):
    """A stream that keeps its own media type: litestar's `Stream` lets the route's (JSON, for the pages) override it."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        return super().to_asgi_response(*args, **{**kwargs, "media_type": NDJSON})


@get(
    "/audit/events", sync_to_thread=True, guards=GUARDS, responses=STAFF_PROBLEMS,
    summary="Every event of the log in order, filtered; NDJSON with `Accept: application/x-ndjson`",
)
def events(
    request: Request,
    system: NamedDependency[System],
    after: Annotated[int, QueryParameter(ge=0, description="Events after this position (`next` of the previous page)")] = 0,
    limit: Annotated[int | None, QueryParameter(ge=1, le=1000, description="At most this many (a page: 100 by default; NDJSON: all)")] = None,
    consultation: Annotated[str | None, QueryParameter(max_length=63, description="A consultation's slug: its events and its frame's, responses', cases', signups', seats'")] = None,
    aggregate: Annotated[UUID | None, QueryParameter(description="One aggregate's events")] = None,
    response: Annotated[UUID | None, QueryParameter(description="One response's events (its submission, review case and cluster assignment) and the access records of staff reading its text")] = None,
    event_type: Annotated[str | None, QueryParameter(name="type", max_length=80, description="A readable type, e.g. `review.claimed`")] = None,
    actor: Annotated[UUID | None, QueryParameter(description="One staff member's actions")] = None,
    since: Annotated[datetime | None, QueryParameter(name="from", description="Recorded at or after (with a UTC offset)")] = None,
    until: Annotated[datetime | None, QueryParameter(name="to", description="Recorded before (with a UTC offset)")] = None,
) -> Page:
    _check_times(since, until)
    _check_type(event_type)
    where = Filter(
        consultation=_consultation(system, consultation) if consultation else None,
        aggregates=_aggregates(system, aggregate, response), subject=str(response) if response and not aggregate else None,
        type=event_type, actor=actor, since=since, until=until,
    )
    if NDJSON in request.headers.get("Accept", ""):
        return NDJSONStream(system.history.stream(after, limit, where))  # type: ignore[return-value]
    return system.history.page(after, limit or 100, where)


@get("/audit/staff", sync_to_thread=True, guards=GUARDS, responses=STAFF_PROBLEMS, summary="The staff directory: names and roles, never emails")
def staff_directory(system: NamedDependency[System]) -> list[StaffEntry]:
    return system.history.directory()


@get(
    "/audit/views/{view:str}", sync_to_thread=True, guards=GUARDS, responses=STAFF_PROBLEMS,
    summary="A view (form, stats, queue, report) as it stood at a position, replayed from the log",
)
def view(
    view: FromPath[str], system: NamedDependency[System],
    at: Annotated[int | None, QueryParameter(ge=0, description="A position of the log; default: its head")] = None,
) -> Response[bytes]:
    if view not in DECODERS:
        raise problem(404, "view-not-found", "No such view", f"There is no view {excerpt(view)}; the views are: {', '.join(DECODERS)}.")
    head = system.app.head()
    if at is not None and at > head:
        raise problem(422, "position-past-head", "Position past the head", f"Position {at} is past the head of the log, {head}.", head=head)
    return Response(view_at(system.app, view, at), media_type="application/json")


def _consultation(system: System, slug: str) -> UUID:
    if not system.app.exists(cid := consultation_id(slug)):
        raise ConsultationNotFound(slug)
    return cid


def _aggregates(system: System, aggregate: UUID | None, response: UUID | None) -> frozenset[UUID] | None:
    if response is None:
        return None if aggregate is None else frozenset({aggregate})
    if not system.app.exists(response):
        raise ResponseNotFound(response)
    ids = frozenset({response, case_id(response), assignment_id(response)})
    return ids if aggregate is None else ids & {aggregate}


def _check_type(event_type: str | None) -> None:
    """A misspelt type would find nothing, which reads as if no such event happened."""
    if event_type is not None and event_type not in types():
        near = difflib.get_close_matches(event_type, types(), n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else " Types read like review.claimed or access.recorded."
        raise InvalidInput([FieldError("type", f"No event has this type.{hint}")])


def _check_times(since: datetime | None, until: datetime | None) -> None:
    errors = [FieldError(name, "A time needs a UTC offset, e.g. 2026-05-07T13:00:00Z.") for name, t in (("from", since), ("to", until)) if t and t.utcoffset() is None]
    if not errors and since and until and since >= until:
        errors.append(FieldError("to", "`to` must come after `from`."))
    if errors:
        raise InvalidInput(errors)


routes = [events, staff_directory, view]
