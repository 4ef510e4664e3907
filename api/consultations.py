"""Public endpoints: the form, submitting a response, and the statistics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from api.problems import problem
from api.services import Services
from domain.application import Receipt
from domain.consultation import consultation_id
from domain.errors import ConsultationNotFound
from projections.form import ConsultationForm
from projections.stats import Stats

QuestionIdIn = Annotated[str, msgspec.Meta(max_length=40, description="A question id from the form")]
# Answers are checked against the question's kind by the consultation itself, which names the
# offending question in its problem; the body size limit bounds what can arrive here.
AnswerIn = Annotated[
    Any,
    msgspec.Meta(description="An option id (single choice), text (long text) or true/false (yes/no)"),
]


class ResponseIn(msgspec.Struct, forbid_unknown_fields=True):
    """A respondent's answers, keyed by question id. Contact details are refused: responses stay anonymous."""

    answers: Annotated[dict[QuestionIdIn, AnswerIn], msgspec.Meta(max_length=50)]


IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", max_length=255, required=False)]


@get(
    "/consultations/{slug:str}",
    responses={200: ResponseSpec(data_container=ConsultationForm, description="The public form")},
    summary="The consultation's public form",
)
async def form(slug: str, request: Request, services: Services) -> Response[bytes]:
    current = await services.forms.form(consultation_id(slug))
    if current is None:
        raise ConsultationNotFound(slug)
    body, etag = current.render(datetime.now(UTC))
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@post(
    "/consultations/{slug:str}/responses",
    status_code=201,
    responses={201: ResponseSpec(data_container=Receipt, description="The response was recorded")},
    summary="Submit a response",
)
async def submit(slug: str, data: ResponseIn, services: Services, idempotency_key: IdempotencyKey = None) -> Response[bytes]:
    # Shielded: once accepted, a submission is recorded and remembered even if the client goes away.
    body = await asyncio.shield(asyncio.ensure_future(services.submit(slug, data.answers, idempotency_key)))
    return Response(body, status_code=201, media_type="application/json")


@get("/consultations/{slug:str}/stats", summary="Responses counted so far")
async def stats(
    slug: str,
    services: Services,
    after: Annotated[int | None, Parameter(ge=0, description="Wait until the view has processed this position")] = None,
) -> Stats:
    if after is not None and not await services.wait_for_stats(after):
        raise problem(
            503, "view-behind", "The statistics have not caught up yet",
            f"The statistics have not reached position {after} yet; retry shortly.", headers={"Retry-After": "1"},
        )
    result = await services.stats.stats(consultation_id(slug), services.agora.name)
    if result is None:
        raise ConsultationNotFound(slug)
    return result
