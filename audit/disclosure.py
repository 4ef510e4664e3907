"""What anyone outside the data's owners may see of a recorded event: one policy, wherever events are shown.

The review history, the auditors' `/audit/events`, and the exported bundle all show events through
`disclose`. Sealed values appear only as a reference to their key and whether it still exists
(`{"sealed": key_id, "state": "present" | "shredded"}`); signups' and staff's personal data, the
answers of a response, receipts' and links' hashes never appear at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEvent
from eventsourcing.utils import get_topic

from domain.sealed import Sealed
from domain.topics import every_pinned


class AuditEvent(msgspec.Struct):
    position: int
    recorded_at: datetime
    type: str
    aggregate: str
    aggregate_id: UUID
    version: int
    actor: UUID | None
    actor_name: str | None
    payload: dict[str, Any]


class Unreadable:
    """A stored event this code cannot read (a topic it does not know, bytes that do not fit its class):
    shown as `unreadable` with its topic, and only that (what it holds is unknown, so none of it is shown)."""

    by = None

    def __init__(self, stored: Any) -> None:
        """`stored`: the record as stored (the library's StoredEvent or Notification, a bundle's Stored)."""
        self.originator_id, self.originator_version, self.topic = stored.originator_id, stored.originator_version, stored.topic
        self.timestamp = _recorded_at(stored.state)


def read(mapper: Any, stored: Any) -> Any:
    """The stored event as this code reads it with `mapper`, or Unreadable."""
    try:
        return mapper.to_domain_event(stored)
    except Exception:  # noqa: BLE001 - whatever bytes this code cannot read make the decoder raise
        return Unreadable(stored)


def _recorded_at(state: bytes) -> datetime:
    """The time an unreadable event's bytes say it was recorded at, if they say; else the Unix epoch."""
    try:
        return msgspec.json.decode(state, type=_Stamped).timestamp
    except (msgspec.DecodeError, TypeError):
        return EPOCH


class _Stamped(msgspec.Struct):
    timestamp: Annotated[datetime, msgspec.Meta(tz=True)]  # a naive one could not be compared with the filters' times


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNREADABLE = "unreadable"


# The event's envelope (shown as fields of its own), and what is never shown: the answers (a
# version 1 response kept free text among them, in clear) and their fingerprint, staff emails and
# password hashes (in clear in a version 1 enrolment, sealed since: even the sealed hash is not
# shown), hashes that stand for secrets (a receipt, a signup's links), and hashes of
# quoted text (a report's `quotes`: the passage may be erased later; which passages are quoted
# shows in the quote selections).
HIDDEN = frozenset({
    "originator_id", "originator_version", "timestamp", "originator_topic", "by",
    "answers", "fingerprint", "email", "password_hash", "clear", "credential", "receipt_hash", "confirm_hash", "manage_hash", "reset_hash", "quotes",
})


def _present(_: str) -> bool:
    return True


def snake(name: str) -> str:
    """`QuoteMarked` -> `quote_marked`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def readable(cls: type) -> tuple[str, str]:
    """The readable (type, aggregate) of an event class: `review.quote_marked`, `review_case`.

    The type's context is the module the topic is stored under (`domain.review`), or the
    aggregate's own name where it is not of that name (`seats.taken`, not `signup.taken`).
    """
    module, qualname = get_topic(cls).split(":")
    aggregate_class, event_class = qualname.rsplit(".", 1)
    aggregate = snake(aggregate_class)
    context = module.rsplit(".", 1)[-1]
    return f"{context if context in aggregate else aggregate}.{snake(event_class)}", aggregate


@functools.cache
def types() -> frozenset[str]:
    """Every readable event type (not the aggregates' base `Event`, which is never recorded)."""
    return frozenset(readable(cls)[0] for cls in every_pinned() if issubclass(cls, DomainEvent) and cls.__name__ != "Event") | {UNREADABLE}


def disclose(
    event: Any, position: int, names: Mapping[UUID, str], keys_present: Callable[[str], bool] = _present
) -> AuditEvent:
    """The event at `position` as the policy shows it; `names` names actors (the staff
    directory); `keys_present` says whether a data key still exists (default: all do)."""
    if isinstance(event, Unreadable):
        return AuditEvent(position, event.timestamp, UNREADABLE, "unknown", event.originator_id, event.originator_version, None, None, {"topic": event.topic})
    type_, aggregate = readable(type(event))
    actor = getattr(event, "by", None)
    payload = {k: _value(v, keys_present) for k, v in vars(event).items() if k not in HIDDEN}
    return AuditEvent(
        position=position, recorded_at=event.timestamp, type=type_, aggregate=aggregate, aggregate_id=event.originator_id,
        version=event.originator_version, actor=actor, actor_name=names.get(actor) if actor else None, payload=payload,
    )


def _value(value: Any, keys_present: Callable[[str], bool]) -> Any:
    if isinstance(value, Sealed):
        return {"sealed": value.key_id, "state": "present" if keys_present(value.key_id) else "shredded"}
    if isinstance(value, Mapping):
        return {k: _value(v, keys_present) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v, keys_present) for v in value]
    return value
