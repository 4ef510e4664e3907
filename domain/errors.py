"""Domain errors: the rules a command broke, in words a person can act on.

The API maps each class to one HTTP problem type; nothing here knows about HTTP.
"""

from __future__ import annotations

import msgspec

from domain.text import excerpt


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
        super().__init__(f"There is no consultation {excerpt(slug)}.")
        self.slug = slug


class NotAcceptingResponses(DomainError):
    """The consultation is closed, or not open yet."""


class InvalidInput(DomainError):
    """One or more fields break a rule; each error names its field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.detail}" for e in errors))
        self.errors = errors


class InvalidResponse(InvalidInput):
    """One or more answers break the consultation's rules."""


class ResponseNotFound(DomainError):
    def __init__(self, response_id: object) -> None:
        super().__init__(f"There is no response {response_id}.")


class LedgerDamaged(DomainError):
    """The ledger's tables hold what the checkpointer never writes (a row altered or deleted outside Agora): the
    proof, checkpoint or key asked for cannot be read from them. `agora audit verify` names what changed."""


class UnreadableEvent(DomainError):
    """An event of the log this code cannot decode: a fold of the log (a report, a view replayed) cannot pass it."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(
            f"The event at position {position} of the log cannot be read by this code ({type(error).__name__}); "
            "what is built from the whole log (a report, a view as it stood) cannot pass it. A release that reads it is needed."
        )
        self.position = position


class ThemeNotFound(DomainError):
    """A theme named in the path that the coding frame does not have (one named in a body is a field's error)."""

    def __init__(self, theme_id: str) -> None:
        super().__init__(f"The coding frame has no theme {excerpt(theme_id)}.")


class SessionNotFound(DomainError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"The consultation has no session {excerpt(session_id)}.")


class StaffNotFound(DomainError):
    def __init__(self, staff: object) -> None:
        super().__init__(f"There is no staff member {staff}.")


class NotAuthenticated(DomainError):
    """Wrong email or password, or a deactivated account."""


class InvalidDefinition(DomainError):
    """A consultation file that cannot become a consultation."""


class ShredIncomplete(DomainError):
    """The shredding is recorded, but some keys could not be scrubbed yet: shredding again finishes it."""


class SignupLinkInvalid(DomainError):
    """A signup link whose token does not match: wrong, used up, replaced, or the signup is erased."""


class SessionStarted(DomainError):
    """The working session has begun (or is over): no more signups or confirmations."""


class SessionFull(DomainError):
    """Every seat of the session is taken; `alternatives` are the sessions that still have seats."""

    def __init__(self, detail: str, alternatives: tuple[object, ...] = ()) -> None:
        super().__init__(detail)
        self.alternatives = alternatives


class IdempotencyKeyReused(DomainError):
    """A submission repeats an earlier one's Idempotency-Key with other answers."""
