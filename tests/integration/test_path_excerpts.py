"""A problem about a path quotes a short, escaped excerpt of what the path held, however long it was."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ON_SQLITE_ONLY, SLUG
from tests.integration.test_hostile_input import assert_problem

LONG = "a" * 5000


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (f"/consultations/{LONG}", "consultation-not-found"),
        (f"/consultations/{LONG}/report", "consultation-not-found"),
        (f"/consultations/{SLUG}/report/versions/{LONG}", "report-not-found"),
    ],
    ids=["form", "report", "report version"],
)
@ON_SQLITE_ONLY
async def test_a_long_path_is_quoted_as_an_excerpt(client: AsyncTestClient, path: str, name: str) -> None:
    body = assert_problem(await client.get(path), 404, name)
    assert f"'{'a' * 40}…'" in body["detail"] and len(body["detail"]) < 200, body["detail"]
