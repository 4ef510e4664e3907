"""The coding frame: the themes reviewers tag responses with, maintained by editors."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate, event

from domain import text
from domain.topics import stored_as

from domain.consultations.consultation import Theme
from domain.errors import FieldError, InvalidInput, ThemeNotFound


def frame_id(consultation_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"agora:coding-frame:{consultation_id}")


def checked(theme: Theme) -> Theme:
    """A theme as an editor's is recorded: its label shown beside other text (the queue, the report's
    tables and chart) follows the rule for names; its description is free text."""
    label = text.name(theme.label)
    if problem := text.name_problem(label, 100, "A label"):
        raise InvalidInput([FieldError("label", problem)])
    return msgspec.structs.replace(theme, label=label, description=text.free_text(theme.description))


@stored_as("domain.frame")
class CodingFrame(Aggregate):
    class Created(Aggregate.Created):
        consultation_id: UUID
        themes: tuple[Theme, ...]

    class ThemeAdded(Aggregate.Event):
        theme: Theme
        by: UUID

    class ThemeRevised(Aggregate.Event):
        theme: Theme
        by: UUID

    class ThemeRetired(Aggregate.Event):
        theme_id: str
        by: UUID

    @staticmethod
    def create_id(consultation_id: UUID, **_: object) -> UUID:
        return frame_id(consultation_id)

    @event(Created)
    def __init__(self, consultation_id: UUID, themes: tuple[Theme, ...]) -> None:
        self.consultation_id = consultation_id
        self.themes = {t.id: t for t in themes}
        self.retired: set[str] = set()

    def active(self, theme_id: str, field: str = "theme_id") -> Theme:
        """The theme, or a refusal naming `field`: the request's name for the theme's id."""
        if theme_id in self.retired:
            raise InvalidInput([FieldError(field, f"The theme '{theme_id}' is retired: it takes no new tags and no revisions.")])
        if theme_id not in self.themes:
            raise InvalidInput([FieldError(field, f"'{theme_id}' is not a theme of the coding frame.")])
        return self.themes[theme_id]

    def add(self, theme: Theme, by: UUID) -> None:
        if theme.id in self.themes:
            raise InvalidInput([FieldError("id", f"The frame already has a theme '{theme.id}'.")])
        self._add(checked(theme), by)

    def revise(self, theme: Theme, by: UUID) -> None:
        """Revise a theme named by its id (a path's: unknown, ThemeNotFound)."""
        if theme.id not in self.themes:
            raise ThemeNotFound(theme.id)
        current = self.active(theme.id, "id")
        theme = checked(theme)
        if current != theme:
            self._revise(theme, by)

    def retire(self, theme_id: str, by: UUID) -> None:
        """Retire a theme named by its id (a path's: unknown, ThemeNotFound)."""
        if theme_id not in self.themes:
            raise ThemeNotFound(theme_id)
        self.active(theme_id)
        self._retire(theme_id, by)

    @event(ThemeAdded)
    def _add(self, theme: Theme, by: UUID) -> None:
        self.themes[theme.id] = theme

    @event(ThemeRevised)
    def _revise(self, theme: Theme, by: UUID) -> None:
        self.themes[theme.id] = theme

    @event(ThemeRetired)
    def _retire(self, theme_id: str, by: UUID) -> None:
        self.retired.add(theme_id)

    def listing(self) -> list[tuple[Theme, bool]]:
        """Every theme, with whether it is retired."""
        return [(t, t.id in self.retired) for t in self.themes.values()]

