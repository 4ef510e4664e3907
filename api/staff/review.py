"""The review queue: reviewers claim, note and complete responses; editors reopen; auditors read.

Every action is recorded as an event naming the staff member; the domain enforces who may act
on which response (only the holder of a live claim), the guards which roles may call at all.
Reviewers work one consultation at a time: its queue, progress and claim-next are under
`/review/consultations/{slug}`; `/review/consultations` lists them with their progress.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio
import msgspec
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import requires
from api.problems import STAFF_PROBLEMS, problem
from api.schemas import Progress, QueueItem
from api.services import After, Services, wait
from audit.disclosure import AuditEvent
from domain.access.service import RESPONSE_TEXT
from domain.campaigns.cluster import assignment_id
from domain.consultations.consultation import accepts_responses
from domain.review.case import MAX_NOTE, CaseClosed, ClaimConflict, Flag, Outcome, case_id
from domain.review.casefile import CaseFile
from domain.staff.member import Role, StaffMember
from runtime import System

READERS = requires(Role.REVIEWER, Role.EDITOR, Role.AUDITOR)
CASE_READERS = requires(Role.REVIEWER, Role.EDITOR, Role.AUDITOR, Role.ADMIN)  # an admin sees what a shred destroys
REVIEWERS = requires(Role.REVIEWER)
EDITORS = requires(Role.EDITOR)
Staff = Request[StaffMember, Token, Any]
ResponseId = FromPath[UUID]


class Claim(msgspec.Struct):
    response_id: UUID
    claimed_until: datetime
    position: int


class Recorded(msgspec.Struct):
    position: Annotated[
        int | None, msgspec.Meta(description="Pass as `?after=` to read the queue with this action in it; null if nothing changed")
    ]


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)]


class TagIn(msgspec.Struct, forbid_unknown_fields=True):
    theme_id: Annotated[str, msgspec.Meta(max_length=40)]


class FlagIn(msgspec.Struct, forbid_unknown_fields=True):
    flag: Flag
    reason: Annotated[str, msgspec.Meta(max_length=2000)]
    duplicate_of: UUID | None = None


class QuoteIn(msgspec.Struct, forbid_unknown_fields=True):
    question_id: Annotated[str, msgspec.Meta(max_length=40)]
    start: Annotated[int, msgspec.Meta(ge=0)]
    end: Annotated[int, msgspec.Meta(ge=1)]


class Completion(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    reason: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class Reopening(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)]


class ResponseForReview(msgspec.Struct):
    id: UUID
    consultation_id: UUID
    submitted_at: datetime
    answers: Annotated[dict[str, str | bool | None], msgspec.Meta(description="As they now read: redactions applied; null where erased")]


class RedactionIn(QuoteIn, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)]
    # The passage as it reads from start to end: if given and it reads otherwise, a 422 and nothing redacted.
    expect: Annotated[str, msgspec.Meta(max_length=5000)] | None = None


class Undoing(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)]


class QuoteUndoing(QuoteIn, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2000)]


class ReviewItem(QueueItem, frozen=True):
    consultation: Annotated[str, msgspec.Meta(description="The consultation's slug")]


class ReviewPage(msgspec.Struct):
    items: list[ReviewItem]
    next_cursor: Annotated[int | None, msgspec.Meta(description="Pass as `cursor` for the next page; null on the last")]
    position: Annotated[int, msgspec.Meta(description="The view's position: poll with `?after=position+1` for what comes next")]


CONSULTATION = "/review/consultations/{slug:str}"
State = Literal["new", "claimed", "completed", "excluded"]


class ConsultationUnderReview(msgspec.Struct):
    slug: str
    title: str
    accepting_responses: Annotated[bool, msgspec.Meta(description="Whether it takes responses now")]
    progress: Progress


@get("/review/consultations", responses=STAFF_PROBLEMS, guards=[READERS], summary="Every consultation, with how much of it is reviewed")
async def consultations(services: NamedDependency[Services], after: After = None) -> list[ConsultationUnderReview]:
    await wait(services, services.queue, after)
    found = await anyio.to_thread.run_sync(lambda: [services.consultations.get(slug) for slug in services.consultations.slugs()])
    now = datetime.now(UTC)
    return [
        ConsultationUnderReview(
            c.slug, c.definition.title, accepts_responses(c.is_open, c.definition.opens_at, c.closes_at, now),
            await services.queue.progress(services.app_name, c.id),
        )
        for c in found
    ]


@get(CONSULTATION + "/queue", responses=STAFF_PROBLEMS, guards=[READERS], summary="A consultation's responses, oldest first (without filters: all)")
async def consultation_queue(
    slug: FromPath[str],
    services: NamedDependency[Services],
    review_state: Annotated[State | None, QueryParameter(name="state", description="Only cases in this state; lapsed claims are new")] = None,
    assignee: Annotated[UUID | None, QueryParameter(description="Live claims held by this staff member")] = None,
    tag: Annotated[str | None, QueryParameter(max_length=40, description="A theme id")] = None,
    flag: Annotated[Flag | None, QueryParameter()] = None,
    cursor: Annotated[int, QueryParameter(ge=0, description="`next_cursor` of the previous page")] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    after: After = None,
) -> ReviewPage:
    consultation = await _consultation(services, slug)
    await wait(services, services.queue, after)
    page = await services.queue.page(
        services.app_name, review_state, assignee, tag, flag.value if flag else None, cursor, limit, datetime.now(UTC), consultation
    )
    items = [ReviewItem(**msgspec.structs.asdict(i), consultation=slug) for i in page.items]
    return ReviewPage(items, page.next_cursor, page.position)


@get(CONSULTATION + "/progress", responses=STAFF_PROBLEMS, guards=[READERS], summary="How much of a consultation is reviewed")
async def consultation_progress(slug: FromPath[str], services: NamedDependency[Services], after: After = None) -> Progress:
    consultation = await _consultation(services, slug)
    await wait(services, services.queue, after)
    return await services.queue.progress(services.app_name, consultation)


@post(CONSULTATION + "/claim-next", responses=STAFF_PROBLEMS, guards=[REVIEWERS], summary="Claim a consultation's oldest response nobody holds")
async def claim_next(slug: FromPath[str], request: Staff, services: NamedDependency[Services]) -> Claim:
    consultation = await _consultation(services, slug)
    # The view proposes; the event store decides: a response claimed by someone else meanwhile
    # is refused by optimistic concurrency, and the next candidate is tried, page after page
    # (reviewers claiming together take the first ones: a tester's got `queue-empty` with thousands new).
    # Only a response nobody holds, the caller included: one reviewer's claims at once each get another.
    cursor: int | None = 0
    while cursor is not None:
        page = await services.queue.page(services.app_name, "new", None, None, None, cursor, 20, datetime.now(UTC), consultation)
        for item in page.items:
            try:
                return await anyio.to_thread.run_sync(partial(_claim, services, item.response_id, request.user.id, fresh=True))
            except (ClaimConflict, CaseClosed):  # taken or completed since the view last saw it
                continue
        cursor = page.next_cursor
    raise problem(404, "queue-empty", "Nothing to claim", f"Every response to '{slug}' is claimed or reviewed.")


@post("/review/responses/{response_id:uuid}/claim", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Claim a response")
def claim(response_id: ResponseId, request: Staff, services: NamedDependency[Services]) -> Claim:
    return _claim(services, response_id, request.user.id)


@post("/review/responses/{response_id:uuid}/release", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Give a claimed response back")
def release(response_id: ResponseId, request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.release(response_id, request.user.id))


@post("/review/responses/{response_id:uuid}/notes", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Add a note")
def note(response_id: ResponseId, data: JSONBody[NoteIn], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.note(response_id, request.user.id, data.text))


@post("/review/responses/{response_id:uuid}/tags", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Tag with a theme of the coding frame")
def tag_response(response_id: ResponseId, data: JSONBody[TagIn], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.tag(response_id, request.user.id, data.theme_id))


@delete("/review/responses/{response_id:uuid}/tags/{theme_id:str}", responses=STAFF_PROBLEMS, status_code=200, sync_to_thread=True, guards=[REVIEWERS], summary="Remove a theme")
def untag_response(response_id: ResponseId, theme_id: FromPath[str], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.untag(response_id, request.user.id, theme_id))


@post("/review/responses/{response_id:uuid}/flags", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Flag: spam, abusive, off topic, duplicate, personal data")
def flag_response(response_id: ResponseId, data: JSONBody[FlagIn], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.flag(response_id, request.user.id, data.flag, data.reason, data.duplicate_of))


@post("/review/responses/{response_id:uuid}/flags/{flag:str}/remove", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Remove a flag, with a reason")
def unflag_response(response_id: ResponseId, flag: FromPath[Flag], data: JSONBody[Undoing], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.unflag(response_id, request.user.id, flag, data.reason))


@post("/review/responses/{response_id:uuid}/quotes/unmark", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Withdraw a candidate quote, with a reason")
def unquote(response_id: ResponseId, data: JSONBody[QuoteUndoing], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.unmark_quote(response_id, request.user.id, data.question_id, data.start, data.end, data.reason))


@post(
    "/review/responses/{response_id:uuid}/redactions/{question_id:str}/revert", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS],
    summary="Revert the answer's latest redaction, before its originals are shredded",
)
def revert(response_id: ResponseId, question_id: FromPath[str], data: JSONBody[Undoing], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.revert_redaction(response_id, request.user.id, question_id, data.reason))


@post("/review/responses/{response_id:uuid}/quotes", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Mark a passage as a candidate quote")
def quote(response_id: ResponseId, data: JSONBody[QuoteIn], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.mark_quote(response_id, request.user.id, data.question_id, data.start, data.end))


@post("/review/responses/{response_id:uuid}/redactions", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Redact a span of a text answer")
def redact(response_id: ResponseId, data: JSONBody[RedactionIn], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.redact(response_id, request.user.id, data.question_id, data.start, data.end, data.reason, data.expect))


@post(
    "/review/responses/{response_id:uuid}/redactions/{question_id:str}/shred", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[requires(Role.ADMIN)],
    summary="Confirm a redaction: destroy the earlier versions' keys",
)
def shred(response_id: ResponseId, question_id: FromPath[str], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.shred_originals(response_id, request.user.id, question_id))


@post("/review/responses/{response_id:uuid}/complete", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[REVIEWERS], summary="Complete as reviewed or excluded")
def complete(response_id: ResponseId, data: JSONBody[Completion], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.complete(response_id, request.user.id, data.outcome, data.reason))


@post("/review/responses/{response_id:uuid}/reopen", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Reopen a completed review")
def reopen(response_id: ResponseId, data: JSONBody[Reopening], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.reopen(response_id, request.user.id, data.reason))


@get("/review/responses/{response_id:uuid}", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="A response's answers")
def read_response(response_id: ResponseId, request: Staff, services: NamedDependency[Services], system: NamedDependency[System]) -> ResponseForReview:
    r = services.consultations.response(response_id)
    answers = services.review.answers(response_id)
    system.access.record(request.user.id, RESPONSE_TEXT, str(response_id))  # free text may name people: who read it is on record
    return ResponseForReview(r.id, r.consultation_id, r.created_on, answers)


@get(
    "/review/responses/{response_id:uuid}/case", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[CASE_READERS],
    summary="A response with its whole case; for admins, redacted answers as first given until shredded",
)
def case_file(response_id: ResponseId, request: Staff, services: NamedDependency[Services], system: NamedDependency[System]) -> CaseFile:
    file = services.review.case_file(response_id, originals=Role.ADMIN in request.user.roles)
    system.access.record(request.user.id, RESPONSE_TEXT, str(response_id))  # free text may name people: who read it is on record
    return file


@get("/review/responses/{response_id:uuid}/history", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="Every event about a response, oldest first")
def history(response_id: ResponseId, services: NamedDependency[Services], system: NamedDependency[System]) -> list[AuditEvent]:
    services.consultations.response(response_id)  # or 404
    return system.history.of_aggregates([response_id, case_id(response_id), assignment_id(response_id)])


async def _consultation(services: Services, slug: str) -> UUID:
    """The consultation's id, or a 404 problem."""
    return (await anyio.to_thread.run_sync(services.consultations.get, slug)).id


def _claim(services: Services, response_id: UUID, by: UUID, fresh: bool = False) -> Claim:
    until, position = services.review.claim(response_id, by, timedelta(minutes=services.settings.lease_minutes), fresh)
    return Claim(response_id, until, position)


routes = [
    consultations, consultation_queue, consultation_progress, claim_next, claim, release, note, tag_response, untag_response, flag_response, unflag_response, quote, unquote, redact, revert, shred, complete,
    reopen, read_response, case_file, history,
]
