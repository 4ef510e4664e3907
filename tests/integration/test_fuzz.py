"""Property-based fuzzing of every route in the OpenAPI schema, against the API served for real.

schemathesis generates requests from the schema (valid and invalid ones) for every operation,
public and staff, each request as one of: anonymous, a member of each role, or a member holding
every role; and fails on any 5xx other than
a 503 with Retry-After, on a problem that is not `application/problem+json`, and on any answer
that does not match the schema's own description of it.
"""

from __future__ import annotations

import itertools

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, strategies
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.core.failures import FailureGroup

from domain.staff.member import Role
import msgspec

from runtime import System
from runtime.settings import Settings
from tests.conftest import ON_SQLITE_ONLY, PASSWORD

EXAMPLES = 15  # per operation and mode (valid and invalid requests)
SHARDS = 4  # the operations, dealt into tests of their own that `make test` runs side by side


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, view_wait_seconds=0.05)  # `?after=` far ahead waits that long


def unavailable_for_now(response: schemathesis.Response) -> bool:
    return response.status_code == 503 and "retry-after" in {k.lower() for k in response.headers}


@ON_SQLITE_ONLY
@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_route_fails_or_answers_off_schema(live_url: str, system: System, shard: int) -> None:
    members = {role.value: [role] for role in Role} | {"every-role": list(Role)}
    tokens: dict[str | None, str] = {None: ""}  # None: anonymous
    for who, roles in members.items():
        system.staff.enrol(f"{who}@example.org", who.title(), PASSWORD, roles, by=None)
        signed_in = httpx.post(f"{live_url}/staff/token", json={"email": f"{who}@example.org", "password": PASSWORD})
        tokens[who] = signed_in.json()["token"]
    schema = schemathesis.openapi.from_url(f"{live_url}/schema/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20

    for operation, mode in itertools.product(operations[shard::SHARDS], (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):

        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode), who=strategies.sampled_from(list(tokens)))
        def fuzz(case: schemathesis.Case, who: str | None) -> None:
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            response = case.call(base_url=live_url, headers=headers, timeout=10)
            if unavailable_for_now(response):
                return
            if response.status_code >= 400 and not response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} is not a problem")
            try:
                case.validate_response(response, checks=[not_a_server_error, content_type_conformance, response_schema_conformance])
            except FailureGroup as e:
                failures.extend(f"{case.method} {case.formatted_path}: {type(f).__name__}: {str(f)[:400]}" for f in e.exceptions)

        try:
            fuzz()
        except hypothesis.errors.Unsatisfiable:  # nothing of the operation can be made invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n\n".join(dict.fromkeys(failures))
