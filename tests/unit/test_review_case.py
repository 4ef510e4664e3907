"""The review case's rules and refusals, on the aggregate alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import DomainError, InvalidInput
from domain.review.case import MAX_NOTE, CaseClosed, ClaimConflict, Flag, NotCompleted, Outcome, ReviewCase, case_id
from domain.sealed import Sealed

RESPONSE, OTHER_RESPONSE = uuid4(), uuid4()
ANA, BEN = uuid4(), uuid4()
NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
LEASE = timedelta(minutes=30)
TEXT = "The code should say who enforces it."

INVISIBLE = "\u200b\u2060\u00a0"  # zero-width space, word joiner, no-break space: shows nothing


def opened() -> ReviewCase:
    case = ReviewCase(RESPONSE)
    case.collect_events()
    return case


def claimed(by: Any = ANA) -> ReviewCase:
    case = opened()
    case.claim(by, NOW, LEASE)
    case.collect_events()
    return case


def completed() -> ReviewCase:
    case = claimed()
    case.complete(ANA, Outcome.REVIEWED, "", NOW)
    case.collect_events()
    return case


def only_event(case: ReviewCase) -> Any:
    events = case.collect_events()
    assert len(events) == 1, events
    return events[0]


@contextmanager
def refused(case: ReviewCase, error: type[DomainError]) -> Iterator[pytest.ExceptionInfo[Any]]:
    """The command raises `error` and records nothing."""
    version = case.version
    with pytest.raises(error) as info:
        yield info
    assert case.collect_events() == [] and case.version == version


def fields(info: pytest.ExceptionInfo[Any]) -> list[str]:
    return [e.field for e in info.value.errors]


def sealer(calls: list[str]) -> Callable[[str], Sealed]:
    def seal(text: str) -> Sealed:
        calls.append(text)
        return Sealed(f"key-{len(calls)}", text.encode())

    return seal


# Every command that needs a live claim, as (case, by, now) -> None.
NEEDS_CLAIM: dict[str, Callable[[ReviewCase, Any, datetime], None]] = {
    "release": lambda c, by, now: c.release(by, now),
    "note": lambda c, by, now: c.note(by, "A note.", now),
    "tag": lambda c, by, now: c.tag(by, "enforcement", now),
    "untag": lambda c, by, now: c.untag(by, "enforcement", now),
    "flag": lambda c, by, now: c.flag(by, Flag.SPAM, "Advert.", None, now),
    "mark_quote": lambda c, by, now: c.mark_quote(by, "q2", 0, 8, TEXT, now),
    "redact": lambda c, by, now: c.redact(by, "q2", 0, 3, "Name.", TEXT, sealer([]), now),
    "complete": lambda c, by, now: c.complete(by, Outcome.REVIEWED, "", now),
}


def test_a_case_is_opened_once_per_response_and_starts_unclaimed() -> None:
    case = ReviewCase(RESPONSE)
    (event,) = case.collect_events()
    assert isinstance(event, ReviewCase.Opened) and event.response_id == RESPONSE
    assert case.id == case_id(RESPONSE) == ReviewCase(RESPONSE).id != case_id(OTHER_RESPONSE)
    assert (case.holder, case.until, case.outcome) == (None, None, None)
    assert case.tags == set() and case.flags == set() and case.redactions == {}


def test_a_claim_holds_until_its_lease_ends() -> None:
    case = opened()
    case.claim(ANA, NOW, LEASE)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Claimed) and (event.by, event.until) == (ANA, NOW + LEASE)
    assert (case.holder, case.until) == (ANA, NOW + LEASE)
    assert case.holds(ANA, NOW + LEASE - timedelta(seconds=1))
    assert not case.holds(ANA, NOW + LEASE)
    assert not case.holds(BEN, NOW)


def test_a_live_claim_refuses_another_claimant() -> None:
    case = claimed(ANA)
    with refused(case, ClaimConflict) as info:
        case.claim(BEN, NOW + LEASE - timedelta(seconds=1), LEASE)
    assert (info.value.holder, info.value.until) == (ANA, NOW + LEASE)
    assert case.holder == ANA


def test_an_expired_claim_can_be_taken_over() -> None:
    case = claimed(ANA)
    case.claim(BEN, NOW + LEASE, LEASE)
    assert only_event(case).by == BEN
    assert (case.holder, case.until) == (BEN, NOW + 2 * LEASE)


def test_the_holder_can_extend_their_lease() -> None:
    case = claimed(ANA)
    case.claim(ANA, NOW + timedelta(minutes=20), LEASE)
    assert only_event(case).until == NOW + timedelta(minutes=50)
    assert case.until == NOW + timedelta(minutes=50)


def test_releasing_frees_the_case_for_others() -> None:
    case = claimed(ANA)
    case.release(ANA, NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Released) and event.by == ANA
    assert (case.holder, case.until) == (None, None)
    case.claim(BEN, NOW, LEASE)
    assert case.holder == BEN


@pytest.mark.parametrize("command", NEEDS_CLAIM.values(), ids=NEEDS_CLAIM.keys())
def test_commands_without_a_claim_are_refused(command: Callable[[ReviewCase, Any, datetime], None]) -> None:
    case = opened()
    with refused(case, ClaimConflict) as info:
        command(case, ANA, NOW)
    assert info.value.holder is None


@pytest.mark.parametrize("command", NEEDS_CLAIM.values(), ids=NEEDS_CLAIM.keys())
def test_commands_under_someone_elses_claim_are_refused_naming_the_holder(
    command: Callable[[ReviewCase, Any, datetime], None],
) -> None:
    case = claimed(ANA)
    with refused(case, ClaimConflict) as info:
        command(case, BEN, NOW)
    assert (info.value.holder, info.value.until) == (ANA, NOW + LEASE)


@pytest.mark.parametrize("command", NEEDS_CLAIM.values(), ids=NEEDS_CLAIM.keys())
def test_commands_after_the_lease_ends_are_refused(command: Callable[[ReviewCase, Any, datetime], None]) -> None:
    case = claimed(ANA)
    with refused(case, ClaimConflict):
        command(case, ANA, NOW + LEASE)


@pytest.mark.parametrize("command", NEEDS_CLAIM.values(), ids=NEEDS_CLAIM.keys())
def test_a_completed_case_refuses_every_command_but_reopening(command: Callable[[ReviewCase, Any, datetime], None]) -> None:
    case = completed()
    with refused(case, CaseClosed):
        command(case, ANA, NOW)
    with refused(case, CaseClosed):
        case.claim(ANA, NOW, LEASE)
    assert case.outcome is Outcome.REVIEWED


def test_a_note_is_recorded_with_its_author() -> None:
    case = claimed()
    case.note(ANA, "x" * MAX_NOTE, NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Noted) and (event.by, event.text) == (ANA, "x" * MAX_NOTE)


@pytest.mark.parametrize("text", ["", "  \n\t", "x" * (MAX_NOTE + 1)])
def test_a_note_must_have_text_within_the_limit(text: str) -> None:
    case = claimed()
    with refused(case, InvalidInput) as info:
        case.note(ANA, text, NOW)
    assert fields(info) == ["text"]


def test_notes_and_reasons_are_recorded_as_free_text_without_control_characters() -> None:
    """A NUL or an escape sequence in a note or a reason only ever causes harm downstream (a terminal, a CSV)."""
    case = claimed()
    case.note(ANA, "Clear\x00 \x1b[2Jscreen\r\nnext", NOW)
    case.flag(ANA, Flag.SPAM, "Why\x07\tnot", None, NOW)
    case.unflag(ANA, Flag.SPAM, "Undone\x1b", NOW)
    case.complete(ANA, Outcome.EXCLUDED, "Spam\x00!", NOW)
    case.reopen(BEN, "Again\x08")
    recorded = [getattr(e, "text", None) or e.reason for e in case.collect_events()]
    assert recorded == ["Clear [2Jscreen\nnext", "Why\tnot", "Undone", "Spam!", "Again"]


def test_tagging_and_untagging_record_only_changes() -> None:
    case = claimed()
    case.tag(ANA, "enforcement", NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Tagged) and (event.by, event.theme_id) == (ANA, "enforcement")
    case.tag(ANA, "enforcement", NOW)
    assert case.collect_events() == []
    assert case.tags == {"enforcement"}

    case.untag(ANA, "scope", NOW)
    assert case.collect_events() == []
    case.untag(ANA, "enforcement", NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Untagged) and (event.by, event.theme_id) == (ANA, "enforcement")
    assert case.tags == set()


def test_a_flag_is_recorded_with_its_reason() -> None:
    case = claimed()
    case.flag(ANA, Flag.OFF_TOPIC, "About parking.", None, NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Flagged)
    assert (event.by, event.flag, event.reason, event.duplicate_of) == (ANA, Flag.OFF_TOPIC, "About parking.", None)
    assert case.flags == {Flag.OFF_TOPIC}


def test_a_duplicate_names_the_response_it_repeats() -> None:
    case = claimed()
    case.flag(ANA, Flag.DUPLICATE, "Same text.", OTHER_RESPONSE, NOW)
    assert only_event(case).duplicate_of == OTHER_RESPONSE
    assert case.flags == {Flag.DUPLICATE}


@pytest.mark.parametrize(
    ("flag", "reason", "duplicate_of", "expected"),
    [
        (Flag.SPAM, " ", None, ["reason"]),
        (Flag.DUPLICATE, "Same text.", None, ["duplicate_of"]),
        (Flag.SPAM, "Advert.", OTHER_RESPONSE, ["duplicate_of"]),
        (Flag.DUPLICATE, "Same text.", RESPONSE, ["duplicate_of"]),
        (Flag.ABUSIVE, "", RESPONSE, ["reason", "duplicate_of", "duplicate_of"]),
        (Flag.SPAM, INVISIBLE, None, ["reason"]),
    ],
    ids=["blank-reason", "duplicate-of-nothing", "non-duplicate-naming-one", "duplicate-of-itself", "all-at-once", "invisible-reason"],
)
def test_a_flag_breaking_its_rules_is_refused(flag: Flag, reason: str, duplicate_of: Any, expected: list[str]) -> None:
    case = claimed()
    with refused(case, InvalidInput) as info:
        case.flag(ANA, flag, reason, duplicate_of, NOW)
    assert fields(info) == expected
    assert case.flags == set()


@pytest.mark.parametrize(("start", "end"), [(0, 3), (4, 8), (0, len(TEXT))])
def test_a_quote_is_a_span_of_the_answer(start: int, end: int) -> None:
    case = claimed()
    case.mark_quote(ANA, "q2", start, end, TEXT, NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.QuoteMarked)
    assert (event.by, event.question_id, event.start, event.end) == (ANA, "q2", start, end)


@pytest.mark.parametrize(("start", "end"), [(3, 3), (5, 2), (-1, 4), (0, len(TEXT) + 1)])
def test_a_quote_outside_the_answer_or_empty_is_refused(start: int, end: int) -> None:
    case = claimed()
    with refused(case, InvalidInput) as info:
        case.mark_quote(ANA, "q2", start, end, TEXT, NOW)
    assert fields(info) == ["end"]


REDACTED_TEXT = "My name is [redacted] and I agree."


@pytest.mark.parametrize(("start", "end", "field"), [(0, 20, "end"), (12, 33, "start"), (15, 18, "start")])
def test_a_span_that_cuts_a_redaction_marker_is_refused(start: int, end: int, field: str) -> None:
    """"My name is [redacted" would read as text the respondent wrote, and may hint at what was taken out."""
    for act in (
        lambda c: c.mark_quote(ANA, "q2", start, end, REDACTED_TEXT, NOW),
        lambda c: c.redact(ANA, "q2", start, end, "A name.", REDACTED_TEXT, sealer([]), NOW),
    ):
        case = claimed()
        with refused(case, InvalidInput) as info:
            act(case)
        assert fields(info) == [field]


@pytest.mark.parametrize(("start", "end"), [(0, 21), (11, 21), (21, 33), (0, 10)])
def test_a_span_may_take_a_redaction_marker_whole_or_leave_it_out(start: int, end: int) -> None:
    case = claimed()
    case.mark_quote(ANA, "q2", start, end, REDACTED_TEXT, NOW)
    assert isinstance(only_event(case), ReviewCase.QuoteMarked)


def test_a_redaction_seals_the_answer_as_it_now_reads() -> None:
    case, calls = claimed(), []
    case.redact(ANA, "q2", 4, 8, "A name.", TEXT, sealer(calls), NOW)
    assert calls == ["The [redacted] should say who enforces it."]
    event = only_event(case)
    assert isinstance(event, ReviewCase.Redacted)
    assert (event.by, event.question_id, event.start, event.end, event.reason) == (ANA, "q2", 4, 8, "A name.")
    assert event.sealed == Sealed("key-1", calls[0].encode())
    assert case.redactions == {"q2": [event.sealed]}


@pytest.mark.parametrize(
    ("start", "end", "reason", "expected"),
    [(4, 4, "A name.", ["end"]), (0, len(TEXT) + 1, "A name.", ["end"]), (4, 8, "  ", ["reason"]), (4, 8, INVISIBLE, ["reason"])],
)
def test_a_redaction_breaking_its_rules_is_refused_before_sealing(start: int, end: int, reason: str, expected: list[str]) -> None:
    case, calls = claimed(), []
    with refused(case, InvalidInput) as info:
        case.redact(ANA, "q2", start, end, reason, TEXT, sealer(calls), NOW)
    assert fields(info) == expected
    assert calls == [] and case.redactions == {}


def test_superseded_keys_are_the_original_and_every_version_but_the_last() -> None:
    case, calls = claimed(), []
    original = Sealed("key-0", TEXT.encode())
    with refused(case, InvalidInput) as info:
        case.superseded_keys("q2", original)
    assert fields(info) == ["question_id"]

    case.redact(ANA, "q2", 4, 8, "A name.", TEXT, sealer(calls), NOW)
    assert case.superseded_keys("q2", original) == ("key-0",)
    case.redact(ANA, "q2", 0, 3, "Another.", calls[-1], sealer(calls), NOW)
    assert case.superseded_keys("q2", original) == ("key-0", "key-1")
    with pytest.raises(InvalidInput):
        case.superseded_keys("q3", original)


def test_shredding_records_the_destroyed_keys_and_who_confirmed_it() -> None:
    case = claimed(ANA)
    case.shred_originals(BEN, "q2", ("key-0", "key-1"))
    event = only_event(case)
    assert isinstance(event, ReviewCase.OriginalsShredded)
    assert (event.by, event.question_id, event.key_ids) == (BEN, "q2", ("key-0", "key-1"))


def test_completing_as_reviewed_needs_no_reason_and_ends_the_claim() -> None:
    case = claimed()
    case.complete(ANA, Outcome.REVIEWED, "", NOW)
    event = only_event(case)
    assert isinstance(event, ReviewCase.Completed) and (event.by, event.outcome, event.reason) == (ANA, Outcome.REVIEWED, "")
    assert (case.outcome, case.holder, case.until) == (Outcome.REVIEWED, None, None)


@pytest.mark.parametrize("blank", [" ", INVISIBLE])
def test_excluding_needs_a_reason(blank: str) -> None:
    case = claimed()
    with refused(case, InvalidInput) as info:
        case.complete(ANA, Outcome.EXCLUDED, blank, NOW)
    assert fields(info) == ["reason"] and case.outcome is None
    case.complete(ANA, Outcome.EXCLUDED, "Spam.", NOW)
    assert only_event(case).reason == "Spam." and case.outcome is Outcome.EXCLUDED


def test_only_a_completed_case_with_a_reason_can_be_reopened() -> None:
    case = claimed()
    with refused(case, NotCompleted):
        case.reopen(ANA, "Second look.")
    case = completed()
    for blank in ("", INVISIBLE):
        with refused(case, InvalidInput) as info:
            case.reopen(BEN, blank)
        assert fields(info) == ["reason"] and case.outcome is Outcome.REVIEWED


def test_reopening_lets_reviewers_claim_again() -> None:
    case = completed()
    case.reopen(BEN, "Second look.")
    event = only_event(case)
    assert isinstance(event, ReviewCase.Reopened) and (event.by, event.reason) == (BEN, "Second look.")
    assert case.outcome is None
    case.claim(ANA, NOW, LEASE)
    assert case.holder == ANA


def test_every_event_after_opening_names_who_acted() -> None:
    case = opened()
    case.claim(ANA, NOW, LEASE)
    case.note(ANA, "Read.", NOW)
    case.tag(ANA, "scope", NOW)
    case.untag(ANA, "scope", NOW)
    case.flag(ANA, Flag.PERSONAL_DATA, "A phone number.", None, NOW)
    case.mark_quote(ANA, "q2", 0, 3, TEXT, NOW)
    case.redact(ANA, "q2", 0, 3, "A name.", TEXT, sealer([]), NOW)
    case.shred_originals(ANA, "q2", ("key-0",))
    case.release(ANA, NOW)
    case.claim(ANA, NOW, LEASE)
    case.complete(ANA, Outcome.REVIEWED, "", NOW)
    case.reopen(ANA, "Again.")
    events = case.collect_events()
    assert len(events) == 12 and len({type(e) for e in events}) == 11
    assert [e.by for e in events] == [ANA] * 12
