"""The small HTML pages that signup links open: no JavaScript, nothing loaded from elsewhere."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from litestar import MediaType, Response

from api.problems import status_of
from domain.errors import DomainError, SessionFull
from domain.signups.signup import Availability


def page(title: str, detail: str, buttons: list[tuple[str, str]] = ()) -> str:
    """A minimal page; `buttons` are (POST target relative to this page, "" for itself; label)."""
    forms = "".join(
        f'<form method="post"{_action(url)}><button>{html.escape(label)}</button></form>' for url, label in buttons
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>{forms}</body></html>"
    )


def refusal_page(e: DomainError, token: str) -> Response[str]:
    buttons = []
    if isinstance(e, SessionFull):
        buttons = [
            (f"?{urlencode({'token': token, 'session_id': a.session_id})}", _offer(a))  # relative: works behind a path prefix
            for a in e.alternatives
            if isinstance(a, Availability)
        ]
    return Response(page("That did not work", e.detail, buttons), status_code=status_of(e), media_type=MediaType.HTML)


def _action(url: str) -> str:
    return f' action="{html.escape(url)}"' if url else ""


def _offer(a: Availability) -> str:
    return f"Take a seat in {a.title} instead ({a.seats_left} left)"


