"""Every refusal as an RFC 9457 problem: one place maps domain and HTTP errors to problem types."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError, PersistenceError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsException
from redis.exceptions import RedisError

from domain.campaigns.cluster import ClusterConflict
from domain.campaigns.service import ClusterNotFound, NotACampaign
from domain.errors import (
    ConsultationNotFound,
    DomainError,
    FieldError,
    IdempotencyKeyReused,
    InvalidDefinition,
    InvalidInput,
    InvalidResponse,
    NotAcceptingResponses,
    NotAuthenticated,
    ResponseNotFound,
    ThemeNotFound,
    LedgerDamaged,
    UnreadableEvent,
    SessionFull,
    SessionNotFound,
    SessionStarted,
    ShredIncomplete,
    SignupLinkInvalid,
    StaffNotFound,
)
from domain.reports.report import NotReadyForFinal, QuoteNotCandidate, ReportConflict, ReportMismatch, ReportNotFound
from domain.review.case import CaseClosed, ClaimConflict, NotCompleted
from domain.signups.signup import SessionGone
from domain.staff.member import NotPermitted, StaffConflict
from domain.text import moment

log = logging.getLogger(__name__)

_DOMAIN: dict[type[DomainError], tuple[int, str, str]] = {
    ConsultationNotFound: (404, "consultation-not-found", "Consultation not found"),
    NotAcceptingResponses: (409, "consultation-not-open", "The consultation is not taking responses"),
    InvalidResponse: (422, "invalid-response", "The response breaks the consultation's rules"),
    InvalidInput: (422, "invalid-input", "The request breaks a rule"),
    InvalidDefinition: (422, "invalid-definition", "The consultation definition is invalid"),
    ResponseNotFound: (404, "response-not-found", "Response not found"),
    ThemeNotFound: (404, "theme-not-found", "Theme not found"),
    UnreadableEvent: (409, "event-unreadable", "The log holds an event this code cannot read"),
    LedgerDamaged: (409, "ledger-inconsistent", "The ledger does not match the log"),
    SessionNotFound: (404, "session-not-found", "Session not found"),
    StaffNotFound: (404, "staff-not-found", "Staff member not found"),
    NotAuthenticated: (401, "not-authenticated", "Not signed in"),
    NotPermitted: (403, "not-permitted", "Not permitted"),
    ClaimConflict: (409, "claim-conflict", "This response is not claimed by you"),  # to act on it, or because another holds it
    CaseClosed: (409, "review-completed", "The review is completed"),
    NotCompleted: (409, "review-not-completed", "The review is not completed"),
    StaffConflict: (409, "staff-conflict", "The change contradicts the staff member's state"),
    ShredIncomplete: (503, "shred-incomplete", "Shredding recorded, not finished"),
    SignupLinkInvalid: (404, "signup-link-invalid", "The link is not valid"),
    SessionStarted: (409, "session-started", "The session has started"),
    SessionFull: (409, "session-full", "The session is full"),
    ReportNotFound: (404, "report-not-found", "No such report version"),
    QuoteNotCandidate: (422, "quote-not-candidate", "Not a candidate quote"),
    NotReadyForFinal: (409, "report-not-final", "A final report cannot be published yet"),
    ReportConflict: (409, "report-conflict", "The change contradicts the report's versions"),
    ReportMismatch: (500, "report-mismatch", "The report does not match its published digest"),
    IdempotencyKeyReused: (422, "idempotency-key-reused", "Idempotency key reused"),
    ClusterNotFound: (404, "cluster-not-found", "Cluster not found"),
    ClusterConflict: (409, "cluster-conflict", "The change contradicts the clusters' state"),
    NotACampaign: (409, "not-a-campaign", "Not a confirmed campaign"),
}

_HTTP: dict[int, tuple[str, str]] = {
    400: ("malformed-request", "The request could not be read"),
    401: ("not-authenticated", "Not signed in"),
    403: ("not-permitted", "Not permitted"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "The request body is too large"),
    429: ("rate-limited", "Too many requests"),
}


class Problem(msgspec.Struct):
    """An RFC 9457 problem: every refusal is one of these."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


_STATUS_WORDS = {
    400: "Unreadable request", 401: "Not signed in", 403: "Not permitted", 404: "Not found", 409: "Conflict", 410: "Gone",
    413: "Body too large", 422: "Breaks a rule", 429: "Too many requests", 503: "Unavailable for now",
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """The problems a route can answer with, for its OpenAPI description."""
    return {
        status: ResponseSpec(Problem, description=_STATUS_WORDS[status], media_type="application/problem+json", generate_examples=False)
        for status in statuses
    }


STAFF_PROBLEMS = documented(400, 401, 403, 404, 409, 422, 503)

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"Missing required (\w+) parameter '([^']*)'")  # litestar's words for a required parameter not sent


def problem(
    status: int, name: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status, type_=f"/problems/{name}", title=title, detail=detail, headers=headers, extra=extra or None
    )


def _kind(exc: DomainError) -> tuple[int, str, str]:
    return next(v for cls, v in _DOMAIN.items() if isinstance(exc, cls))


def status_of(exc: DomainError) -> int:
    return _kind(exc)[0]


def domain_problem(request: Request, exc: DomainError) -> Response:
    status, name, title = _kind(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["errors"] = [{"field": e.field, "detail": e.detail} for e in exc.errors]
    if isinstance(exc, ClaimConflict) and exc.holder:
        extra.update(holder=str(exc.holder), until=moment(exc.until) if exc.until else None)
    if isinstance(exc, IdempotencyKeyReused):  # a header at fault, named as a field is
        extra["errors"] = [{"field": "Idempotency-Key", "detail": exc.detail}]
    if isinstance(exc, SessionFull | SessionGone):
        extra["alternatives"] = msgspec.to_builtins(exc.alternatives)  # sessions with seats left: confirm into one
    if isinstance(exc, NotReadyForFinal):
        extra["left"] = exc.left  # responses still to review
    return problem(status, name, title, exc.detail, **extra).to_response(request)


def http_problem(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ProblemDetailsException):
        return exc.to_response(request)
    name, title = _HTTP.get(exc.status_code, ("http-error", exc.detail))
    headers = dict(exc.headers or {})
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        extra["errors"] = [field_error(e, _request_names(request)) for e in exc.extra]
        detail = "The request does not fit the schema: see errors."  # litestar's names the URL, query string and all
    elif isinstance(exc, ValidationException) and (missing := _MISSING.match(exc.detail)):
        detail = f"The required {missing[1]} parameter {missing[2]} is missing."  # litestar's quotes the query string
        extra["errors"] = [{"field": missing[2], "detail": detail}]
    elif exc.status_code == 401:  # litestar's own words name its JWT middleware, not what to do
        detail = (
            "This route needs a staff token: sign in with POST /staff/token and send it as `Authorization: Bearer <token>`. "
            "A token stops working when it expires, or when its member signs out, changes password or is deactivated: sign in again."
        )
        headers.setdefault("WWW-Authenticate", "Bearer")
    if exc.status_code == 429 and "RateLimit-Reset" in headers:
        headers["Retry-After"] = seconds = headers["RateLimit-Reset"]
        detail = f"Too many requests of this kind from your address in a minute; nothing of this one was recorded. Try again in {seconds} s."
    return problem(exc.status_code, name, title, detail, headers=headers, **extra).to_response(request)


def store_problem(request: Request, exc: PersistenceError) -> Response:
    log.exception("event store unavailable")
    detail = "The event store is busy or unavailable; nothing was recorded. Try again shortly."
    return problem(503, "store-unavailable", "Service unavailable", detail, headers={"Retry-After": "1"}).to_response(request)


def conflict_problem(request: Request, exc: IntegrityError) -> Response:
    detail = "Someone else changed this at the same moment; nothing of yours was recorded. Look again and retry."
    return problem(409, "concurrent-change", "Changed concurrently", detail).to_response(request)


def unexpected_problem(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal error", "Something went wrong on our side; it has been logged.").to_response(request)


def redis_problem(request: Request, exc: RedisError) -> Response:
    log.warning("redis unavailable on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)  # an outage, not a bug: one line
    detail = "A view or the request limits are unavailable; try again shortly."
    return problem(503, "views-unavailable", "Service unavailable", detail, headers={"Retry-After": "1"}).to_response(request)


def field_error(error: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, str]:
    """litestar names the offending field as `key`, or `data` for the body as a whole (so does api.edge);
    a parameter named otherwise in the request (`names`: the handler's to the request's) by its request name."""
    message = str(error.get("message", ""))
    unknown = _UNKNOWN_FIELD.search(message)
    field = unknown.group(1)[:80] if unknown else str(error.get("key") or "data")
    field = (names or {}).get(field, field)
    return {"field": "body" if field == "data" else field, "detail": message}


def _request_names(request: Request) -> dict[str, str]:
    """The handler's parameters that the request names otherwise (`review_state` is `?state=`)."""
    try:
        parameters = request.route_handler.parsed_fn_signature.parameters
    except (KeyError, AttributeError):  # no handler resolved (the request was refused before routing)
        return {}
    return {
        name: alias for name, f in parameters.items()
        if (alias := getattr(f.kwarg_definition, "name", None) or getattr(f.kwarg_definition, "query", None)) and alias != name
    }


exception_handlers = {
    DomainError: domain_problem,
    HTTPException: http_problem,
    IntegrityError: conflict_problem,
    PersistenceError: store_problem,
    RedisError: redis_problem,
    Exception: unexpected_problem,
}
