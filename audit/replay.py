"""A view as it stood at any position of the log, for auditors: folded in memory by the live views' own folds.

`projections.state.replay` folds the log up to a position into a `Memory` holding the very bytes
the Redis view would hold; this decodes them with the decoders the API's readers use, into one
JSON document per view: its position and, per consultation (by slug), the form, the statistics,
the review cases or the report's versions. Nothing here counts or decides anything the folds do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import Application

from domain.reports.report import report_id
from projections import queue, report
from projections.form import Form, FormProjection, decode_form, form_key
from projections.live import VIEWS
from projections.state import Memory, replay
from projections.stats import campaigns_in, stats_key, tally


class Snapshot(msgspec.Struct, omit_defaults=True):
    view: str
    position: int
    consultations: dict[str, Any]  # by slug, in slug order
    progress: queue.Progress | None = None  # the queue's, over every consultation
    erasures: int | None = None  # the report view's count of confirmed redactions


Forms = dict[str, tuple[UUID, Form]]  # every consultation created by then, by slug: its id and form


def _form(memory: Memory, forms: Forms, at: int) -> Snapshot:
    return Snapshot("form", at, {slug: form for slug, (_, form) in forms.items()})


def _stats(memory: Memory, forms: Forms, at: int) -> Snapshot:
    return Snapshot(
        "stats", at,
        {slug: tally(form.definition, memory.hgetall(stats_key(cid)), at, campaigns_in(memory, cid)) for slug, (cid, form) in forms.items()},
    )


def _queue(memory: Memory, forms: Forms, at: int) -> Snapshot:
    # A replay has no "now": a claim shows as it was recorded, lapsed or not.
    items = sorted((queue.item(memory.hgetall(k), lapsed=False, clusters=memory.hashes) for k in memory.hashes if k.startswith(queue.case_key(""))), key=lambda i: i.position)
    cases = {slug: [i for i in items if i.consultation_id == cid] for slug, (cid, _) in forms.items()}
    return Snapshot("queue", at, cases, progress=queue.progress(memory.hgetall(queue.PROGRESS), at))


def _report(memory: Memory, forms: Forms, at: int) -> Snapshot:
    versions = {slug: report.decode_versions(memory.hgetall(report.report_key(report_id(cid)))) for slug, (cid, _) in forms.items()}
    return Snapshot("report", at, versions, erasures=int(memory.hgetall(report.ERASURES).get(b"count", 0)))


DECODERS: dict[str, Callable[[Memory, Forms, int], Snapshot]] = {"form": _form, "stats": _stats, "queue": _queue, "report": _report}


def view_at(app: Application[Any], view: str, at: int | None) -> bytes:
    """The view `view` (one of `DECODERS`) at position `at` (None: the head), as JSON.

    Raises ValueError for an unknown view, or a position outside the log.
    """
    if view not in DECODERS:
        raise ValueError(f"There is no view '{view}'; the views are: {', '.join(DECODERS)}.")
    head = app.recorder.max_notification_id() or 0
    if at is not None and not 0 <= at <= head:
        raise ValueError(f"Position {at} is not in the log, which ends at {head}.")
    at = head if at is None else at
    forms = replay(app, FormProjection, at)
    memory = forms if view == "form" else replay(app, VIEWS[view][0], at)
    return msgspec.json.encode(DECODERS[view](memory, _forms(forms), at))


def _forms(forms: Memory) -> Forms:
    found = ((UUID(k.removeprefix(form_key(""))), decode_form(forms.hgetall(k))) for k in forms.hashes if k.startswith(form_key("")))
    return {form.definition.slug: (cid, form) for cid, form in sorted(found, key=lambda f: f[1].definition.slug) if form}
