"""`agora report`: build a report version's files from the log, and verify a version against its digest.

`build` writes what the public routes serve for that version, byte for byte: report.json,
report.html and data.zip (reports.render). `verify` rebuilds a version and compares digests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from domain.access.service import REPORT_PREVIEW
from projections.report import latest
from reports import render
from reports.content import build as build_content, canonical, described, digest
from reports.service import Built, VersionInfo
from runtime import System


def served(versions: Sequence[VersionInfo], version: int | None) -> int | None:
    """`version`, else the one `GET …/report` serves: the latest not withdrawn (else the latest; None if none)."""
    chosen = latest(versions) if version is None else None
    return chosen.version if chosen else version


def built(system: System, slug: str, at: int | None, version: int | None) -> Built:
    """A published version (by default the one the public reads), or the one built at `at`, or what would be published at `at`."""
    versions = system.reports.versions(slug)
    if at is None:
        return system.reports.version(slug, served(versions, version))
    head = system.app.head()
    if not 1 <= at <= head:
        raise ValueError(f"--at must be a position in the log, 1 to {head}")
    published = [v for v in versions if v.position == at]
    if published:
        return system.reports.version(slug, published[-1].version)
    # Not published: the version that would have been built there (interim), as a preview: one more
    # than those built before it, whatever was published later.
    consultation = system.consultations.get(slug)
    before = sum(v.position < at for v in versions)
    content = build_content(system.app, system.texts, consultation.id, at, before + 1, final=False)
    system.access.record(None, REPORT_PREVIEW, slug)  # its quotes were never published: an operator saw them
    return Built(None, content, canonical(content), digest(content))


def build(args: argparse.Namespace, system: System) -> None:
    result = built(system, args.slug, args.at, args.version)
    checkpoint = system.ledger.covering(result.content.position)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in render.outputs(result, checkpoint).items():
        (out / name).write_bytes(data)
    info = result.info
    state = "not published (a preview)" if info is None else "withdrawn" if info.withdrawn else "published"
    print(f"version {result.content.version} at position {result.content.position}, {state}: digest {result.digest}")
    print(f"wrote report.json, report.html and data.zip to {out}")


def verify(args: argparse.Namespace, system: System) -> None:
    against = Path(args.against).read_bytes() if args.against else None
    versions = system.reports.versions(args.slug)
    result = system.reports.verify(args.slug, served(versions, args.version), against)
    state = " (withdrawn)" if any(v.version == result.version and v.withdrawn for v in versions) else ""
    if not result.ok:
        sys.exit(f"version {result.version}{state} differs: {result.difference}")
    copy = f", and {args.against} matches it (figures, quoted texts' hashes, nothing added)" if args.against else ""
    print(f"ok: version {result.version}{state} rebuilds to its published digest {result.recorded}{copy}")
    for ref in result.erased:
        print(f"  {described(ref)}: its text was erased by a recorded redaction since publication")


def run(args: argparse.Namespace, system: System) -> None:
    {"build": build, "verify": verify}[args.action](args, system)


def add_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    r = sub.add_parser("report", help="published reports: build a version's files, verify a version").add_subparsers(
        required=True, dest="action", metavar="ACTION"
    )
    b = r.add_parser("build", help="write report.json, report.html and data.zip of a version, as served")
    b.add_argument("slug")
    which = b.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a published version (default: the one GET …/report serves, the latest not withdrawn)")
    which.add_argument("--at", type=int, metavar="POSITION", help="the version built at this log position; if none was, what would be")
    b.add_argument("--out", required=True, metavar="DIR")
    v = r.add_parser("verify", help="rebuild a version from the log and compare it with its published digest")
    v.add_argument("slug")
    v.add_argument("--version", type=int, help="default: the one GET …/report serves, the latest not withdrawn")
    v.add_argument("--against", metavar="FILE", help="a report.json served or built earlier: name the first field that differs")
    return r
