"""Signups, seats, contact checks and link tokens, without any infrastructure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import email_validator
import pytest

from domain.errors import InvalidInput, SessionFull, SignupLinkInvalid
from domain.sealed import Sealed
from domain.signups.signup import (
    RESEND_AFTER,
    Contact,
    LinkTokens,
    Purpose,
    Seats,
    Signup,
    State,
    check_contact,
    hash_token,
    normal_email,
    seats_id,
)

LINKS = LinkTokens("s" * 48)
CONSULTATION = uuid4()
CONTACT = Sealed("key-ana", b"ciphertext")
NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
LAST_ASKED = NOW - timedelta(minutes=1)  # within RESEND_AFTER
LONG_AGO = NOW - RESEND_AFTER


def signup(state: State = State.PENDING) -> Signup:
    sid = uuid4()
    s = Signup(sid, CONSULTATION, "morning", CONTACT, 1, LINKS.hash(Purpose.CONFIRM, sid, 1), LINKS.hash(Purpose.MANAGE, sid))
    if state is State.CONFIRMED:
        s.confirm("morning")
    elif state is State.CANCELLED:
        s.cancel()
    elif state is State.ERASED:
        s.erase()
    elif state is State.ERASING:
        s.confirm("morning")
        s.erase()
    s.collect_events()
    assert s.state is state
    return s


def confirm_token(s: Signup) -> str:
    return LINKS.token(Purpose.CONFIRM, s.id, s.request)


def manage_token(s: Signup) -> str:
    return LINKS.token(Purpose.MANAGE, s.id)


def only_event(a: Signup | Seats) -> Any:
    events = a.collect_events()
    assert len(events) == 1, events
    return events[0]


@contextmanager
def link_refused(s: Signup) -> Iterator[None]:
    version = s.version
    with pytest.raises(SignupLinkInvalid):
        yield
    assert s.collect_events() == [] and s.version == version


# Signup


def test_a_signup_starts_pending_with_hashes_of_its_links() -> None:
    sid = uuid4()
    confirm, manage = LINKS.hash(Purpose.CONFIRM, sid, 1), LINKS.hash(Purpose.MANAGE, sid)
    s = Signup(sid, CONSULTATION, "morning", CONTACT, 1, confirm, manage)
    (event,) = s.collect_events()
    assert isinstance(event, Signup.Requested) and event.originator_id == sid
    assert (event.consultation_id, event.session_id, event.contact, event.request) == (CONSULTATION, "morning", CONTACT, 1)
    assert (event.confirm_hash, event.manage_hash) == (confirm, manage)
    assert (s.id, s.state, s.session_id, s.request, s.asked_version, s.sent) == (sid, State.PENDING, "morning", 1, 1, set())


def test_the_links_tokens_pass_the_check_and_nothing_else_does() -> None:
    s = signup()
    s.check(Purpose.CONFIRM, confirm_token(s))
    s.check(Purpose.MANAGE, manage_token(s))
    assert s.collect_events() == []
    for purpose, token in [
        (Purpose.CONFIRM, manage_token(s)),
        (Purpose.MANAGE, confirm_token(s)),
        (Purpose.CONFIRM, LINKS.token(Purpose.CONFIRM, s.id, 2)),
        (Purpose.CONFIRM, LinkTokens("t" * 48).token(Purpose.CONFIRM, s.id, 1)),
        (Purpose.MANAGE, ""),
    ]:
        with link_refused(s):
            s.check(purpose, token)


def test_confirming_takes_the_chosen_session_and_keeps_the_link_valid() -> None:
    s = signup()
    s.confirm("evening")
    event = only_event(s)
    assert isinstance(event, Signup.Confirmed) and event.session_id == "evening"
    assert (s.state, s.session_id, s.confirmed_version) == (State.CONFIRMED, "evening", event.originator_version)
    s.check(Purpose.CONFIRM, LINKS.token(Purpose.CONFIRM, s.id, 1))


@pytest.mark.parametrize("state", [State.PENDING, State.CONFIRMED])
def test_asking_again_within_the_resend_interval_records_nothing(state: State) -> None:
    s = signup(state)
    s.request_again("evening", "new-hash", NOW, LAST_ASKED)
    s.request_again("evening", "new-hash", NOW, NOW - RESEND_AFTER + timedelta(seconds=1))
    assert s.collect_events() == []
    assert (s.request, s.session_id) == (1, "morning")


def test_asking_again_while_pending_replaces_the_confirmation_link() -> None:
    s = signup()
    old = confirm_token(s)
    s.request_again("evening", LINKS.hash(Purpose.CONFIRM, s.id, 2), NOW, LONG_AGO)
    event = only_event(s)
    assert isinstance(event, Signup.Rerequested)
    assert (event.session_id, event.request, event.confirm_hash) == ("evening", 2, LINKS.hash(Purpose.CONFIRM, s.id, 2))
    assert (s.state, s.session_id, s.request, s.asked_version) == (State.PENDING, "evening", 2, event.originator_version)
    with link_refused(s):
        s.check(Purpose.CONFIRM, old)
    s.check(Purpose.CONFIRM, confirm_token(s))


def test_asking_again_while_confirmed_sends_the_details_and_changes_nothing() -> None:
    s = signup(State.CONFIRMED)
    s.request_again("evening", "new-hash", NOW, LONG_AGO)
    event = only_event(s)
    assert isinstance(event, Signup.DetailsRequested)
    assert (s.state, s.session_id, s.request, s.asked_version) == (State.CONFIRMED, "morning", 1, event.originator_version)
    s.check(Purpose.CONFIRM, confirm_token(s))


def test_asking_again_after_cancelling_starts_over_at_once() -> None:
    s = signup(State.CANCELLED)
    s.request_again("evening", LINKS.hash(Purpose.CONFIRM, s.id, 2), NOW, LAST_ASKED)
    event = only_event(s)
    assert isinstance(event, Signup.Rerequested) and event.request == 2
    assert (s.state, s.session_id) == (State.PENDING, "evening")
    s.check(Purpose.CONFIRM, confirm_token(s))


def test_asking_again_after_erasure_records_nothing() -> None:
    s = signup(State.ERASED)
    s.request_again("evening", "new-hash", NOW, NOW - timedelta(days=30))
    assert s.collect_events() == [] and s.state is State.ERASED


@pytest.mark.parametrize(("state", "freed"), [(State.PENDING, None), (State.CONFIRMED, "morning")])
def test_cancelling_gives_back_a_held_seat_and_ends_the_confirmation_link(state: State, freed: str | None) -> None:
    s = signup(state)
    token = confirm_token(s)
    s.cancel()
    event = only_event(s)
    assert isinstance(event, Signup.Cancelled) and event.freed == freed
    assert s.state is State.CANCELLED and s.confirm_hash is None
    with link_refused(s):
        s.check(Purpose.CONFIRM, token)
    s.check(Purpose.MANAGE, manage_token(s))


@pytest.mark.parametrize("state", [State.CANCELLED, State.ERASED])
def test_cancelling_again_records_nothing(state: State) -> None:
    s = signup(state)
    s.cancel()
    assert s.collect_events() == [] and s.state is state


@pytest.mark.parametrize(
    ("state", "at_once", "freed"),
    [(State.PENDING, False, None), (State.CANCELLED, False, None), (State.CONFIRMED, True, "morning"), (State.ERASING, True, None)],
)
def test_erasing_names_the_key_to_destroy_and_any_seat_to_free(state: State, at_once: bool, freed: str | None) -> None:
    s = signup(state)
    s.erase(at_once)
    event = only_event(s)
    assert isinstance(event, Signup.Erased) and (event.key_id, event.freed) == ("key-ana", freed)
    assert s.state is State.ERASED and s.confirm_hash is None
    s.erase()
    s.erase(at_once=True)
    assert s.collect_events() == []


def test_erasing_while_holding_a_seat_frees_it_and_waits_for_the_cancellation() -> None:
    s = signup(State.CONFIRMED)
    confirm = confirm_token(s)
    s.erase()
    event = only_event(s)
    assert isinstance(event, Signup.ErasureRequested) and event.freed == "morning"
    assert s.state is State.ERASING and s.confirm_hash is None
    s.erase()  # a second click: it is under way
    s.cancel()
    s.request_again("evening", "new-hash", NOW, NOW - timedelta(days=30))  # asked again meanwhile: nothing
    assert s.collect_events() == [] and s.state is State.ERASING
    for purpose, token in ((Purpose.CONFIRM, confirm), (Purpose.MANAGE, manage_token(s))):
        with link_refused(s):
            s.check(purpose, token)
    s.check(Purpose.MANAGE, manage_token(s), erased_ok=True)
    s.erase(at_once=True)  # the mailer, once the cancellation is sent
    event = only_event(s)
    assert isinstance(event, Signup.Erased) and (event.key_id, event.freed) == ("key-ana", None) and s.state is State.ERASED


def test_after_erasure_only_the_manage_link_for_erasing_again_passes() -> None:
    s = signup()
    confirm = confirm_token(s)
    s.erase()
    s.collect_events()
    with link_refused(s):
        s.check(Purpose.MANAGE, manage_token(s))
    with link_refused(s):
        s.check(Purpose.CONFIRM, confirm, erased_ok=True)
    with link_refused(s):
        s.check(Purpose.MANAGE, "wrong", erased_ok=True)
    s.check(Purpose.MANAGE, manage_token(s), erased_ok=True)


def test_each_message_is_recorded_as_sent_once() -> None:
    s = signup()
    s.record_sent("m-1")
    event = only_event(s)
    assert isinstance(event, Signup.MessageSent) and event.message_id == "m-1"
    s.record_sent("m-1")
    assert s.collect_events() == []
    s.record_sent("m-2")
    assert only_event(s).message_id == "m-2" and s.sent == {"m-1", "m-2"}


# Seats


def seats() -> Seats:
    s = Seats(CONSULTATION, "morning")
    s.collect_events()
    return s


def test_seats_are_counted_per_session() -> None:
    s = Seats(CONSULTATION, "morning")
    (event,) = s.collect_events()
    assert isinstance(event, Seats.Opened) and (event.consultation_id, event.session_id) == (CONSULTATION, "morning")
    assert s.id == seats_id(CONSULTATION, "morning") != seats_id(CONSULTATION, "evening")
    assert s.holders == []


def test_seats_are_taken_in_order_up_to_capacity() -> None:
    s, first, second, third = seats(), uuid4(), uuid4(), uuid4()
    s.take(first, 2)
    event = only_event(s)
    assert isinstance(event, Seats.Taken)
    assert (event.consultation_id, event.session_id, event.signup_id) == (CONSULTATION, "morning", first)
    s.take(second, 2)
    s.collect_events()
    with pytest.raises(SessionFull):
        s.take(third, 2)
    assert s.collect_events() == [] and s.holders == [first, second]


def test_taking_a_held_seat_again_records_nothing_even_when_full() -> None:
    s, holder = seats(), uuid4()
    s.take(holder, 1)
    s.collect_events()
    s.take(holder, 1)
    assert s.collect_events() == [] and s.holders == [holder]


def test_a_freed_seat_can_be_taken_by_someone_else() -> None:
    s, holder, waiting = seats(), uuid4(), uuid4()
    s.take(holder, 1)
    s.collect_events()
    s.free(uuid4())
    assert s.collect_events() == []
    s.free(holder)
    event = only_event(s)
    assert isinstance(event, Seats.Freed)
    assert (event.consultation_id, event.session_id, event.signup_id) == (CONSULTATION, "morning", holder)
    s.take(waiting, 1)
    assert s.holders == [waiting]


# check_contact and normal_email


def test_a_contact_is_recorded_with_a_tidy_name_and_a_normal_address() -> None:
    contact = check_contact("  Ana \n  María\tLópez ", "ana.lopez@Bücher.EXAMPLE", True, "I agree.")
    assert contact == Contact("Ana María López", "ana.lopez@xn--bcher-kva.example")


def test_consent_is_needed_only_when_there_is_something_to_consent_to() -> None:
    assert check_contact("Ana", "ana@example.org", False, "") == Contact("Ana", "ana@example.org")
    with pytest.raises(InvalidInput) as info:
        check_contact("Ana", "ana@example.org", False, "I agree to be contacted.")
    assert [(e.field, e.detail) for e in info.value.errors] == [
        ("consent", "Signing up needs your consent: I agree to be contacted."),
    ]


@pytest.mark.parametrize(
    ("name", "email", "field"),
    [
        (" \n\t ", "ana@example.org", "name"),
        ("x" * 201, "ana@example.org", "name"),
        ("Ana\x00", "ana@example.org", "name"),
        ("=?utf-8?q?evil=40evil=2Eorg=2C?=", "ana@example.org", "name"),
        ("Ana", "ana.example.org", "email"),
        ("Ana", "anä@example.org", "email"),
        ("Ana", "ana@localhost", "email"),
    ],
    ids=["blank-name", "long-name", "control-character", "encoded-word", "no-at", "non-ascii-local-part", "no-domain-dot"],
)
def test_a_contact_breaking_a_rule_is_refused_naming_the_field(name: str, email: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_contact(name, email, True, "I agree.")
    assert [e.field for e in info.value.errors] == [field]


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as info:
        check_contact("", "", False, "I agree.")
    assert [e.field for e in info.value.errors] == ["name", "email", "consent"]


def test_a_name_of_200_characters_after_tidying_is_accepted() -> None:
    assert check_contact("x" * 200 + "   ", "ana@example.org", True, "").name == "x" * 200


def test_normal_email_keeps_the_local_part_and_normalises_the_domain() -> None:
    assert normal_email("Ana@Example.ORG") == "Ana@example.org"
    with pytest.raises(email_validator.EmailNotValidError):
        normal_email("not an address")


# LinkTokens


def test_tokens_follow_from_the_secret_purpose_signup_and_request() -> None:
    sid = uuid4()
    token = LINKS.token(Purpose.CONFIRM, sid, 1)
    assert token == LinkTokens("s" * 48).token(Purpose.CONFIRM, sid, 1)
    others = {
        LinkTokens("t" * 48).token(Purpose.CONFIRM, sid, 1),
        LINKS.token(Purpose.MANAGE, sid, 1),
        LINKS.token(Purpose.CONFIRM, uuid4(), 1),
        LINKS.token(Purpose.CONFIRM, sid, 2),
        LINKS.token(Purpose.CONFIRM, sid),
    }
    assert len(others) == 5 and token not in others
    assert LINKS.token(Purpose.MANAGE, sid) == LINKS.token(Purpose.MANAGE, sid, 0)


def test_tokens_are_url_safe_and_only_their_hashes_are_kept() -> None:
    sid = uuid4()
    token = LINKS.token(Purpose.MANAGE, sid)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert LINKS.hash(Purpose.MANAGE, sid) == hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token)) and hash_token(token) != hash_token(token + "x")
