"""Working-session signups over HTTP, with the mail that really arrives through SMTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import msgspec
import pytest
import redis
from icalendar import Calendar
from litestar.testing import AsyncTestClient

from api.app import create_app
from runtime.settings import Settings
from runtime import System
from domain.consultations.consultation import Definition
from domain.signups.signup import RESEND_AFTER, Purpose, Signup, State, when
from domain.staff.member import Role
from tests.conftest import ON_SQLITE_ONLY, SLUG, Inbox, caught_up, raw_storage

SESSIONS = "working-sessions"
NAME, EMAIL = "Zoë Signup-Person", "zoe.signup@example.org"
LINK = re.compile(r"http://agora\.test(/signups/[0-9a-f-]+/(confirm|cancel|erase)\?token=[\w-]+)")


def future(seed: Definition, capacity: int = 50) -> Definition:
    """The seed with its sessions moved to the future: three and four days from now."""
    now = datetime.now(UTC).replace(microsecond=0)
    sessions = tuple(
        msgspec.structs.replace(s, starts_at=now + timedelta(days=3 + i), capacity=capacity) for i, s in enumerate(seed.sessions)
    )
    return msgspec.structs.replace(seed, slug=SESSIONS, sessions=sessions)


@pytest.fixture
def inbox(smtpd: Callable[..., int]) -> tuple[Inbox, int]:
    handler = Inbox()
    return handler, smtpd(handler)


@pytest.fixture
async def api(system: System, store_env: dict[str, str], settings: Settings, inbox: tuple[Inbox, int], seed: Definition, request: pytest.FixtureRequest):
    """The API with its mailer sending to the loopback SMTP server, and a consultation with future sessions."""
    capacity = getattr(request, "param", 50)
    system.consultations.load(future(seed, capacity))
    settings = msgspec.structs.replace(settings, smtp_url=f"smtp://127.0.0.1:{inbox[1]}", public_url="http://agora.test")
    async with AsyncTestClient(create_app(settings, store_env)) as client:
        await caught_up(client, system.app.head())
        yield client


async def arrived(inbox: Inbox, count: int) -> list[EmailMessage]:
    """The messages received so far, once there are `count` of them (bounded wait)."""
    deadline = time.monotonic() + 10
    while len(inbox.envelopes) < count:
        assert time.monotonic() < deadline, f"{len(inbox.envelopes)} messages arrived, expected {count}"
        await asyncio.sleep(0.02)
    return inbox.received()


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


def text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def links(message: EmailMessage) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in LINK.finditer(text(message))}


def invite(message: EmailMessage) -> Calendar:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_content())


async def sign_up(client: AsyncTestClient, email_: str = EMAIL, session_id: str = "session_1300", name: str = NAME) -> Any:
    body = {"session_id": session_id, "name": name, "email": email_, "consent": True}
    return await client.post(f"/consultations/{SESSIONS}/signups", json=body)


async def seats_left(client: AsyncTestClient, system: System, slug: str = SESSIONS) -> dict[str, int]:
    r = await client.get(f"/consultations/{slug}", params={"after": system.app.head()})
    return {s["id"]: s["seats_left"] for s in r.json()["sessions"]}


async def test_sign_up_confirm_and_receive_the_invitation(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    r = await sign_up(api)
    assert r.status_code == 202, r.text
    (confirm_mail,) = await arrived(inbox[0], 1)
    assert confirm_mail["To"].addresses[0].display_name == NAME
    assert confirm_mail["To"].addresses[0].addr_spec == EMAIL
    url = links(confirm_mail)["confirm"]
    assert (await seats_left(api, system))["session_1300"] == 50  # asking takes no seat

    page = await api.get(url)  # the emailed link opens a page; only its button acts
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    session = system.consultations.get(SESSIONS).definition.sessions[0]
    # It names the consultation and the session, with its time for people and for machines, and says what follows.
    assert "Help Shape Our Global Community Code of Conduct" in page.text and session.title in page.text
    assert f'<time datetime="{session.starts_at.isoformat()}">{when(session.starts_at, session.duration_minutes)}</time>' in page.text
    assert '<form method="post"><button type="submit">Confirm my seat</button></form>' in page.text
    assert "invitation for your calendar" in page.text
    assert system.signups.get(system.signups.find(SESSIONS, EMAIL)).state is State.PENDING

    r = await api.post(url)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "confirmed" and r.json()["session_id"] == "session_1300"
    assert (await seats_left(api, system))["session_1300"] == 49

    _, details = await arrived(inbox[0], 2)
    assert "confirmed" in text(details) and set(links(details)) == {"cancel", "erase"}
    event = invite(details).walk("VEVENT")[0]
    assert event.decoded("DTSTART") == session.starts_at and event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert invite(details)["METHOD"] == "REQUEST"
    # Each message is recorded as an event (just after it went out), under its Message-ID.
    signup_id = system.signups.find(SESSIONS, EMAIL)
    await eventually(lambda: system.signups.get(signup_id).sent == {confirm_mail["Message-ID"], details["Message-ID"]})

    r = await api.post(url)  # a second click books nothing more, and promises no email: none is sent
    assert r.status_code == 200 and r.json()["state"] == "confirmed"
    assert "already confirmed" in r.json()["detail"] and "emailing" not in r.json()["detail"]
    assert (await seats_left(api, system))["session_1300"] == 49
    page = await api.post(url, headers={"Accept": "text/html"})  # and says so, in a browser, naming the session
    assert page.status_code == 200 and "<h1>Your seat is confirmed</h1>" in page.text and session.title in page.text
    assert "already confirmed" in page.text and "nothing more is sent" in page.text and "We have emailed" not in page.text
    await asyncio.sleep(0.5)
    assert len(inbox[0].envelopes) == 2
    page = await api.get(url)  # the link opened again: no button, it is done
    assert "<h1>Your seat is confirmed</h1>" in page.text and "<button" not in page.text


async def test_asking_again_answers_the_same_and_sends_at_most_once_in_a_while(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    first = await sign_up(api)
    (mail1,) = await arrived(inbox[0], 1)
    signup_id = system.signups.find(SESSIONS, EMAIL)
    await eventually(lambda: len(system.signups.get(signup_id).sent) == 1)  # recorded just after it went out
    head = system.app.head()
    again = await sign_up(api, email_=EMAIL.upper(), session_id="session_1800", name="Someone Else")
    assert (first.status_code, first.content) == (again.status_code, again.content)  # reveals nothing
    assert system.app.head() == head  # within RESEND_AFTER: nothing recorded, so nothing sent
    other = await sign_up(api, email_="someone.else@example.org")
    assert other.content == first.content
    await arrived(inbox[0], 2)

    # Later, asking again replaces the link (for the session now asked for); the name stays the first one.
    later = datetime.now(UTC) + RESEND_AFTER
    system.signups.request(SESSIONS, "session_1800", "Someone Else", EMAIL, True, now=later)
    mail2 = next(m for m in (await arrived(inbox[0], 3))[1:] if m["To"].addresses[0].addr_spec == EMAIL)
    assert mail2["Message-ID"] != mail1["Message-ID"] and mail2["To"].addresses[0].display_name == NAME
    assert (await api.post(links(mail1)["confirm"])).status_code == 404  # replaced by the newer link
    r = await api.post(links(mail2)["confirm"])
    assert r.json()["session_id"] == "session_1800"

    # Once confirmed, asking again (later still) sends the details again; it books nothing more.
    system.signups.request(SESSIONS, "session_1300", NAME, EMAIL, True, now=later + RESEND_AFTER)
    details = [m for m in await arrived(inbox[0], 5) if m["To"].addresses[0].addr_spec == EMAIL][-1]
    assert set(links(details)) == {"cancel", "erase"} and "18:00" in details["Subject"]
    assert await seats_left(api, system) == {"session_1300": 50, "session_1800": 49}


@pytest.mark.parametrize(
    ("change", "status", "kind", "field"),
    [
        ({"session_id": "session_0900"}, 422, "invalid-input", "session_id"),
        ({"email": "not-an-address"}, 422, "invalid-input", "email"),
        ({"email": "zoë@example.org"}, 422, "invalid-input", "email"),  # not every mail server takes it
        ({"name": "Zoë\x07"}, 422, "invalid-input", "name"),
        ({"email": "zoe@example.org\r\nBcc: x@example.org"}, 422, "invalid-input", "email"),
        ({"name": "x" * 201}, 422, "invalid-input", "name"),
        ({"name": "  "}, 422, "invalid-input", "name"),
        ({"consent": False}, 422, "invalid-input", "consent"),
        ({"name": "x" * 1001}, 400, "malformed-request", "name"),
        ({"phone": "123"}, 400, "malformed-request", "phone"),
    ],
)
@ON_SQLITE_ONLY
async def test_bad_signups_are_refused_and_record_nothing(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int], change: dict[str, Any], status: int, kind: str, field: str
) -> None:
    head = system.app.head()
    body = {"session_id": "session_1300", "name": NAME, "email": EMAIL, "consent": True, **change}
    r = await api.post(f"/consultations/{SESSIONS}/signups", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{kind}"
    assert field in {e["field"] for e in r.json()["errors"]}
    assert system.app.head() == head and system.signups.find(SESSIONS, EMAIL) is None


async def test_past_sessions_closed_consultations_and_unknown_ones_are_refused(api: AsyncTestClient, system: System) -> None:
    head = system.app.head()
    # The seed's own sessions took place on 7 May 2026: the form shows them as started, and refuses signups.
    r = await api.get(f"/consultations/{SLUG}")
    assert [s["started"] for s in r.json()["sessions"]] == [True, True]
    r = await api.post(f"/consultations/{SLUG}/signups", json={"session_id": "session_1300", "name": NAME, "email": EMAIL, "consent": True})
    assert r.status_code == 409 and r.json()["type"] == "/problems/session-started"
    assert "too late" in r.json()["detail"] and "started at 2026-05-07T13:00:00Z" in r.json()["detail"]
    r = await api.post("/consultations/no-such/signups", json={"session_id": "s", "name": NAME, "email": EMAIL})
    assert r.status_code == 404 and r.json()["type"] == "/problems/consultation-not-found"
    system.consultations.close(SESSIONS)
    head = system.app.head()
    r = await sign_up(api)
    assert r.status_code == 409 and r.json()["type"] == "/problems/consultation-not-open"
    assert system.app.head() == head


@pytest.mark.parametrize("api", [1], indirect=True)
async def test_a_full_session_offers_the_other_one(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    await sign_up(api, email_="first@example.org")
    await sign_up(api)
    mails = await arrived(inbox[0], 2)
    first, mine = (next(m for m in mails if m["To"].addresses[0].addr_spec == a) for a in ("first@example.org", EMAIL))
    assert (await api.post(links(first)["confirm"])).status_code == 200

    r = await api.post(links(mine)["confirm"])
    assert r.status_code == 409 and r.json()["type"] == "/problems/session-full"
    assert [a["session_id"] for a in r.json()["alternatives"]] == ["session_1800"]
    # A browser gets a page offering the other session, as a button; so does the link's page, before any click.
    html = {"Accept": "text/html"}
    for page in (await api.post(links(mine)["confirm"], headers=html), await api.get(links(mine)["confirm"], headers=html)):
        assert page.status_code == 409 and page.headers["content-type"].startswith("text/html")
        assert "<h1>This session is full</h1>" in page.text and "session_id=session_1800" in page.text
        assert ">Take a seat in “Working session on the draft Code of Conduct (18:00 UTC)” instead: " in page.text
    r = await api.post(links(mine)["confirm"] + "&session_id=session_1800", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "your seat is in this session instead" in r.text
    assert system.signups.get(system.signups.find(SESSIONS, EMAIL)).session_id == "session_1800"
    assert await seats_left(api, system) == {"session_1300": 0, "session_1800": 0}


async def test_cancelling_frees_the_seat_and_cancels_the_calendar_entry(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    await sign_up(api)
    (confirm_mail,) = await arrived(inbox[0], 1)
    await api.post(links(confirm_mail)["confirm"])
    details = (await arrived(inbox[0], 2))[1]
    cancel = links(details)["cancel"]
    assert (await seats_left(api, system))["session_1300"] == 49

    r = await api.post(cancel, headers={"Accept": "text/html"})
    assert r.status_code == 200 and "cancelled" in r.text
    assert (await seats_left(api, system))["session_1300"] == 50
    cancelled = (await arrived(inbox[0], 3))[2]
    assert invite(cancelled)["METHOD"] == "CANCEL" and "the attached cancellation removes the session" in text(cancelled)
    assert invite(cancelled).walk("VEVENT")[0]["UID"] == invite(details).walk("VEVENT")[0]["UID"]
    assert (await api.post(cancel)).json()["state"] == "cancelled"  # again: nothing changes
    r = await api.post(links(confirm_mail)["confirm"])  # its confirmation link is used up
    assert r.status_code == 404 and r.json()["type"] == "/problems/signup-link-invalid"

    # Signing up again right after cancelling starts over at once: a fresh link.
    assert (await sign_up(api)).status_code == 202
    again = (await arrived(inbox[0], 4))[3]
    assert "confirm" in links(again) and links(again)["confirm"] != links(confirm_mail)["confirm"]


async def test_a_wrong_token_or_unknown_signup_is_refused_alike(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    await sign_up(api)
    signup_id = system.signups.find(SESSIONS, EMAIL)
    for url in (
        f"/signups/{signup_id}/confirm?token=wrong", f"/signups/{signup_id}/erase?token=wrong", "/signups/00000000-0000-0000-0000-000000000000/cancel?token=x",
        # Not ASCII: as wrong as any other token (a known signup must not answer otherwise than an unknown one).
        f"/signups/{signup_id}/cancel?token=%C3%A9", f"/signups/{signup_id}/confirm?token=%00%ff", f"/signups/{signup_id}/erase?token=%ED%A0%80",
    ):
        r = await api.post(url)
        assert r.status_code == 404 and r.json()["type"] == "/problems/signup-link-invalid", url
    assert (await api.post(f"/signups/{signup_id}/delete?token=x")).status_code == 400
    assert (await api.post(f"/signups/{signup_id}/confirm")).status_code == 400  # no token
    assert system.signups.get(signup_id).state is State.PENDING


async def test_only_admins_get_the_attendee_list(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    await sign_up(api)
    signup_id = system.signups.find(SESSIONS, EMAIL)
    system.signups.confirm(signup_id, system.signups.links.token(Purpose.CONFIRM, signup_id, 1))
    url = f"/staff/consultations/{SESSIONS}/sessions/session_1300/attendees"
    assert (await api.get(url)).status_code == 401
    for role in Role:
        address = f"{role.value}@staff.example.org"
        system.staff.enrol(address, role.value, "a long enough password", [role], by=None)
        token = (await api.post("/staff/token", json={"email": address, "password": "a long enough password"})).json()["token"]
        r = await api.get(url, headers={"Authorization": f"Bearer {token}"})
        if role is Role.ADMIN:
            assert r.status_code == 200 and r.json() == [{"name": NAME, "email": EMAIL, "session_id": "session_1300"}]
            nowhere = await api.get(url.replace("session_1300", "session_9999"), headers={"Authorization": f"Bearer {token}"})
            assert (nowhere.status_code, nowhere.json()["type"]) == (404, "/problems/session-not-found")
        else:
            assert r.status_code == 403, role


async def test_erasure_leaves_no_name_or_email_in_store_views_mail_or_logs(
    api: AsyncTestClient, system: System, store_env: dict[str, str], inbox: tuple[Inbox, int], sync_redis: redis.Redis,
    redis_prefix: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await sign_up(api)
    (confirm_mail,) = await arrived(inbox[0], 1)
    await api.post(links(confirm_mail)["confirm"])
    details = (await arrived(inbox[0], 2))[1]
    signup = system.signups.get(system.signups.find(SESSIONS, EMAIL))
    key = system.contact_keys.get(signup.contact.key_id)
    assert key is not None
    traces = [NAME.encode(), EMAIL.encode(), EMAIL.split("@")[0].encode()]

    before = raw_storage(store_env)
    assert key in before  # the search finds what is there
    assert not [t for t in traces if t in before]  # names and emails are never stored in clear

    # Holding a seat: the seat is freed at once, the calendar cancellation (the invite's UID) goes out, then the erasure.
    r = await api.post(links(details)["erase"])
    assert r.status_code == 200 and r.json()["state"] in ("erasing", "erased") and "calendar cancellation" in r.json()["detail"]
    assert (await seats_left(api, system))["session_1300"] == 50
    last = (await arrived(inbox[0], 3))[2]
    assert invite(last)["METHOD"] == "CANCEL" and last["Subject"].startswith("Cancelled, and your details erased")
    assert invite(last).walk("VEVENT")[0]["UID"] == invite(details).walk("VEVENT")[0]["UID"]
    assert invite(last).walk("VEVENT")[0]["SEQUENCE"] > invite(details).walk("VEVENT")[0]["SEQUENCE"]
    assert "erase?token=" not in text(last) and "last message" in text(last)
    await eventually(lambda: system.signups.get(signup.id).state is State.ERASED)
    assert last["Message-ID"] in system.signups.get(signup.id).sent  # recorded before the erasure
    r = await api.post(links(details)["erase"])  # again (say, to finish a scrub that failed): it destroys again
    assert r.status_code == 200 and r.json()["state"] == "erased"
    after = raw_storage(store_env)
    assert key not in after and not [t for t in traces if t in after]
    assert system.signups.contact(system.signups.get(signup.id)) is None
    assert system.signups.find(SESSIONS, EMAIL) is None
    assert system.signups.attendees(SESSIONS, "session_1300") == []
    assert (await api.post(links(details)["cancel"])).status_code == 404  # its links are dead

    views = b"".join(repr(sync_redis.dump(k)).encode() for k in sync_redis.scan_iter(match=f"{redis_prefix}:*"))
    assert views and not [t for t in traces if t in views]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")  # not the test SMTP server's log
    assert "mailer: sent" in ours and NAME not in ours and EMAIL not in ours


def test_confirmations_racing_for_the_last_seats_never_overfill_a_session(live_url: str, system: System, seed: Definition) -> None:
    system.consultations.load(future(seed, capacity=5))
    people = [system.signups.request(SESSIONS, "session_1300", NAME, f"person{i}@example.org", True) for i in range(20)]

    async def confirm_all() -> list[Any]:
        async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
            return await asyncio.gather(
                *(http.post(f"/signups/{p}/confirm", params={"token": system.signups.links.token(Purpose.CONFIRM, p, 1)}) for p in people)
            )

    answers = asyncio.run(confirm_all())
    assert sorted(r.status_code for r in answers) == [200] * 5 + [409] * 15
    assert {r.json()["type"] for r in answers if r.status_code == 409} == {"/problems/session-full"}
    assert len(system.signups.attendees(SESSIONS, "session_1300")) == 5
    assert sum(system.signups.get(p).state is State.CONFIRMED for p in people) == 5


async def test_signups_and_their_links_share_a_rate_limit_of_their_own(
    system: System, store_env: dict[str, str], settings: Settings, seed: Definition
) -> None:
    system.consultations.load(future(seed))
    strict = msgspec.structs.replace(settings, signup_rate_limit_per_minute=3, rate_limit_per_minute=1)
    async with AsyncTestClient(create_app(strict, store_env)) as client:
        statuses = [(await sign_up(client, email_=f"person{i}@example.org")).status_code for i in range(4)]
        assert statuses == [202, 202, 202, 429]
        signup_id = system.signups.find(SESSIONS, "person0@example.org")
        r = await client.post(f"/signups/{signup_id}/confirm", params={"token": system.signups.links.token(Purpose.CONFIRM, signup_id, 1)})
        assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited"
    assert system.signups.find(SESSIONS, "person3@example.org") is None


HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # as a browser sends it


def h1(page: Any) -> str:
    (heading,) = re.findall(r"<h1>(.*?)</h1>", page.text)
    return heading


async def test_links_that_cannot_work_are_explained_on_get_and_reveal_nothing_to_a_guess(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    await sign_up(api)
    (first,) = await arrived(inbox[0], 1)
    signup_id = system.signups.find(SESSIONS, EMAIL)
    # A guessed token and an unknown signup read the same: nothing tells whether anyone signed up.
    guessed = await api.get(f"/signups/{signup_id}/cancel?token=guess", headers=HTML)
    unknown = await api.get("/signups/00000000-0000-0000-0000-000000000000/cancel?token=guess", headers=HTML)
    assert guessed.status_code == unknown.status_code == 404 and guessed.text == unknown.text
    assert h1(guessed) == "This link does not work" and "copy the whole link" in guessed.text and "sign up again" in guessed.text
    assert "<button" not in guessed.text

    # Replaced by asking again (later), then voided by cancelling: each said for what it is, on GET as on POST.
    system.signups.request(SESSIONS, "session_1300", NAME, EMAIL, True, now=datetime.now(UTC) + RESEND_AFTER)
    second = (await arrived(inbox[0], 2))[1]
    replaced = await api.get(links(first)["confirm"], headers=HTML)
    assert replaced.status_code == 404 and "replaced by a newer one" in replaced.text and "<button" not in replaced.text
    r = await api.post(links(first)["confirm"])
    assert r.status_code == 404 and r.json()["type"] == "/problems/signup-link-invalid" and "replaced" in r.json()["detail"]

    cancel = await api.get(links(second)["cancel"], headers=HTML)
    assert h1(cancel) == "Cancel your signup" and "You have not confirmed a seat" in cancel.text
    done = await api.post(links(second)["cancel"], headers=HTML)
    assert done.status_code == 200 and h1(done) == "Your signup is cancelled" and "Nothing was booked" in done.text
    note = (await arrived(inbox[0], 3))[2]  # says only what is true: no seat was held, so no calendar part
    assert "nothing was booked" in text(note) and "attach" not in text(note) and not list(note.iter_attachments())
    voided = await api.get(links(second)["confirm"], headers=HTML)
    assert voided.status_code == 404 and "You cancelled this signup" in voided.text and "sign up again" in voided.text
    again = await api.get(links(second)["cancel"], headers=HTML)
    assert h1(again) == "Your signup is cancelled" and "<button" not in again.text and "erase?token=" in again.text

    # Erased: every link of it says so.
    erase = await api.get(links(second)["erase"], headers=HTML)
    assert h1(erase) == "Erase your name and email" and "Erasure is final" in erase.text and "Before you go on" not in erase.text
    assert (await api.post(links(second)["erase"], headers=HTML)).status_code == 200
    for action in ("confirm", "cancel", "erase"):
        page = await api.get(links(second)[action], headers=HTML)
        assert page.status_code == 404 and "You erased this signup" in page.text, action
    r = await api.get(links(second)["cancel"])  # a program gets the problem
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json" and "erased" in r.json()["detail"]


async def test_erasing_a_held_seat_warns_first_then_says_what_follows(api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]) -> None:
    await sign_up(api)
    (confirm_mail,) = await arrived(inbox[0], 1)
    await api.post(links(confirm_mail)["confirm"])
    details = (await arrived(inbox[0], 2))[1]
    warned = await api.get(links(details)["erase"], headers=HTML)
    assert warned.status_code == 200 and h1(warned) == "Erase your name and email"
    assert "Before you go on:</strong> you hold a seat in this session, and erasing gives it up at once" in warned.text
    assert "calendar cancellation" in warned.text and "within 24 hours" in warned.text and "Erasure is final" in warned.text
    done = await api.post(links(details)["erase"], headers=HTML)
    assert done.status_code == 200 and h1(done) == "Your seat is given up; your name and email are being erased"
    assert "calendar cancellation" in done.text and "within 24 hours" in done.text and "Help Shape Our Global" in done.text
    assert "METHOD:CANCEL" in (await arrived(inbox[0], 3))[2].as_string()


async def test_a_browser_gets_pages_for_every_refusal_and_a_program_gets_problems(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    await sign_up(api)
    signup_id = system.signups.find(SESSIONS, EMAIL)
    cases = [
        (f"/signups/{signup_id}/confirm", 400, "This link is incomplete", "malformed-request"),  # cut before ?token
        ("/signups/not-a-uuid/confirm?token=x", 404, "This is not a link we sent", "not-found"),
        (f"/signups/{signup_id}/delete?token=x", 400, "This is not a link we sent", "malformed-request"),
    ]
    titles = set()
    for url, status, heading, kind in cases:
        for method in ("GET", "POST"):
            page = await api.request(method, url, headers=HTML)
            assert page.status_code == status and page.headers["content-type"].startswith("text/html"), (method, url)
            assert h1(page) == heading
            titles.add(re.search(r"<title>(.*)</title>", page.text).group(1))
            problem = await api.request(method, url)
            assert problem.status_code == status and problem.json()["type"] == f"/problems/{kind}"
    assert len(titles) == 2  # distinct titles for distinct situations
    assert system.signups.get(signup_id).state is State.PENDING
    # The favicon is no 404 problem.
    icon = await api.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml") and icon.content.startswith(b"<svg")


async def test_a_rate_limited_click_is_a_page_that_says_how_long_to_wait(
    system: System, store_env: dict[str, str], settings: Settings, seed: Definition
) -> None:
    system.consultations.load(future(seed))
    strict = msgspec.structs.replace(settings, signup_rate_limit_per_minute=1)
    signup_id = system.signups.request(SESSIONS, "session_1300", NAME, EMAIL, True)
    url = f"/signups/{signup_id}/confirm?token={system.signups.links.token(Purpose.CONFIRM, signup_id, 1)}"
    async with AsyncTestClient(create_app(strict, store_env)) as client:
        assert (await client.post(url, headers=HTML)).status_code == 200
        page = await client.post(url, headers=HTML)
        assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
        assert int(page.headers["Retry-After"]) > 0 and h1(page) == "Please wait a moment"
        assert re.search(r"Wait (a second|\d+ seconds|\d+ minutes), then try again", page.text)
        assert '<button type="submit">Try again</button>' in page.text
        r = await client.post(url)
        assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited"


async def test_seats_are_confirmed_only_while_the_consultation_takes_signups(
    api: AsyncTestClient, system: System, inbox: tuple[Inbox, int]
) -> None:
    await sign_up(api)
    (mail,) = await arrived(inbox[0], 1)
    system.consultations.close(SESSIONS)
    page = await api.get(links(mail)["confirm"], headers=HTML)
    assert page.status_code == 409 and h1(page) == "Signups are closed" and "<button" not in page.text
    r = await api.post(links(mail)["confirm"])
    assert r.status_code == 409 and r.json()["type"] == "/problems/consultation-not-open"
    # Nothing confirmed (the head may move meanwhile: the mailer records the message it just sent).
    assert "no longer taking signups" in r.json()["detail"] and not list(system.app.select_events(Signup.Confirmed))
    r = await api.post(links(mail)["cancel"])  # cancelling still works
    assert r.status_code == 200 and r.json()["state"] == "cancelled"


async def test_a_session_that_started_offers_the_others_with_seats(api: AsyncTestClient, system: System, seed: Definition) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    sessions = (msgspec.structs.replace(seed.sessions[0], starts_at=now - timedelta(hours=1)),
                msgspec.structs.replace(seed.sessions[1], starts_at=now + timedelta(days=2)))
    system.consultations.load(msgspec.structs.replace(seed, slug="started", sessions=sessions))
    signup_id = system.signups.request("started", "session_1300", NAME, EMAIL, True, now=now - timedelta(hours=2))
    url = f"/signups/{signup_id}/confirm?token={system.signups.links.token(Purpose.CONFIRM, signup_id, 1)}"
    r = await api.post(url)
    assert r.status_code == 409 and r.json()["type"] == "/problems/session-started"
    assert "it is too late to join it" in r.json()["detail"] and "+00:00" not in r.json()["detail"]  # words, not ISO
    assert [a["session_id"] for a in r.json()["alternatives"]] == ["session_1800"]
    page = await api.get(url, headers=HTML)
    assert page.status_code == 409 and h1(page) == "This session has started" and "session_id=session_1800" in page.text
    r = await api.post(url + "&session_id=session_1800")
    assert r.status_code == 200 and r.json()["session_id"] == "session_1800"
