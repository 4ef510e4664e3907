"""The published report, for everyone: each version as JSON, as an HTML page, and as open data.

Which versions exist comes from the report view (projections.report), so a version is public only
once the view has caught up with its event. Its content is rebuilt from the log by reports.service
(checked against its digest) and kept in memory under (slug, version, digest, erasures); every
representation is rendered by reports.render, the very bytes `agora report build` writes. A
withdrawn version stays listed, but its content is gone (410).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import anyio
from litestar import MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from api.problems import documented, problem
from api.public.pages import POLICY
from api.services import After, Services, absent, wait
from audit.ledger import Checkpoint
from domain.consultations.consultation import consultation_id
from domain.errors import ConsultationNotFound
from domain.text import excerpt, moment
from domain.reports.report import ReportNotFound, report_id
from projections.live import ReportReader
from projections.report import ReportVersion, latest
from reports import render
from reports.service import Built
from runtime import System

HTML_POLICY = f"{POLICY}; form-action 'none'"
_NUMBER = re.compile(r"^([1-9][0-9]{0,8})(\.html|\.json)?$")


class PublishedReports:
    """What the report's public routes share in a process: the view, the service, and the versions rebuilt so far."""

    CACHED = 16  # rebuilt versions kept in memory, the least recently asked for dropped first

    def __init__(self, system: System, client: Any) -> None:
        self.reports = system.reports
        self.ledger = system.ledger
        self.view = ReportReader(client, system.settings.redis_prefix)
        self._built: dict[tuple[str, int, str, int], asyncio.Future[Built]] = {}
        self._checkpoints: dict[int, Checkpoint] = {}

    async def listing(self, services: Services, slug: str) -> tuple[list[ReportVersion], int]:
        """The published versions, oldest first, and the erasures so far; a problem if there are none."""
        versions, erasures = await self.view.versions(report_id(consultation_id(slug)))
        if not versions:
            if await services.forms.form(consultation_id(slug)) is None:
                raise await absent(services, services.forms, ConsultationNotFound(slug))
            raise await absent(services, self.view, problem(404, "report-not-published", "No report yet", f"No report on '{slug}' is published yet."))
        return versions, erasures

    async def built(self, slug: str, version: ReportVersion, erasures: int) -> Built:
        """The version rebuilt from the log, once per process (concurrent requests share one rebuild).

        Keyed by the erasures too: once the view has seen a confirmed redaction, versions are rebuilt,
        so that a quote whose text was shredded no longer shows it.
        """
        key = (slug, version.version, version.digest, erasures)
        task = self._built.pop(key, None)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(anyio.to_thread.run_sync(self.reports.version, slug, version.version))
        self._keep(key, task)
        return await asyncio.shield(task)

    def remember(self, slug: str, built: Built, erasures: int) -> None:
        """Keep a version just published, so that its first readers need no rebuild: built at the head
        of the log, it has a rebuild's bytes. `erasures` must be read before it was built."""
        assert built.info is not None
        task: asyncio.Future[Built] = asyncio.get_running_loop().create_future()
        task.set_result(built)
        self._keep((slug, built.info.version, built.digest, erasures), task)

    def _keep(self, key: tuple[str, int, str, int], task: asyncio.Future[Built]) -> None:
        self._built[key] = task
        while len(self._built) > self.CACHED:
            del self._built[next(iter(self._built))]

    async def checkpoint(self, position: int) -> Checkpoint | None:
        """The first signed checkpoint whose tree holds `position`, once there is one (it never changes after)."""
        if position not in self._checkpoints:
            found = await anyio.to_thread.run_sync(self.ledger.covering, position)
            if found is None:
                return None
            self._checkpoints[position] = found
        return self._checkpoints[position]


def conditional(request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    """A 200 with a strong ETag of its bytes, or a 304 if the client holds them already."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "public, no-cache", **(headers or {})}
    if media_type == MediaType.HTML:
        headers["Content-Security-Policy"] = HTML_POLICY
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def wants_html(request: Request) -> bool:
    return request.accept.best_match([MediaType.JSON, MediaType.HTML], default=MediaType.JSON) == MediaType.HTML


async def find(services: Services, reports: PublishedReports, slug: str, number: int | None) -> tuple[ReportVersion, int]:
    """A published version (the latest if `number` is None) and the erasures so far."""
    versions, erasures = await reports.listing(services, slug)
    version = latest(versions) if number is None else next((v for v in versions if v.version == number), None)
    if version is None:
        raise ReportNotFound(f"There is no version {number} of the report on '{slug}'; the latest is {versions[-1].version}.")
    return version, erasures


def gone(slug: str, version: ReportVersion) -> Exception:
    assert version.withdrawn is not None
    return problem(
        410, "report-withdrawn", "This version is withdrawn",
        f"Version {version.version} of the report on '{slug}' was withdrawn: {version.withdrawn.reason}",
        version=version.version, withdrawn_at=moment(version.withdrawn.at), reason=version.withdrawn.reason,
    )


async def show(
    request: Request, services: Services, reports: PublishedReports, slug: str, number: int | None, html: bool, after: int | None,
    negotiated: bool = False,
) -> Response[bytes]:
    await wait(services, reports.view, after)
    version, erasures = await find(services, reports, slug, number)
    vary = {"Vary": "Accept"} if negotiated else {}
    if version.withdrawn is not None:
        if not html:
            raise gone(slug, version)
        form = await services.forms.form(consultation_id(slug))
        page = render.withdrawn_page(form.definition.title if form else slug, slug, version)
        return Response(page, status_code=410, media_type=MediaType.HTML, headers={"Content-Security-Policy": HTML_POLICY, **vary})
    built = await reports.built(slug, version, erasures)
    if html:
        return conditional(request, render.page(built, await reports.checkpoint(version.position)), MediaType.HTML, vary)
    return conditional(request, built.body, MediaType.JSON, vary)


PAGE = documented(400, 404, 410, 503)
Reports = NamedDependency[PublishedReports]


@get("/consultations/{slug:str}/report", responses=PAGE, summary="The latest published report (JSON; HTML with Accept: text/html)")
async def report(slug: FromPath[str], request: Request, services: NamedDependency[Services], reports: Reports, after: After = None) -> Response[bytes]:
    return await show(request, services, reports, slug, None, wants_html(request), after, negotiated=True)


@get("/consultations/{slug:str}/report.html", responses=PAGE, summary="The latest published report as a page")
async def report_page(slug: FromPath[str], request: Request, services: NamedDependency[Services], reports: Reports, after: After = None) -> Response[bytes]:
    return await show(request, services, reports, slug, None, True, after)


@get("/consultations/{slug:str}/report/versions", responses=documented(400, 404, 503), summary="Every published version of the report")
async def versions(slug: FromPath[str], request: Request, services: NamedDependency[Services], reports: Reports, after: After = None) -> Response[bytes]:
    return await listed(request, services, reports, slug, wants_html(request), after, {"Vary": "Accept"})


@get("/consultations/{slug:str}/report/versions.html", responses=documented(400, 404, 503), summary="Every published version of the report, as a page")
async def versions_page(slug: FromPath[str], request: Request, services: NamedDependency[Services], reports: Reports, after: After = None) -> Response[bytes]:
    return await listed(request, services, reports, slug, True, after)


async def listed(
    request: Request, services: Services, reports: PublishedReports, slug: str, html: bool, after: int | None, vary: dict[str, str] | None = None,
) -> Response[bytes]:
    await wait(services, reports.view, after)
    found, _ = await reports.listing(services, slug)
    if not html:
        return conditional(request, render.listing(found), MediaType.JSON, vary)
    form = await services.forms.form(consultation_id(slug))
    return conditional(request, render.listing_page(form.definition.title if form else slug, slug, found), MediaType.HTML, vary)


@get(
    "/consultations/{slug:str}/report/versions/{number:str}", responses=PAGE,
    summary="A version of the report: `…/versions/2` (JSON; HTML with Accept: text/html) or `…/versions/2.html`",
)
async def version(
    slug: FromPath[str], number: FromPath[str], request: Request, services: NamedDependency[Services], reports: Reports,
    after: After = None,
) -> Response[bytes]:
    n, suffix = _number(number)
    html = suffix == ".html" or (not suffix and wants_html(request))
    return await show(request, services, reports, slug, n, html, after, negotiated=not suffix)


@get("/consultations/{slug:str}/report/versions/{number:int}/data.zip", responses=PAGE, summary="A version's open data: CSV, JSON and a README")
async def data(slug: FromPath[str], number: FromPath[int], request: Request, services: NamedDependency[Services], reports: Reports) -> Response[bytes]:
    version, erasures = await find(services, reports, slug, number)
    if version.withdrawn is not None:
        raise gone(slug, version)
    built = await reports.built(slug, version, erasures)
    disposition = {"Content-Disposition": f'attachment; filename="{slug}-report-{number}.zip"'}
    return conditional(request, render.data_zip(built), "application/zip", disposition)


def _number(text: str) -> tuple[int, str]:
    """`2`, `2.html` or `2.json`: the version number, and the form asked for by name ('' if none: by Accept)."""
    match = _NUMBER.match(text)
    if match is None:
        raise ReportNotFound(f"{excerpt(text)} is not a version: versions are numbered 1, 2, …, with '.html' for the page or '.json' for the JSON.")
    return int(match.group(1)), match.group(2) or ""


routes = [report, report_page, versions, versions_page, version, data]
