"""A check made inside the transaction that records events: aggregates the events depend on are unchanged.

A response depends on its consultation being open. Saving the consultation with it would make
every submission contend on one aggregate; instead the submission names the consultation's
version it checked (`app.save(*responses, expect={consultation_id: version})`) and the recorder
refuses the whole transaction, with an IntegrityError like any concurrent write, if a close (or
any change) was recorded meanwhile. The caller then checks again and refuses or records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID

from eventsourcing.persistence import IntegrityError


def unchanged(expect: Mapping[UUID, int], version_now: Callable[[UUID], int | None]) -> None:
    for originator_id, version in expect.items():
        if version_now(originator_id) != version:
            raise IntegrityError(f"{originator_id} changed since version {version}")
