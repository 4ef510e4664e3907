"""`agora report build --at POSITION` where no version was built: the version that would have been built there."""

from __future__ import annotations

import pytest

from cli.report import built
from domain.access.access import Access
from runtime import System
from tests.conftest import SLUG
from tests.integration.test_report_content import Story, scenario


@pytest.fixture
def story(system: System) -> Story:
    return scenario(system)


def test_a_preview_at_a_position_is_numbered_after_the_versions_built_before_it(system: System, story: Story) -> None:
    editor = story.staff["editor"]
    first = system.reports.publish(SLUG, editor, final=False).content.position
    system.reports.write_section(SLUG, editor, "we-did", "We did", "Later words.")
    second = system.reports.publish(SLUG, editor, final=False).content.position
    assert built(system, SLUG, first - 1, None).content.version == 1  # before the first: it would have been version 1
    assert built(system, SLUG, first, None).info.version == 1  # type: ignore[union-attr]  # published there
    assert built(system, SLUG, first + 1, None).content.version == 2  # between the two
    assert built(system, SLUG, second, None).info.version == 2  # type: ignore[union-attr]
    assert built(system, SLUG, system.app.head(), None).content.version == 3  # after both
    for at in (first - 1, first + 1, system.app.head()):
        assert built(system, SLUG, at, None).info is None  # previews, not published


def test_building_a_version_never_published_is_recorded_as_an_operator_s_preview(system: System, story: Story) -> None:
    """Its quotes were never published: who saw them (an operator, no staff member) is on record, as for `agora signups export`."""
    position = system.reports.publish(SLUG, story.staff["editor"], final=False).content.position
    built(system, SLUG, position, None)  # published: public, nothing to record
    assert list(system.app.select_events(Access.Recorded)) == []
    built(system, SLUG, position - 1, None)
    assert [(a.by, a.what, a.subject) for a in system.app.select_events(Access.Recorded)] == [(None, "report preview", SLUG)]
