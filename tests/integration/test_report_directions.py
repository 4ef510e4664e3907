"""The report's page lays out respondents' words in their own direction, on a page whose language is English."""

from __future__ import annotations

from uuid import UUID

from litestar.testing import AsyncTestClient

from domain.campaigns.cluster import first_cluster_id
from domain.consultations.service import Submission
from domain.review.case import Outcome
from runtime import System
from tests.conftest import SLUG
from tests.integration.test_report_api import LEASE, PUBLIC, publish, quote

ARABIC = "القواعد الجديدة واضحة وعادلة ونحن نشكركم على الاستماع إلى آراء المجتمع كله."


async def test_an_arabic_quote_and_campaign_text_read_right_to_left(
    client: AsyncTestClient, system: System, staff: dict[str, UUID], headers: dict[str, dict[str, str]],
) -> None:
    answers = [{"familiarity": "read", "works_well": ARABIC}, {"familiarity": "know_well", "works_well": ARABIC}]
    ids = [r.id for r in system.consultations.submit_batch([Submission(SLUG, a) for a in answers])]  # type: ignore[union-attr]
    system.clusterer().catch_up()
    system.campaigns.confirm(SLUG, first_cluster_id(ids[0]), staff["editor"], "Arabic letter", "one text")
    system.review.claim(ids[0], staff["reviewer"], LEASE)
    system.review.mark_quote(ids[0], staff["reviewer"], "works_well", 0, len(ARABIC))
    system.review.complete(ids[0], staff["reviewer"], Outcome.REVIEWED, "")
    system.reports.select_quote(SLUG, staff["editor"], quote(ids[0], ARABIC))
    published = await publish(client, headers["editor"])
    page = (await client.get(f"{PUBLIC}.html", params={"after": published["after"]})).text
    # As the quote, and as the campaign's representative text.
    assert '<html lang="en">' in page and page.count(f'<blockquote><p dir="auto">{ARABIC}</p></blockquote>') == 2
