"""The clusterer: places each response in a cluster of identical or near-identical texts as it arrives.

It follows the log: it fingerprints each submitted response's original free text (unsealed
here; fingerprints stay in this process's memory, never in events or Redis) and, once it has
read up to the log's head, records where each new response belongs (domain/campaigns). An
assignment is an aggregate whose id derives from the response's, so the event store refuses a
second one: each response is assigned exactly once, even after a crash between deciding and
recording. When a response's original text is shredded, it records that the response left its
cluster, and drops it from the index.

The index is rebuilt from the log each time the clusterer starts (or takes over): assignments
already recorded are folded, not decided again. One clusterer of a deployment runs at a time (a
lock in the event store's database); another, say in `agora work` beside `agora serve`, stands by.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

import store
from store import locks
from domain.campaigns.cluster import Assignment, Book, Likeness, assignment_id, first_cluster_id
from domain.campaigns.service import original_texts
from domain.campaigns.similarity import Fingerprint, Index, fingerprint
from domain.consultations.response import Response
from domain.review.case import ReviewCase
from domain.sealed import Vault

log = logging.getLogger(__name__)

BATCH = 1000
IDLE_POLL = 0.5  # seconds between looks at the log when nothing rings
GATHER = 0.05  # seconds between two recordings at most: under load, one transaction records what came meanwhile
STANDBY = 5.0  # seconds between a standby clusterer's attempts to take over
SHREDDED = "its original text was shredded"

TOPICS = [get_topic(cls) for cls in (Response.Submitted, ReviewCase.Opened, ReviewCase.OriginalsShredded, *Book.TOPICS)]


class Clusterer:
    name = "clusterer"

    def __init__(self, app: Application[Any], texts: Vault, threshold: float, batch: int = BATCH) -> None:
        self.app = app
        self.texts = texts
        self.threshold = threshold
        self.batch = batch
        self.bell: store.Doorbell | None = None  # while running
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next step rebuilds from the start of the log."""
        self.position = 0
        self.book = Book()
        self.indexes: dict[UUID, Index] = {}  # by consultation
        self.pending: dict[UUID, tuple[UUID, Fingerprint | None]] = {}  # submitted, not yet assigned: consultation, fingerprint
        self.cases: dict[UUID, UUID] = {}  # review case id -> response id
        self.shredded: set[UUID] = set()  # members whose original was shredded, not yet recorded as gone

    def step(self) -> int:
        """Fold one batch of the log; once at its head, record what is due. Returns how many events it read."""
        notifications = self.app.recorder.select_notifications(
            start=self.position, limit=self.batch, inclusive_of_start=False, topics=TOPICS
        )
        events = [(n.id, self._decoded(n)) for n in notifications]
        texted = [e for _, e in events if isinstance(e, Response.Submitted) and e.texts]  # their keys are read at once
        texts = dict(zip([e.originator_id for e in texted], original_texts([e.texts for e in texted], self.texts), strict=True))
        for position, e in events:
            if e is not None:
                self._fold(e, position, texts)
            self.position = position
        if len(notifications) < self.batch and (self.pending or self.shredded):
            self._record()
        return len(notifications)

    def _decoded(self, n: Any) -> Any:
        """The event, or None if it cannot be read (a stored event this code does not know): it is left
        out, not retried, as reading it again gives the same. Decoding reads nothing, so it is no outage."""
        try:
            return self.app.mapper.to_domain_event(n)
        except Exception as e:  # noqa: BLE001 - whatever the event's bytes make the decoder raise
            log.error("clusterer: the event at position %d cannot be read (%s: %s); it is left out", n.id, type(e).__name__, e)
            return None

    def catch_up(self) -> None:
        """Fold and record until nothing is due (as `step` does in a loop when running)."""
        while self.step() or self.pending or self.shredded:
            pass

    def _fold(self, e: Any, position: int, texts: dict[UUID, str | None]) -> None:
        """Fold an event of the log; `texts`: the original text of each response submitted in its batch."""
        if isinstance(e, Response.Submitted):
            if not e.texts:  # no free text at all: nothing to cluster, nothing to record
                return
            text = texts[e.originator_id]
            self.pending[e.originator_id] = (e.consultation_id, fingerprint(text) if text else None)
        elif isinstance(e, ReviewCase.Opened):
            self.cases[e.originator_id] = e.response_id
        elif isinstance(e, ReviewCase.OriginalsShredded):
            response_id = self.cases.get(e.originator_id)
            if response_id in self.pending:
                self.pending[response_id] = (self.pending[response_id][0], None)  # type: ignore[index]
            elif response_id is not None and self.book.cluster_of(response_id) is not None:
                self.shredded.add(response_id)
        else:
            self._apply(e, position)

    def _apply(self, e: Any, position: int) -> None:
        """Fold an event of the clusters, with what it means for the index."""
        self.book.apply(e, position)
        if isinstance(e, Assignment.Assigned):
            _, print_ = self.pending.pop(e.response_id, (None, None))
            if print_ is not None and e.cluster_id is not None:
                self._index(e.consultation_id).add(e.response_id, print_)
        elif isinstance(e, Assignment.SplitOut | Assignment.Left):
            # It no longer stands for the cluster it was in, nor (once shredded) for anything.
            response_id = self.book.responses[e.originator_id]
            if isinstance(e, Assignment.Left):
                self.shredded.discard(response_id)
            for index in self.indexes.values():
                index.remove([response_id])

    def _index(self, consultation_id: UUID) -> Index:
        if consultation_id not in self.indexes:
            self.indexes[consultation_id] = Index(self.threshold)
        return self.indexes[consultation_id]

    def _record(self) -> None:
        """Decide where each pending response belongs and record it, with departures, in one transaction."""
        aggregates: list[Any] = []
        for response_id, (consultation_id, print_) in self.pending.copy().items():
            assignment = self._decide(response_id, consultation_id, print_)
            self._apply(assignment.pending_events[0], self.position)  # the next decision sees it
            aggregates.append(assignment)
        for response_id in sorted(self.shredded):
            assignment = self.app.repository.get(assignment_id(response_id))
            assignment.leave(SHREDDED)
            for e in assignment.pending_events:
                self._apply(e, self.position)
            aggregates.append(assignment)
        self.shredded.clear()
        try:
            # Their events, as a submission batch saves them: the library checks an aggregate against its protocols, slowly.
            self.app.save(*[e for a in aggregates for e in a.collect_events()])
        except IntegrityError:  # another clusterer recorded some of these: start again from the log
            log.warning("clusterer: assignments were recorded by another process; rebuilding from the log")
            self.reset()

    def _decide(self, response_id: UUID, consultation_id: UUID, print_: Fingerprint | None) -> Assignment:
        if print_ is None:
            return Assignment(response_id=response_id, consultation_id=consultation_id, cluster_id=None, kind=Likeness.UNCLUSTERED, similarity=0.0)
        match = self._index(consultation_id).match(print_)
        cluster = None if match is None else self.book.cluster_of(match.member)  # type: ignore[arg-type]
        if match is None or cluster is None:
            return Assignment(response_id=response_id, consultation_id=consultation_id, cluster_id=first_cluster_id(response_id), kind=Likeness.UNIQUE, similarity=0.0)
        kind = Likeness.IDENTICAL if match.identical else Likeness.NEAR
        return Assignment(response_id=response_id, consultation_id=consultation_id, cluster_id=cluster, kind=kind, similarity=round(match.similarity, 4))

    def run(self, stop: threading.Event) -> None:
        """Cluster until `stop` is set. One clusterer of a deployment runs; any other stands by to take over."""
        locks.one_at_a_time(self.app.recorder, "clusterer", stop, lambda held: self._serve(stop, held), STANDBY)

    def _serve(self, stop: threading.Event, held: Any) -> None:
        self.reset()  # rebuilt from the log: another clusterer may have recorded since
        started = time.perf_counter()
        self.bell = bell = store.Doorbell(self.app.recorder)
        rebuilt = False
        try:
            while not stop.is_set():
                if not held():
                    log.warning("clusterer: lost its lock; standing by")
                    return
                bell.clear()
                try:
                    read = self.step()
                    if read == self.batch or self.pending or self.shredded:
                        continue
                    if read:
                        # Recorded what came: let more come before the next transaction, so that under
                        # load one records many (fewer writes beside the API's, fewer wake-ups of every follower).
                        stop.wait(GATHER)
                        continue
                except Exception as e:  # noqa: BLE001 - the clusterer outlives store outages; it reports and rebuilds
                    log.warning("clusterer: %s: %s; rebuilding from the log", type(e).__name__, e)
                    self.reset()
                    stop.wait(1.0)
                    continue
                if not rebuilt:
                    rebuilt = True
                    log.info("clusterer: index rebuilt from the log in %.1fs (%d members)", time.perf_counter() - started, sum(len(i) for i in self.indexes.values()))
                bell.wait(IDLE_POLL)
        finally:
            bell.close()
            self.bell = None
