"""The report's editorial desk: editors write, select quotes, preview and publish; auditors and admins read.

Every write is an event naming the editor (reports.service checks the roles again, as every
context does); what the public then sees is served by api/public/report.py. Provenance shows, for
each quote and theme count of a version, the responses and review steps behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import anyio
import msgspec
from litestar import MediaType, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import requires
from api.problems import STAFF_PROBLEMS
from api.public.report import HTML_POLICY, PublishedReports
from api.staff.review import Recorded
from domain.access.service import QUOTE_CANDIDATES, REPORT_PREVIEW
from domain.reports.report import MAX_MARKDOWN, MAX_REASON, MAX_TITLE, QuoteRef
from domain.staff.member import Role, StaffMember
from reports import render
from reports.service import Built, Candidate, Provenance, Verification, VersionInfo
from runtime import System

EDITORS = requires(Role.EDITOR)
READERS = requires(Role.EDITOR, Role.AUDITOR, Role.ADMIN)
Staff = Request[StaffMember, Token, Any]
BASE = "/staff/consultations/{slug:str}/report"
Final = Annotated[bool, QueryParameter(description="Preview a final version (default: interim)")]


class SectionIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(max_length=MAX_TITLE)]
    markdown: Annotated[str, msgspec.Meta(max_length=MAX_MARKDOWN, description="Markdown: paragraphs, headings, lists, emphasis, code, http(s) links; raw HTML is shown as text")]


class QuoteChoice(msgspec.Struct, forbid_unknown_fields=True):
    """A candidate quote as `GET …/candidates` lists it."""

    response_id: UUID
    question_id: Annotated[str, msgspec.Meta(max_length=40)]
    start: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
    end: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


NEXT = msgspec.Meta(ge=1, description="The number this version is to have, as the preview showed it: if another was published since (a second click), a 409 and nothing published")


class PublicationIn(msgspec.Struct, forbid_unknown_fields=True):
    final: Annotated[bool, msgspec.Meta(description="A final version: only once the consultation is closed and every response completed")] = False
    version: Annotated[int, NEXT] | None = None


class CorrectionIn(msgspec.Struct, forbid_unknown_fields=True):
    erratum: Annotated[str, msgspec.Meta(max_length=MAX_REASON, description="What changed")]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON, description="Why")]
    final: Annotated[bool | None, msgspec.Meta(description="A final version; if left out, as final as the version it corrects")] = None
    version: Annotated[int, NEXT] | None = None


class WithdrawalIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)]


class Publication(msgspec.Struct):
    version: int
    final: bool
    position: Annotated[int, msgspec.Meta(description="The log position its content was built from")]
    digest: str
    after: Annotated[int, msgspec.Meta(description="Pass as `?after=` to the public routes to read this version once it is public")]


@post(BASE, responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Start the report's draft")
def draft(slug: FromPath[str], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.reports.draft(slug, request.user.id))


@put(BASE + "/sections/{key:str}", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Write a section of the narrative")
def write_section(slug: FromPath[str], key: FromPath[str], data: JSONBody[SectionIn], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.reports.write_section(slug, request.user.id, key, data.title, data.markdown))


@delete(BASE + "/sections/{key:str}", responses=STAFF_PROBLEMS, status_code=200, sync_to_thread=True, guards=[EDITORS], summary="Remove a section")
def remove_section(slug: FromPath[str], key: FromPath[str], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.reports.remove_section(slug, request.user.id, key))


@get(BASE + "/candidates", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="The quotes reviewers marked, as their answers read now")
def candidates(slug: FromPath[str], request: Staff, system: NamedDependency[System]) -> list[Candidate]:
    found = system.reports.candidates(slug, request.user.id)
    if shown := list(dict.fromkeys(str(c.quote.response_id) for c in found if c.text is not None)):
        system.access.record(request.user.id, QUOTE_CANDIDATES, ",".join(shown))  # free text may name people: who read it is on record
    return found


@post(BASE + "/quotes", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Select a candidate quote")
def select_quote(slug: FromPath[str], data: JSONBody[QuoteChoice], request: Staff, system: NamedDependency[System]) -> Recorded:
    quote = QuoteRef(data.response_id, data.question_id, data.start, data.end)
    return Recorded(system.reports.select_quote(slug, request.user.id, quote))


@delete(
    BASE + "/quotes/{response_id:uuid}/{question_id:str}/{start:int}/{end:int}", responses=STAFF_PROBLEMS, status_code=200,
    sync_to_thread=True, guards=[EDITORS], summary="Unselect a quote",
)
def unselect_quote(
    slug: FromPath[str], response_id: FromPath[UUID], question_id: FromPath[str], start: FromPath[int], end: FromPath[int],
    request: Staff, system: NamedDependency[System],
) -> Recorded:
    return Recorded(system.reports.unselect_quote(slug, request.user.id, QuoteRef(response_id, question_id, start, end)))


@get(BASE + "/preview", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="The next version as it would be built now (JSON)")
def preview(slug: FromPath[str], request: Staff, system: NamedDependency[System], final: Final = False) -> Response[bytes]:
    return Response(_preview(slug, request, system, final).body, media_type=MediaType.JSON)


@get(BASE + "/preview.html", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="The next version's page as it would be built now")
def preview_page(slug: FromPath[str], request: Staff, system: NamedDependency[System], final: Final = False) -> Response[bytes]:
    page = render.page(_preview(slug, request, system, final))
    return Response(page, media_type=MediaType.HTML, headers={"Content-Security-Policy": HTML_POLICY})


def _preview(slug: str, request: Staff, system: System, final: bool) -> Built:
    built = system.reports.preview(slug, request.user.id, final)
    # Its quotes and campaigns' texts are free text not yet published: who read it is on record, by the responses shown.
    c = built.content
    shown = [q.response_id for q in c.quotes] + [k.representative.response_id for k in (c.campaigns.campaigns if c.campaigns else ()) if k.representative]
    system.access.record(request.user.id, REPORT_PREVIEW, ",".join([slug, *map(str, dict.fromkeys(shown))]))
    return built


@post(BASE + "/versions", responses=STAFF_PROBLEMS, guards=[EDITORS], summary="Publish the next version, built at the head of the log")
async def publish(
    slug: FromPath[str], data: JSONBody[PublicationIn], request: Staff, system: NamedDependency[System], reports: NamedDependency[PublishedReports],
) -> Publication:
    return await _publish(slug, system, reports, lambda: system.reports.publish(slug, request.user.id, data.final, data.version))


@post(BASE + "/corrections", responses=STAFF_PROBLEMS, guards=[EDITORS], summary="Publish a correction: a new version with an erratum")
async def correct(
    slug: FromPath[str], data: JSONBody[CorrectionIn], request: Staff, system: NamedDependency[System], reports: NamedDependency[PublishedReports],
) -> Publication:
    return await _publish(slug, system, reports, lambda: system.reports.correct(slug, request.user.id, data.erratum, data.reason, data.final, data.version))


async def _publish(slug: str, system: System, reports: PublishedReports, command: Callable[[], Built]) -> Publication:
    erasures = await reports.view.erasures()  # before building: see PublishedReports.remember
    built = await anyio.to_thread.run_sync(command)
    reports.remember(slug, built, erasures)
    assert built.info is not None
    return Publication(built.info.version, built.info.final, built.info.position, built.digest, system.app.head())


@post(BASE + "/versions/{number:int}/withdraw", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Withdraw a version")
def withdraw(slug: FromPath[str], number: FromPath[int], data: JSONBody[WithdrawalIn], request: Staff, system: NamedDependency[System]) -> Recorded:
    return Recorded(system.reports.withdraw(slug, request.user.id, data.reason, number))


@get(BASE + "/versions", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="Every version, with who published and withdrew it")
def staff_versions(slug: FromPath[str], system: NamedDependency[System]) -> list[VersionInfo]:
    return system.reports.versions(slug)


@get(BASE + "/versions/{number:int}/provenance", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="What stands behind each quote and theme count of a version")
def provenance(slug: FromPath[str], number: FromPath[int], request: Staff, system: NamedDependency[System]) -> Provenance:
    return system.reports.provenance(slug, request.user.id, version=number)


@get(BASE + "/versions/{number:int}/verify", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="Rebuild a version from the log and compare digests")
def verify(slug: FromPath[str], number: FromPath[int], system: NamedDependency[System]) -> Verification:
    return system.reports.verify(slug, number)


routes = [
    draft, write_section, remove_section, candidates, select_quote, unselect_quote, preview, preview_page, publish, correct, withdraw,
    staff_versions, provenance, verify,
]
