"""The coding frame's rules: editors add, revise and retire themes; reviewers tag with active ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import pytest

from domain.consultations.consultation import Theme
from domain.errors import InvalidInput, ThemeNotFound
from domain.review.frame import CodingFrame, frame_id

CONSULTATION = uuid4()
EDITOR = uuid4()
SCOPE = Theme("scope", "Scope", "Who the code applies to.")
ENFORCEMENT = Theme("enforcement", "Enforcement")


def frame() -> CodingFrame:
    f = CodingFrame(consultation_id=CONSULTATION, themes=(SCOPE, ENFORCEMENT))
    f.collect_events()
    return f


def only_event(f: CodingFrame) -> Any:
    events = f.collect_events()
    assert len(events) == 1, events
    return events[0]


@contextmanager
def refused(f: CodingFrame, field: str) -> Iterator[None]:
    """The command raises InvalidInput on `field` alone and records nothing."""
    version = f.version
    with pytest.raises(InvalidInput) as info:
        yield
    assert [e.field for e in info.value.errors] == [field]
    assert f.collect_events() == [] and f.version == version


def test_a_frame_belongs_to_one_consultation_and_starts_with_its_themes() -> None:
    f = CodingFrame(consultation_id=CONSULTATION, themes=(SCOPE, ENFORCEMENT))
    (event,) = f.collect_events()
    assert isinstance(event, CodingFrame.Created)
    assert (event.consultation_id, event.themes) == (CONSULTATION, (SCOPE, ENFORCEMENT))
    assert f.id == frame_id(CONSULTATION) != frame_id(uuid4())
    assert f.listing() == [(SCOPE, False), (ENFORCEMENT, False)]
    assert f.active("scope") == SCOPE


def test_an_unknown_theme_is_not_active() -> None:
    f = frame()
    with refused(f, "theme_id"):
        f.active("parking")


def test_adding_a_theme_records_who_added_it() -> None:
    f = frame()
    parking = Theme("parking", "Parking")
    f.add(parking, EDITOR)
    event = only_event(f)
    assert isinstance(event, CodingFrame.ThemeAdded) and (event.theme, event.by) == (parking, EDITOR)
    assert f.active("parking") == parking
    assert f.listing()[-1] == (parking, False)


@pytest.mark.parametrize("label", ["   ", "\u200b", "Evil\u202e", "a\x00b", "\x1b[31mred", "x" * 101])
def test_a_label_follows_the_rule_for_names(label: str) -> None:
    """Labels show in the queue and in the report's tables and chart, beside other text."""
    f = frame()
    with refused(f, "label"):
        f.add(Theme("odd", label), EDITOR)
    with refused(f, "label"):
        f.revise(Theme("scope", label), EDITOR)


def test_a_label_is_kept_on_one_line_in_nfc_and_a_description_as_free_text() -> None:
    f = frame()
    f.add(Theme("cafe", "  Cafe\u0301\n policy ", "Line one\r\nline two\x07"), EDITOR)
    assert only_event(f).theme == Theme("cafe", "Caf\u00e9 policy", "Line one\nline two")


def test_a_theme_id_is_used_once_even_after_retiring() -> None:
    f = frame()
    with refused(f, "id"):
        f.add(Theme("scope", "Another scope"), EDITOR)
    f.retire("scope", EDITOR)
    f.collect_events()
    with refused(f, "id"):
        f.add(Theme("scope", "Scope, again"), EDITOR)
    assert f.themes["scope"] == SCOPE


def test_revising_replaces_the_theme() -> None:
    f = frame()
    revised = Theme("scope", "Scope and reach", "Where the code applies.")
    f.revise(revised, EDITOR)
    event = only_event(f)
    assert isinstance(event, CodingFrame.ThemeRevised) and (event.theme, event.by) == (revised, EDITOR)
    assert f.active("scope") == revised


def test_revising_without_a_change_records_nothing() -> None:
    f = frame()
    f.revise(Theme("scope", "Scope", "Who the code applies to."), EDITOR)
    assert f.collect_events() == []


def test_only_active_themes_can_be_revised() -> None:
    f = frame()
    with pytest.raises(ThemeNotFound):
        f.revise(Theme("parking", "Parking"), EDITOR)
    f.retire("enforcement", EDITOR)
    f.collect_events()
    with refused(f, "id"):
        f.revise(Theme("enforcement", "Enforcing"), EDITOR)
    assert f.themes["enforcement"] == ENFORCEMENT


def test_retiring_keeps_the_theme_listed_but_not_active() -> None:
    f = frame()
    f.retire("scope", EDITOR)
    event = only_event(f)
    assert isinstance(event, CodingFrame.ThemeRetired) and (event.theme_id, event.by) == ("scope", EDITOR)
    assert f.listing() == [(SCOPE, True), (ENFORCEMENT, False)]
    with refused(f, "theme_id"):
        f.active("scope")


def test_only_active_themes_can_be_retired() -> None:
    f = frame()
    with pytest.raises(ThemeNotFound, match="no theme 'parking'"):  # named in the path: a 404 (a tester got a 422)
        f.retire("parking", EDITOR)
    assert f.collect_events() == []
    f.retire("scope", EDITOR)
    f.collect_events()
    with refused(f, "theme_id"):
        f.retire("scope", EDITOR)
    with pytest.raises(InvalidInput, match="The theme 'scope' is retired"):  # not "is not a theme" (a tester was told so)
        f.retire("scope", EDITOR)
