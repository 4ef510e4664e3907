"""What must never change under a refactoring: stored topics and the OpenAPI schema.

`fixtures/store-v1.sqlite` was written by main at 8726f8a (before the code was split by context):
it holds at least one event of every class, keys included. Today's code must read all of it.
`fixtures/openapi.json` is that commit's schema.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from eventsourcing.utils import get_topic
from litestar.serialization import encode_json

from api.app import create_app
from runtime.settings import Settings
from domain.consultations.consultation import consultation_id
from domain.consultations.response import Response
from domain.signups.signup import Signup
from projections.form import decode_form, form_key
from projections.live import VIEWS
from projections.queue import progress
from projections.state import replay
from projections.stats import stats_key, tally
from runtime import System

FIXTURES = Path(__file__).parent.parent / "fixtures"


def old_store(tmp_path: Path) -> System:
    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "store-v1.sqlite", db)
    settings = Settings(data_dir=str(tmp_path), secret="s" * 48, password_profile="CHEAPEST")
    return System(settings, {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(db)})


def test_every_stored_event_and_aggregate_reads(tmp_path: Path) -> None:
    system = old_store(tmp_path)
    app = system.app
    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    assert len(notifications) == 65
    for n in notifications:
        event = app.mapper.to_domain_event(n)
        assert get_topic(type(event)) == n.topic  # new events are written under the same topics
    aggregates = {n.originator_id for n in notifications}
    for aggregate_id in aggregates:
        aggregate = app.repository.get(aggregate_id)
        assert get_topic(type(aggregate)).startswith("domain.")
    assert len({n.topic for n in notifications}) == 36
    system.close()


def test_every_view_rebuilds_from_the_old_store_and_sealed_text_still_reads(tmp_path: Path) -> None:
    system = old_store(tmp_path)
    (consultation,) = system.consultations.slugs()
    definition = system.consultations.get(consultation).definition
    views = {name: replay(system.app, projection) for name, (projection, _) in VIEWS.items()}
    stats = tally(definition, views["stats"].hgetall(stats_key(consultation_id(consultation))), 0)
    assert stats.responses == 4 and stats.answers["familiarity"] == {"not_aware": 1, "aware_not_read": 0, "read": 2, "know_well": 1}
    assert progress(views["queue"].hgetall("progress"), 0).reviewed == 2  # three completed, one reopened
    form = decode_form(views["form"].hgetall(form_key(consultation_id(consultation))))
    assert form is not None and form.draft_url == "https://example.org/draft" and sum(form.taken.values()) == 1
    # Free text sealed by the old code opens with today's, redactions applied; erased contacts stay erased.
    responses = [e.originator_id for e in system.app.select_events(Response.Submitted)]
    assert system.review.answers(responses[0])["works_well"] == "The scope section is clear."
    assert system.review.answers(responses[1])["works_well"] == "[redacted] at jane@example.org told me it works."
    contacts = [system.signups.contact(system.signups.get(e.originator_id)) for e in system.app.select_events(Signup.Requested)]
    assert [c.name if c else None for c in contacts] == ["Sam One", "Kim Two", None, "Pat Four"]
    system.close()


def without_examples(schema: Any) -> Any:
    """The schema less its generated examples, which are random on every start, and less
    `additionalProperties: false`, which it now states where unknown fields were always refused."""
    if isinstance(schema, dict):
        return {
            k: without_examples(v) for k, v in schema.items()
            if k not in ("examples", "example") and not (k == "additionalProperties" and v is False)
        }
    if isinstance(schema, list):
        return [without_examples(v) for v in schema]
    return schema


# Changed on purpose since the fixture was taken, each with its reason.
CHANGED_PATHS = {
    "/review/responses/{response_id}/history": "its entries became audit events, with their log positions",
    # Removed: they mixed every consultation; reviewers work one at a time under /review/consultations/{slug}.
    "/review/queue": "removed: /review/consultations/{slug}/queue",
    "/review/progress": "removed: /review/consultations (each with its progress) and /review/consultations/{slug}/progress",
    "/review/claim-next": "removed: /review/consultations/{slug}/claim-next",
}
CHANGED_SCHEMAS = {
    "HistoryEntry": "replaced by AuditEvent",
    "SignupState": "a new state, erasing: the calendar cancellation goes out before the erasure",
    "QueuePage": "removed with /review/queue: a consultation's queue answers a ReviewPage",
    "QueueItem": "removed with /review/queue: its items are ReviewItems, which name the consultation",
    "Stats": "two fields added, without_campaigns and campaigns; the others as they were",
    "RedactionIn": "an optional field added, expect: the passage as it reads, checked before redacting",
}


def test_every_route_of_the_old_schema_is_served_unchanged() -> None:
    """New routes may come; the old ones, and the schemas they use, stay as clients knew them."""
    app = create_app(Settings(secret="x" * 48), {})
    served = without_examples(json.loads(encode_json(app.openapi_schema.to_schema())))
    old = without_examples(json.loads((FIXTURES / "openapi.json").read_text()))
    kept = [(path, method) for path, methods in old["paths"].items() if path not in CHANGED_PATHS for method in methods]
    assert {(p, m): served["paths"].get(p, {}).get(m) for p, m in kept} == {(p, m): old["paths"][p][m] for p, m in kept}
    schemas = {name: served["components"]["schemas"].get(name) for name in old["components"]["schemas"] if name not in CHANGED_SCHEMAS}
    assert schemas == {name: v for name, v in old["components"]["schemas"].items() if name not in CHANGED_SCHEMAS}
