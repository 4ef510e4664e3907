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


def without_examples(schema: Any) -> Any:
    """The schema less its generated examples, which are random on every start."""
    if isinstance(schema, dict):
        return {k: without_examples(v) for k, v in schema.items() if k not in ("examples", "example")}
    if isinstance(schema, list):
        return [without_examples(v) for v in schema]
    return schema


def test_openapi_schema_unchanged() -> None:
    app = create_app(Settings(secret="x" * 48), {})
    served = json.loads(encode_json(app.openapi_schema.to_schema()))
    assert without_examples(served) == without_examples(json.loads((FIXTURES / "openapi.json").read_text()))
