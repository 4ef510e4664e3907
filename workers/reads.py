"""The log as one process's followers and mailer read it: one query for all of them, each event decoded once.

They all follow the whole log and keep up with it, so after a doorbell they stand at the same
position and want the same batch. The first to ask reads it; the others take that read if it
began after their doorbells last rang (so it holds every commit they were woken for), and decode
an event only if no one has yet.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification


class Batch:
    """Notifications read past a position, and their events as decoded so far."""

    def __init__(self, decode: Callable[[Notification], Any], after: int, limit: int, notifications: Sequence[Notification], began: float) -> None:
        self.after, self.limit, self.notifications, self.began = after, limit, notifications, began
        self._decode = decode
        self._events: dict[int, Any] = {}

    def serves(self, after: int, limit: int, since: float) -> bool:
        """Whether this read is what a read past `after` of up to `limit` begun at `since` would give (or a prefix of it)."""
        return self.after == after and self.began > since and (limit <= self.limit or len(self.notifications) < self.limit)

    def event(self, n: Notification) -> Any:
        event = self._events.get(n.id)
        if event is None:  # two threads may both decode it: the same event either way
            event = self._events[n.id] = self._decode(n)
        return event


class Reads:
    def __init__(self, app: Application[Any]) -> None:
        # Not the application itself: it keys the process's table of these, weakly.
        self.recorder, self.decode = app.recorder, app.mapper.to_domain_event
        self._lock = threading.Lock()
        self._last: Batch | None = None

    def after(self, position: int, limit: int, since: float | None = None) -> tuple[Sequence[Notification], Batch]:
        """Up to `limit` notifications past `position`, as read by a query begun after `since` (None:
        now), and the batch that decodes them."""
        since = time.monotonic() if since is None else since
        with self._lock:  # a follower asking while another reads waits for that read, likely the one it needs
            last = self._last
            if last is None or not last.serves(position, limit, since):
                began = time.monotonic()
                found = self.recorder.select_notifications(start=position, limit=limit, inclusive_of_start=False)
                last = self._last = Batch(self.decode, position, limit, found, began)
        return last.notifications[:limit], last


_reads: weakref.WeakKeyDictionary[Application[Any], Reads] = weakref.WeakKeyDictionary()
_reads_lock = threading.Lock()


def reads(app: Application[Any]) -> Reads:
    """The shared reads of `app`'s log in this process."""
    with _reads_lock:
        found = _reads.get(app)
        if found is None:
            found = _reads[app] = Reads(app)
        return found
