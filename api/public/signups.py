"""Working-session signups: asking for a seat, and the links in the mailer's emails.

Asking answers 202 with the same words whether or not the address was signed up before, so
the endpoint tells no one who registered. An email's link opens a page with a button: links
only read, the button's POST acts, so a mail scanner that follows links confirms nothing.
The page checks the link first and names the consultation and session; the POSTs answer JSON,
or a page when a browser asks for one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Template

from api.problems import documented
from api.public.pages import about, page, wants_page
from api.services import Services
from domain.consultations.consultation import Consultation, Session
from domain.signups.service import Signups
from domain.signups.signup import ERASE_WITHIN, Purpose, State, reminded

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
    state: Annotated[str, msgspec.Meta(description="pending, confirmed, cancelled, erasing (the cancellation is being sent) or erased")]
    session_id: str | None
    detail: str


ACCEPTED = Accepted(
    "If this address can receive email, a message is on its way (at most one every 10 minutes): confirm with "
    "its link to take a seat. Until you confirm, nothing is booked."
)

_DONE = {
    "confirm": "Your seat is confirmed. We are emailing you the details, with an invitation for your calendar.",
    "cancel": "Your signup is cancelled. If you held a seat, it is free again. You may sign up again while seats are left.",
    "erase": "Your name and email are erased. We can no longer write to you, or tell who you were.",
}

_PURPOSES = {"confirm": Purpose.CONFIRM, "cancel": Purpose.MANAGE, "erase": Purpose.MANAGE}
_DETAILS_SENT = "We have emailed you the details, with an invitation for your calendar."
# A second click on a confirmation link: it books nothing, and sends nothing, more.
_ALREADY = "Your seat was already confirmed: nothing more to do, and nothing more is sent. We email the details once, when you first confirm."
_AGAIN = "To take part again, sign up again where you found this consultation, while seats are left."
_FINAL = (
    "Erasure is final: we delete your name and email, can no longer write to you, and cannot undo it. "
    "If you held a seat, it is freed for someone else."
)
_WITHIN = f"within {ERASE_WITHIN // timedelta(hours=1)} hours of your click at the latest, even if the email cannot be delivered by then"
_ERASING = (
    "Your seat is free again for someone else. We are emailing you a calendar cancellation that removes the session from "
    f"your calendar; right after it is sent, we erase your name and email ({_WITHIN})."
)


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


# A link from an email may arrive with whatever a mail client appends to it: the pages take any query.
@get("/signups/{signup_id:uuid}/{action:str}", media_type=MediaType.HTML, include_in_schema=False, opt={"any_query": True})
async def link_page(
    signup_id: FromPath[UUID], action: FromPath[Action], token: TokenIn, services: NamedDependency[Services]
) -> Template:
    """The page an emailed link opens: the link checked, what it is about, and one button that makes the POST
    (to this same address). A link that cannot work is explained here, before any click."""
    # In a thread of its own (it reads the event store); litestar wraps a sync GET beside a POST twice.
    return await sync_to_thread(_link_page, services.signups, signup_id, action, token)


def _link_page(signups: Signups, signup_id: UUID, action: Action, token: str) -> Template:
    signup = signups.opened(signup_id, _PURPOSES[action], token)
    consultation = signups.consultation_of(signup)
    session = _session(consultation, signup.session_id)
    context = about(consultation, session)
    held = signup.state is State.CONFIRMED
    if action == "confirm":
        if held:
            return page("Your seat is confirmed", [f"You have already confirmed: nothing more to do. {_DETAILS_SENT}"], about=context)
        signups.seat(signup, None, datetime.now(UTC))  # full, started or closed: refused here, with the alternatives
        return page(
            "Confirm your seat",
            ["Press the button to take your seat in this session. We then email you the details, with an invitation for "
             "your calendar.", "Seats go in the order people confirm; until you confirm, nothing is booked."],
            about=context, buttons=[("", "Confirm my seat")],
        )
    erase_link = ("erase?" + urlencode({"token": token}), "Erase my name and email instead")
    if action == "cancel":
        if signup.state is State.CANCELLED:
            return page("Your signup is cancelled", ["Nothing more to do. " + _AGAIN], about=context, links=[erase_link])
        if held:
            words = ("Press the button to give back your seat in this session. We then email you a calendar cancellation that "
                     "removes it from your calendar.")
            return page("Cancel your seat", [words], about=context, buttons=[("", "Cancel my seat")], links=[erase_link])
        words = "You have not confirmed a seat. Cancelling withdraws your request: its confirmation link stops working."
        return page("Cancel your signup", [words], about=context, buttons=[("", "Cancel my signup")], links=[erase_link])
    warning = (
        "you hold a seat in this session, and erasing gives it up at once. We then send you one last email, a calendar "
        f"cancellation that removes the session from your calendar, and erase your name and email right after ({_WITHIN})."
        if held else None
    )
    return page("Erase your name and email", [_FINAL], about=context, warning=warning, buttons=[("", "Erase my name and email")])


@post(
    "/signups/{signup_id:uuid}/{action:str}",
    status_code=200,
    sync_to_thread=True,
    opt={"rate_limit": "signups", "any_query": True},
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
    """Refusals are problems, which api.public.pages turns into pages for a browser."""
    signups = services.signups
    before = signups.get(signup_id)
    if action == "confirm":
        signup = signups.confirm(signup_id, token, session_id)
    elif action == "cancel":
        signup = signups.cancel(signup_id, token)
    else:
        signup = signups.erase(signup_id, token)
    erasing = signup.state is State.ERASING
    again = action == "confirm" and before.state is State.CONFIRMED
    if not wants_page(request):
        detail = _ERASING if erasing else _ALREADY if again else _DONE[action]
        return Response(SignupState(signup.state.value, signup.session_id if action != "erase" else None, detail))
    consultation = signups.consultation_of(signup)
    session = _session(consultation, signup.session_id)
    context = about(consultation, session)
    held = before.state is State.CONFIRMED
    if again:
        return page("Your seat is confirmed", [_ALREADY], about=context)
    if action == "confirm":
        moved = [] if before.session_id == signup.session_id else [
            f"You asked for “{_session(consultation, before.session_id).title}”; your seat is in this session instead."
        ]
        reminder = " We will remind you a day before." if reminded(signups.confirmed_at(signup), session.starts_at) else ""
        return page("Your seat is confirmed", [*moved, _DETAILS_SENT + reminder], about=context)
    if action == "cancel":
        words = (
            "Your seat is free again for someone else. We are emailing you a calendar cancellation that removes it from your calendar."
            if held else "Nothing was booked. We are emailing you a short note that your signup is cancelled."
        )
        return page("Your signup is cancelled", [words, _AGAIN], about=context)
    if erasing:
        return page("Your seat is given up; your name and email are being erased", [_ERASING, _AGAIN], about=context)
    return page("Your name and email are erased", ["We can no longer write to you, or tell who you were."], about=context)


def _session(consultation: Consultation, session_id: str) -> Session:
    return next(s for s in consultation.definition.sessions if s.id == session_id)
