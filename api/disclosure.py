"""What each role may see of a recorded event: one rule, whichever route shows events."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class HistoryEntry(msgspec.Struct):
    at: datetime
    action: str
    actor: UUID | None
    details: dict[str, Any]


# What an auditor sees of each event: never the answers or texts, sealed or not, nor a receipt's hash.
_HIDDEN = {"originator_id", "originator_version", "timestamp", "originator_topic", "by", "answers", "texts", "sealed", "receipt_hash"}


def entry(e: Any) -> HistoryEntry:
    details = {k: v for k, v in vars(e).items() if k not in _HIDDEN}
    return HistoryEntry(at=e.timestamp, action=type(e).__name__.lower(), actor=getattr(e, "by", None), details=details)
