"""Public endpoints: the form, submitting a response, and the statistics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody

from api.problems import documented
from api.schemas import ConsultationForm, Stats, render_form
from api.services import After, Services, absent, wait
from domain.consultations.service import Receipt
from domain.consultations.consultation import consultation_id
from domain.errors import ConsultationNotFound

MAX_QUESTION_ID = 40
QuestionIdIn = Annotated[str, msgspec.Meta(max_length=MAX_QUESTION_ID)]
# Answers are checked against the question's kind by the consultation itself, which names the
# offending question in its problem; the body size limit bounds what can arrive here.
AnswerIn = Annotated[
    Any,
    msgspec.Meta(description="An option id (single choice), text (long text) or true/false (yes/no)"),
]


MAX_ANSWERS = 50


class ResponseIn(msgspec.Struct, forbid_unknown_fields=True):
    """A respondent's answers, keyed by question id. Contact details are refused: responses stay anonymous."""

    answers: Annotated[
        dict[QuestionIdIn, AnswerIn],
        # litestar's schema generation does not carry a mapping's size over by itself.
        msgspec.Meta(
            max_length=MAX_ANSWERS,
            description="Answers keyed by question id (see the form)",
            extra_json_schema={"extra": {"maxProperties": MAX_ANSWERS, "propertyNames": {"maxLength": MAX_QUESTION_ID}}},
        ),
    ]


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", min_length=16, max_length=255, required=False,
        description="A fresh random value per submission (a UUID fits): it also keys the stored answer",
    ),
]


@get(
    "/consultations/{slug:str}",
    responses={200: ResponseSpec(data_container=ConsultationForm, description="The public form"), **documented(400, 404, 503)},
    summary="The consultation's public form",
)
async def form(slug: FromPath[str], request: Request, services: NamedDependency[Services], after: After = None) -> Response[bytes]:
    await wait(services, services.forms, after)
    current = await services.forms.form(consultation_id(slug))
    if current is None:
        raise await absent(services, services.forms, ConsultationNotFound(slug))
    body, etag = render_form(current, datetime.now(UTC))
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@post(
    "/consultations/{slug:str}/responses",
    status_code=201,
    opt={"rate_limit": "responses"},
    responses={
        201: ResponseSpec(data_container=Receipt, description="The response was recorded"),
        **documented(400, 404, 409, 413, 422, 429, 503),
    },
    summary="Submit a response",
)
async def submit(slug: FromPath[str], data: JSONBody[ResponseIn], services: NamedDependency[Services], idempotency_key: IdempotencyKey = None) -> Response[bytes]:
    # Shielded: once accepted, a submission is recorded and remembered even if the client goes away.
    body = await asyncio.shield(asyncio.ensure_future(services.submit(slug, data.answers, idempotency_key)))
    return Response(body, status_code=201, media_type="application/json")


@get("/consultations/{slug:str}/stats", summary="Responses counted so far", responses=documented(400, 404, 503))
async def stats(
    slug: FromPath[str],
    services: NamedDependency[Services],
    after: After = None,
) -> Stats:
    await wait(services, services.stats, after)
    result = await services.stats.stats(consultation_id(slug), services.app_name)
    if result is None:
        raise await absent(services, services.stats, ConsultationNotFound(slug))
    return result
