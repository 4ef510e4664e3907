"""The pages people open from an email, and every answer of those routes to a browser.

One template (api/templates/page.html.j2, which the report's pages extend too): no JavaScript,
nothing loaded from elsewhere. A browser (Accept: text/html) that follows a signup link gets a
page for every answer, refusals and rate limits included, with the same facts as the problem a
program gets (`as_pages` turns the problem handlers' answers into pages for those routes, and for
the addresses of pages, `….html`, only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import MediaType, Request, Response, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from domain.consultations.consultation import Consultation, Session
from domain.signups.signup import when

LINKS = "/signups/"  # the routes whose answers a browser gets as pages
FOLDER = Path(__file__).parent.parent / "templates"
FAVICON = (FOLDER / "favicon.svg").read_bytes()  # also inline in every page

ENV = Environment(loader=FileSystemLoader(FOLDER), autoescape=True, undefined=StrictUndefined)
TEMPLATES = TemplateConfig(instance=JinjaTemplateEngine.from_environment(ENV))

# What every page tells the browser: it runs nothing, loads nothing from elsewhere, and no site frames it. Each
# kind of page adds where its forms post (the report's: nowhere, and it shows no image, not even the icon).
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
# The signup pages: their icon inline, their buttons posting to themselves. Their address holds a token: no cache
# keeps them, and no other site is sent it as a referrer.
HEADERS = {"Content-Security-Policy": f"{POLICY}; img-src data:; form-action 'self'", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def wants_page(request: Request[Any, Any, Any]) -> bool:
    return request.accept.best_match(["application/json", "text/html"], default="application/json") == "text/html"


def about(consultation: Consultation, session: Session | None = None) -> dict[str, Any]:
    """What a page is about: the consultation, and the session with its time for people and for machines."""
    return {"consultation": consultation.definition.title, "session": session and _session(session)}


def _session(s: Session) -> dict[str, str]:
    return {"title": s.title, "starts_at": s.starts_at.isoformat(), "when": when(s.starts_at, s.duration_minutes), "venue": s.venue}


def page(
    heading: str, paragraphs: Iterable[str] = (), *, title: str | None = None, about: dict[str, Any] | None = None,
    warning: str | None = None, buttons: Iterable[tuple[str, str]] = (), links: Iterable[tuple[str, str]] = (),
    status: int = 200, headers: dict[str, str] | None = None,
) -> Template:
    """A page, with HEADERS; `buttons` are (POST target relative to this page, "" for itself; label), `links` (href, text)."""
    if title is None:
        title = f"{heading}: {about['consultation']}" if about else f"{heading}: Agora"
    context = {
        "title": title, "heading": heading, "about": about, "warning": warning, "paragraphs": list(paragraphs),
        "buttons": [{"action": a, "label": label} for a, label in buttons], "links": [{"href": h, "text": t} for h, t in links],
    }
    return Template("page.html.j2", context=context, status_code=status, headers={**(headers or {}), **HEADERS}, media_type=MediaType.HTML)


def offers(token: str, alternatives: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """A button per session with seats left, confirming into it (relative: works behind a path prefix)."""
    return [
        (
            f"?{urlencode({'token': token, 'session_id': a['session_id']})}",
            f"Take a seat in “{a['title']}” instead: {when(datetime.fromisoformat(a['starts_at']), a['duration_minutes'])} "
            f"({a['seats_left']} left)",
        )
        for a in alternatives
    ]


def in_words(seconds: int) -> str:
    return "a second" if seconds <= 1 else f"{seconds} seconds" if seconds < 90 else f"{round(seconds / 60)} minutes"


def problem_page(request: Request[Any, Any, Any], problem: dict[str, Any], headers: dict[str, str]) -> Template:
    """A problem as a page: the same facts, in words for the person who followed the link."""
    kind = str(problem.get("type", "")).removeprefix("/problems/")
    detail = str(problem.get("detail", ""))
    status = int(problem.get("status", 500))
    again = [("", "Try again")] if request.method == "POST" else []
    if kind == "signup-link-invalid":
        return page("This link does not work", [detail], status=status, headers=headers)
    if kind == "malformed-request" and not request.query_params.get("token"):
        words = "This link is incomplete: its token is missing. Some mail programs cut long links: copy the whole link from the email."
        return page("This link is incomplete", [words], status=status, headers=headers)
    if kind in ("malformed-request", "not-found"):
        words = "This is not an address from one of our emails. Check that you copied the whole link from the email."
        return page("This is not a link we sent", [words], status=status, headers=headers)
    if kind == "rate-limited":
        wait = in_words(int(headers.get("Retry-After", "60")))
        words = f"Too many requests came from your network in the last minute, so nothing was done. Wait {wait}, then try again."
        return page("Please wait a moment", [words], status=status, headers=headers, buttons=again)
    if kind in ("session-full", "session-started"):
        alternatives = problem.get("alternatives") or []
        follow = "You can take a seat in another session instead:" if alternatives else "No other session has seats left."
        heading = "This session is full" if kind == "session-full" else "This session has started"
        token = request.query_params.get("token", "")
        return page(heading, [detail, follow], status=status, headers=headers, buttons=offers(token, alternatives))
    if kind == "consultation-not-open":
        return page("Signups are closed", [detail], status=status, headers=headers)
    if status >= 500:
        return page("Please try again shortly", [detail, "Nothing was done."], status=status, headers=headers, buttons=again)
    return page(str(problem.get("title", "That did not work")), [detail], status=status, headers=headers)


Handler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]


def as_page(handler: Handler) -> Handler:
    """An exception handler answering with a page for a browser on the signup links' routes, and on the addresses
    of pages (`….html`: the report's), where a browser showed the problem's raw JSON."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        path = request.scope["path"]
        if not (wants_page(request) and isinstance(response.content, dict)):
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        if path.startswith(LINKS):
            return problem_page(request, response.content, headers)
        if path.endswith(".html"):
            problem = response.content
            return page(str(problem.get("title", "That did not work")), [str(problem.get("detail", ""))], status=response.status_code, headers=headers)
        return response

    return handle


def as_pages(handlers: dict[type[Exception], Handler]) -> dict[type[Exception], Handler]:
    return {cls: as_page(handler) for cls, handler in handlers.items()}


@get("/favicon.ico", media_type="image/svg+xml", include_in_schema=False, opt={"exclude_from_auth": True})
async def favicon() -> bytes:
    return FAVICON
