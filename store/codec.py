"""Event payloads encoded with msgspec.

Each event class is decoded straight into its declared field types (datetimes, UUIDs,
Structs), which is several times faster than the library's JSON transcoder and keeps
payload types checked on the way back in. Notifications read from the log are made here too, cheaply.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, Notification, StoredEvent, Transcoder
from eventsourcing.utils import resolve_topic

# Supplied by the stored event's own columns, not by its payload.
_ENVELOPE = {"originator_id", "originator_version"}


class MsgspecTranscoder(Transcoder):
    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return msgspec.json.decode(data)


@cache
def _decoder(cls: type) -> msgspec.json.Decoder:
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k not in _ENVELOPE and not k.startswith("_")}
    hints = {k: v for k, v in hints.items() if typing.get_origin(v) is not typing.ClassVar}
    hints["class_version"] = typing.NotRequired[int]  # present when the class has versions
    return msgspec.json.Decoder(typing.TypedDict(f"{cls.__qualname__}State", hints))  # type: ignore[operator]


@cache
def _state_type(cls: type) -> Any:
    return _decoder(cls).type


class MsgspecMapper(Mapper):
    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        data = stored_event.state
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        current = getattr(cls, "class_version", 1)
        try:
            state = _decoder(cls).decode(data)
            version = state.pop("class_version", 1)
        except msgspec.ValidationError:  # an older shape that no longer fits the class
            version = 0
        if version < current:  # upcast the old shape as plain data, then check it against the current one
            raw = msgspec.json.decode(data)
            version = raw.pop("class_version", 1)
            while version < current:
                getattr(cls, f"upcast_v{version}_v{version + 1}")(raw)
                version += 1
            state = msgspec.convert(raw, _state_type(cls), strict=False)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event


def notification(id: int, originator_id: UUID | str, originator_version: int, topic: str, state: bytes) -> Notification:
    """`Notification(...)` in a third of the time: its frozen dataclass's `__init__` sets each field through a
    check, once per event a rebuild reads."""
    n = object.__new__(Notification)
    n.__dict__.update(id=id, originator_id=originator_id, originator_version=originator_version, topic=topic, state=state)
    return n
