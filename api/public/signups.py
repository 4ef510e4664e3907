"""Working-session signups: asking for a seat, and the links in the mailer's emails.

Asking answers 202 with the same words whether or not the address was signed up before, so
the endpoint tells no one who registered. An email's link opens a page with a button: links
only read, the button's POST acts, so a mail scanner that follows links confirms nothing.
The POSTs answer JSON, or a page when a browser asks for one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from api.problems import documented
from api.public.pages import page, refusal_page
from api.services import Services
from domain.errors import DomainError

Action = Literal["confirm", "cancel", "erase"]
TokenIn = Annotated[str, QueryParameter(min_length=1, max_length=100, description="The token from the emailed link")]
SessionIn = Annotated[
    str | None, QueryParameter(max_length=40, required=False, description="Confirm into this session instead (say, when yours is full)")
]


class SignupIn(msgspec.Struct, forbid_unknown_fields=True):
    """Ask to join a working session. Kept apart from any response; the mailer sends a link to confirm."""

    session_id: Annotated[str, msgspec.Meta(max_length=40)]
    name: Annotated[str, msgspec.Meta(max_length=1000)]
    email: Annotated[str, msgspec.Meta(max_length=320)]
    consent: Annotated[bool, msgspec.Meta(description="Needed when the form's `signup_consent` is set")] = False


class Accepted(msgspec.Struct):
    detail: str


class SignupState(msgspec.Struct):
    state: Annotated[str, msgspec.Meta(description="pending, confirmed, cancelled or erased")]
    session_id: str | None
    detail: str


ACCEPTED = Accepted(
    "If this address can receive email, a message is on its way (at most one every 10 minutes): confirm with "
    "its link to take a seat. Until you confirm, nothing is booked."
)

_DONE = {
    "confirm": ("Your seat is confirmed", "We have emailed you the details, with an invitation for your calendar."),
    "cancel": ("Your signup is cancelled", "If you held a seat, it is free again. You may sign up again while seats are left."),
    "erase": ("Your name and email are erased", "We can no longer write to you, or tell who you were."),
}

_BUTTONS = {"confirm": "Confirm my seat", "cancel": "Cancel my signup", "erase": "Erase my name and email"}


@post(
    "/consultations/{slug:str}/signups",
    status_code=202,
    sync_to_thread=True,
    opt={"rate_limit": "signups"},
    responses=documented(400, 404, 409, 413, 422, 429, 503),
    summary="Sign up for a working session",
)
def sign_up(slug: FromPath[str], data: JSONBody[SignupIn], services: NamedDependency[Services]) -> Accepted:
    services.signups.request(slug, data.session_id, data.name, data.email, data.consent)
    return ACCEPTED


@get("/signups/{signup_id:uuid}/{action:str}", media_type=MediaType.HTML, include_in_schema=False)
async def link_page(signup_id: FromPath[UUID], action: FromPath[Action], token: TokenIn) -> str:
    """The page an emailed link opens: one button that makes the POST (to this same address)."""
    return page(_BUTTONS[action], "", [("", _BUTTONS[action])])


@post(
    "/signups/{signup_id:uuid}/{action:str}",
    status_code=200,
    sync_to_thread=True,
    opt={"rate_limit": "signups"},
    responses={
        200: ResponseSpec(SignupState, description="Done: the signup's state (or, for a browser, a page saying so)"),
        **documented(400, 404, 409, 422, 429, 503),
    },
    summary="Confirm, cancel or erase a signup, with the token from its email",
)
def act(
    signup_id: FromPath[UUID], action: FromPath[Action], token: TokenIn, request: Request[Any, Any, Any],
    services: NamedDependency[Services], session_id: SessionIn = None,
) -> Response[Any]:
    browser = request.accept.best_match(["application/json", "text/html"], default="application/json") == "text/html"
    try:
        if action == "confirm":
            signup = services.signups.confirm(signup_id, token, session_id)
        elif action == "cancel":
            signup = services.signups.cancel(signup_id, token)
        else:
            signup = services.signups.erase(signup_id, token)
    except DomainError as e:
        if not browser:
            raise
        return refusal_page(e, token)
    title, detail = _DONE[action]
    if browser:
        return Response(page(title, detail), media_type=MediaType.HTML)
    return Response(SignupState(signup.state.value, signup.session_id if action != "erase" else None, detail))
