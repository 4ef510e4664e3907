"""eventsourcing's SQLite module, with a recorder that rings in-process doorbells after each write."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing import sqlite


class DoorbellSQLiteApplicationRecorder(sqlite.SQLiteApplicationRecorder):
    # Shared by every recorder in the process, so a follower wakes whichever application
    # instance wrote; a ring from another file costs one empty read. Weak: closed bells drop out.
    doorbells: weakref.WeakSet = weakref.WeakSet()

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        for bell in list(self.doorbells):
            bell.set()
        return ids


class Factory(sqlite.SQLiteFactory):
    application_recorder_class = DoorbellSQLiteApplicationRecorder
