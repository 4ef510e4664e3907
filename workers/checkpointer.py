"""The checkpointer: extends the ledger's Merkle tree as the log grows, and signs checkpoints.

It reads the log in batches past the last chained position and appends each batch (leaves,
subtrees and receipt index in one transaction). It signs a checkpoint every N events or T
seconds, also when nothing happened (so a stretch where logging stopped shows), at once after a
milestone (a consultation created, opened or closed; a report published, corrected or
withdrawn), and on starting if there is none yet.

It never chains a position below one it has chained. Positions may have gaps (a rolled-back
insert on PostgreSQL skips an id); it watches recent gaps for a while, and an id that appears
in one is reported as an error: `agora audit verify` will call it reordering.

One checkpointer of a deployment chains at a time (a lock in the event store's database);
another, say in `agora work` beside `agora serve`, stands by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.application import Application

import store
from store import locks
from audit.ledger import Checkpoint, Ledger, OutOfOrder, records
from audit.signing import KEY_FILE, Head, Signer, body

log = logging.getLogger(__name__)

BATCH = 5000
IDLE_POLL = 0.5  # seconds between looks at the log when nothing rings
# Seconds between chaining partial batches: the tree need not chase every write, and fewer,
# larger transactions leave the store's write lock to the submissions.
PACE = 0.25
STANDBY = 5.0  # seconds between a standby checkpointer's attempts to take over
GAP_WATCH = 60.0  # seconds a skipped position is watched for a late arrival
# Events after which a checkpoint is taken at once, by the end of their topic.
MILESTONES = frozenset({
    "Consultation.Created", "Consultation.Opened", "Consultation.Closed",
    "Report.Published", "Report.Corrected", "Report.Withdrawn",
})


class ForeignKey(Exception):
    """The signing key at hand is not one the log published: say, a standby host without the key file."""


def milestone(topic: str) -> bool:
    return topic.rpartition(":")[2] in MILESTONES


class Checkpointer:
    name = "checkpointer"

    def __init__(
        self, app: Application[Any], ledger: Ledger, signer: Signer, every_events: int, every_seconds: float, batch: int = BATCH
    ) -> None:
        self.app = app
        self.ledger = ledger
        self.signer = signer
        self.every_events = every_events
        self.every = timedelta(seconds=every_seconds)
        self.batch = batch
        self.bell: store.Doorbell | None = None  # while chaining
        self.gaps: dict[int, float] = {}  # skipped position -> when it was seen skipped
        self.reported: set[int] = set()
        self.renamed = False  # whether it warned that the log's origin changed
        self.refused = False  # whether it said that its key did not sign the log

    def step(self, now: datetime | None = None) -> int:
        """Chain one batch past the last chained position and sign what is due; returns how many events it read."""
        self._watch_gaps()
        size, last = self.ledger.head()
        batch = records(self.app.recorder, last, self.batch)
        self.ledger.append(batch)
        seen = time.monotonic()
        for position, *_ in batch:
            self.gaps.update((p, seen) for p in range(last + 1, min(position, last + 1 + self.batch)))  # a huge jump is no gap to watch
            last = position
        now = now or datetime.now(UTC)
        latest = self.ledger.latest()
        if (
            latest is None
            or any(milestone(r[3]) for r in batch)
            or size + len(batch) - latest.size >= self.every_events
            or now - latest.time >= self.every
        ):
            self.checkpoint(now)
        return len(batch)

    def checkpoint(self, now: datetime) -> Checkpoint:
        """Sign the tree as it stands and record it; refused (ForeignKey) with a key that did not sign this log before."""
        self._require_own_key()
        frontier = self.ledger.frontier()
        _, last = self.ledger.head()
        head = Head(self.signer.verifier.name, frontier.size, frontier.root(), now, last)
        self.ledger.publish_key(self.signer.verifier.vkey, now)
        return self.ledger.add_checkpoint(head.size, head.root, head.position, now, self.signer.sign(body(head)))

    def _require_own_key(self) -> None:
        """Refuse (ForeignKey) a signing key that did not sign this log before; warn once if it did under another name."""
        published = self.ledger.verifiers()
        mine = self.signer.verifier
        names = {v.name for v in published if v.public == mine.public}
        if names and mine.name not in names and not self.renamed:
            self.renamed = True
            log.warning(
                "checkpointer: the log was signed as %s and is now signed as %s: its origin follows the public URL's host:port "
                "unless AGORA_LOG_ORIGIN is set; set it to the old name to keep it", " and ".join(sorted(names)), mine.name,
            )
        if published and not names:
            raise ForeignKey(
                f"this data folder's signing key ({KEY_FILE}) did not sign this log's checkpoints: copy the key file from the host "
                "whose key did. If that key is lost for good, `agora audit new-key` publishes this one, and auditors see a new key from then on"
            )
        if published and published[-1].public != mine.public:  # the last published is the log's key: a rotation retires the others
            raise ForeignKey(
                f"this data folder's signing key ({KEY_FILE}) was replaced by {published[-1].vkey} (`agora audit new-key`) and signs "
                "no more: copy the new key file here from the host that published it"
            )

    def due_in(self, now: datetime) -> float:
        """Seconds until the next checkpoint falls due by time."""
        latest = self.ledger.latest()
        return 0.0 if latest is None else max((latest.time + self.every - now).total_seconds(), 0.0)

    def _watch_gaps(self) -> None:
        """Report a skipped position that has since appeared in the log: it can no longer be chained in order."""
        horizon = time.monotonic() - GAP_WATCH
        self.gaps = {p: t for p, t in self.gaps.items() if t > horizon}
        if not self.gaps:
            return
        late = self.app.recorder.select_notifications(start=min(self.gaps), stop=max(self.gaps), limit=len(self.gaps) + 1)
        for n in late:
            if n.id in self.gaps and n.id not in self.reported:
                self.reported.add(n.id)
                del self.gaps[n.id]
                log.error("checkpointer: %s", OutOfOrder(f"position {n.id} appeared after later positions were chained; it stays unchained"))

    def run(self, stop: threading.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Chain until `stop` is set. One checkpointer of a deployment chains; any other stands by to take over.
        One whose key did not sign the log never takes the lock (it would keep the one with the key out): it says
        why once, and looks again now and then (`agora audit new-key` publishes its key)."""
        while not stop.is_set():
            try:
                self._require_own_key()
                break
            except ForeignKey as e:
                if not self.refused:
                    self.refused = True
                    log.error("checkpointer: %s; standing by", e)
            except Exception as e:  # noqa: BLE001 - the store away: looked at again
                log.warning("checkpointer: %s: %s; retrying", type(e).__name__, e)
            stop.wait(STANDBY)
        locks.one_at_a_time(self.app.recorder, "checkpointer", stop, lambda held: self._serve(stop, clock, held), STANDBY)

    def _serve(self, stop: threading.Event, clock: Callable[[], datetime], held: Callable[[], bool]) -> None:
        self.bell = bell = store.Doorbell(self.app.recorder)
        try:
            while not stop.is_set():
                if not held():
                    log.warning("checkpointer: lost its lock; standing by")
                    return
                bell.clear()
                try:
                    read = self.step(clock())
                    if read == self.batch:  # behind: catch up
                        continue
                    if read:
                        stop.wait(PACE)
                        continue
                    wait = min(IDLE_POLL, self.due_in(clock()))
                except Exception as e:  # noqa: BLE001 - the checkpointer outlives store outages; it reports and retries
                    log.warning("checkpointer: %s: %s; retrying", type(e).__name__, e)
                    stop.wait(1.0)
                    continue
                bell.wait(wait)
        finally:
            bell.close()
            self.bell = None
