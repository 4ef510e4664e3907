"""The pages behind the emailed signup links: their security headers, and words that are true of the person's case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from litestar.testing import AsyncTestClient

from domain.consultations.consultation import Definition
from domain.signups.signup import Purpose
from runtime import System
from tests.conftest import Inbox
from tests.integration.test_signups import EMAIL, HTML, NAME, SESSIONS, api, arrived, eventually, h1, inbox, links, sign_up, text  # noqa: F401

AGAIN = "sign up again where you found this consultation"


def confirm_url(system: System, slug: str, session_id: str, email: str) -> str:
    signup_id = system.signups.request(slug, session_id, NAME, email, True)
    return f"/signups/{signup_id}/confirm?token={system.signups.links.token(Purpose.CONFIRM, signup_id, 1)}"


async def test_every_page_of_the_links_is_framed_by_no_site_cached_by_none_and_sends_no_referrer(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    url = confirm_url(system, SESSIONS, "session_1300", EMAIL)
    pages = [
        await api.get(url, headers=HTML),  # the link's page
        await api.post(url, headers=HTML),  # its button's answer
        await api.get(url.replace("token=", "token=guess"), headers=HTML),  # a refusal
        await api.get("/signups/not-a-uuid/confirm?token=x", headers=HTML),  # no route at all
    ]
    assert [p.status_code for p in pages] == [200, 200, 404, 404]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        policy = {d.strip() for d in page.headers["content-security-policy"].split(";")}
        assert {"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "img-src data:"} <= policy
        assert (page.headers["referrer-policy"], page.headers["cache-control"]) == ("no-referrer", "no-store")


async def test_the_confirmation_promises_a_reminder_only_to_those_who_get_one(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int], seed: Definition
) -> None:
    """A reminder goes out a day before a session to those confirmed before then: not to one confirming within the day."""
    now = datetime.now(UTC).replace(microsecond=0)
    soon, later = (msgspec.structs.replace(s, starts_at=now + timedelta(hours=h)) for s, h in zip(seed.sessions, (12, 72)))
    system.consultations.load(msgspec.structs.replace(seed, slug="soon", sessions=(soon, later)))
    promised = {}
    for session, email in ((soon, "within.the.day@example.org"), (later, "in.good.time@example.org")):
        page = await api.post(confirm_url(system, "soon", session.id, email), headers=HTML)
        assert h1(page) == "Your seat is confirmed" and "We have emailed you the details" in page.text
        promised[email] = "remind" in page.text

    def details() -> dict[str, str]:  # the confirm links may go unsent: already used when the mailer comes to them
        return {m["To"].addresses[0].addr_spec: text(m) for m in inbox[0].received() if m["Subject"].startswith("You are in")}

    await eventually(lambda: len(details()) == 2)
    assert promised == {email: "remind" in words for email, words in details().items()}
    assert promised == {"within.the.day@example.org": False, "in.good.time@example.org": True}


async def test_pages_suggest_signing_up_again_without_naming_a_form_agora_does_not_serve(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    await sign_up(api)
    (mail,) = await arrived(inbox[0], 1)
    pages = [
        await api.get(links(mail)["cancel"].replace("token=", "token=guess"), headers=HTML),  # a link that does not work
        await api.post(links(mail)["cancel"], headers=HTML),  # cancelled
        await api.get(links(mail)["confirm"], headers=HTML),  # its confirmation voided
    ]
    await api.post(links(mail)["erase"])
    pages.append(await api.get(links(mail)["cancel"], headers=HTML))  # erased
    for page in pages:
        assert AGAIN in page.text and "consultation's form" not in page.text, page.text
