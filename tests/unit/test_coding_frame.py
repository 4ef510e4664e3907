"""The coding frame's rules: editors add, revise and retire themes; reviewers tag with active ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import pytest

from domain.consultations.consultation import Theme
from domain.errors import InvalidInput
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
    with refused(f, "id"):
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
    with refused(f, "theme_id"):
        f.retire("parking", EDITOR)
    f.retire("scope", EDITOR)
    f.collect_events()
    with refused(f, "theme_id"):
        f.retire("scope", EDITOR)
