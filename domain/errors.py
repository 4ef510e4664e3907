"""Domain errors: the rules a command broke, in words a person can act on.

The API maps each class to one HTTP problem type; nothing here knows about HTTP.
"""

from __future__ import annotations

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    field: str
    detail: str


class DomainError(Exception):
    """A command was refused; nothing was recorded."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConsultationNotFound(DomainError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"There is no consultation '{slug}'.")
        self.slug = slug


class NotAcceptingResponses(DomainError):
    """The consultation is closed, or not open yet."""


class InvalidResponse(DomainError):
    """One or more answers break the consultation's rules; each error names its field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.detail}" for e in errors))
        self.errors = errors


class InvalidDefinition(DomainError):
    """A consultation file that cannot become a consultation."""
