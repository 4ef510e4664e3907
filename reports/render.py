"""A report version as people and programs read it: its JSON, its HTML page and its open-data zip.

Every function here is pure: the same version gives the same bytes, whoever renders it (the public
routes, `agora report build`) and on whichever store it was built. The JSON is the content's
canonical bytes (reports.content.canonical); the page is rendered on the server from
reports/templates, extending the one page of Agora (api/templates/page.html.j2, which the signup
pages use too), with its charts as inline SVG and nothing to run or load from elsewhere; the zip
holds CSV files, the same JSON and a README naming every field, with fixed names, order,
timestamps and (no) compression.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from markdown_it import MarkdownIt

from domain.text import BIDI_CONTROLS
from reports.content import WHOLE_REPRESENTS, ReportContent

if TYPE_CHECKING:
    from audit.ledger import Checkpoint
    from projections.report import ReportVersion
    from reports.service import Built

# The subset a report's narrative needs: paragraphs, headings, lists, emphasis, code spans and
# links. Raw HTML is shown as text, never passed through; links go to http(s) addresses only.
_MARKDOWN = MarkdownIt("zero", {"html": False}).enable(
    ["heading", "lheading", "list", "emphasis", "link", "escape", "newline", "backticks"]
)
_MARKDOWN.validateLink = lambda url: url.lower().startswith(("http://", "https://"))


def markdown(text: str, top: int = 3) -> Markup:
    """A section's markdown as safe HTML, its headings from level `top` down (the page's own come first)."""
    tokens = _MARKDOWN.parse(text)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(int(t.tag[1]) + top - 1, 6)}"
        for child in t.children or ():  # as parsed: an entity (`&#x202E;`) is the character it names by now
            child.content = shown(child.content)
            if "title" in child.attrs:
                child.attrs["title"] = shown(str(child.attrs["title"]))
    return Markup(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}))


def moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def percent(part: int, whole: int) -> str:
    """A share to one decimal, rounded half up in integers (no float may make two renderings differ)."""
    if not whole:
        return "–"
    tenths = (part * 1000 + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}%"


def shown(text: str) -> str:
    """Words people typed (a respondent's quote, an editor's erratum, reason or section) for the page, with
    any bidirectional override or isolate or control character written out (`[U+202E]`): left in, it could
    make them read otherwise than as written."""
    return "".join(f"[U+{ord(c):04X}]" if c in BIDI_CONTROLS or (c not in "\n\t" and unicodedata.category(c) == "Cc") else c for c in text)


REASONS = {"spam": "Spam", "abusive": "Abusive", "off_topic": "Off topic", "duplicate": "Duplicate", "other": "Another reason"}

_JSON = msgspec.json.Encoder(order="deterministic")
_ENV = Environment(
    loader=FileSystemLoader([Path(__file__).parent / "templates", Path(__file__).parent.parent / "api" / "templates"]),
    autoescape=select_autoescape(["html.j2"], default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_ENV.filters.update(markdown=markdown, moment=moment, shown=shown)
_ENV.globals.update(percent=percent, reasons=REASONS, passages=lambda builder: builder not in WHOLE_REPRESENTS)


def base(slug: str) -> str:
    return f"/consultations/{slug}/report"


def page(built: Built, checkpoint: Checkpoint | None = None) -> bytes:
    """The version's HTML page (a preview's, if `built.info` is None), citing the signed checkpoint that covers its position."""
    c = built.content
    built_at = built.info.published_at if built.info else datetime.now(UTC)
    return _ENV.get_template("report.html.j2").render(
        c=c, info=built.info, digest=built.digest, checkpoint=checkpoint, base=base(c.consultation.slug), built_at=built_at,
    ).encode()


def listing(versions: list[ReportVersion]) -> bytes:
    """The versions as `GET …/report/versions` lists them."""
    return _JSON.encode({"versions": versions})


def listing_page(title: str, slug: str, versions: list[ReportVersion]) -> bytes:
    """The versions as a page, for people (`GET …/report/versions.html`, or asked for by Accept)."""
    return _ENV.get_template("versions.html.j2").render(title=title, versions=versions, base=base(slug)).encode()


def withdrawn_page(title: str, slug: str, version: ReportVersion) -> bytes:
    """What a withdrawn version's address shows instead of its content."""
    return _ENV.get_template("withdrawn.html.j2").render(title=title, v=version, base=base(slug)).encode()


# Open data: one CSV per table, each described field by field in the README.

Row = tuple[Any, ...]


class Table(NamedTuple):
    name: str
    about: str
    fields: list[tuple[str, str]]  # (name, meaning), for the header row and the README
    rows: Callable[[ReportContent], Iterable[Row]]

    def csv(self, c: ReportContent) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([f for f, _ in self.fields])
        writer.writerows([_cell(v) for v in row] for row in self.rows(c))
        return out.getvalue().encode()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return spreadsheet_safe(value) if isinstance(value, str) else value


def spreadsheet_safe(cell: str) -> str:
    """A cell as text even in a spreadsheet: one starting like a formula (`=HYPERLINK(…)`) gets a leading quote."""
    return f"'{cell}" if cell.startswith(("=", "+", "-", "@", "\t", "\r")) else cell


TABLES = [
    Table(
        "responses.csv", "how many responses were received, completed, excluded and counted",
        [("measure", "received (every response), completed (reviewed or excluded), excluded, counted (received minus excluded); "
          "from format 4, completed_in_group_reviews (of those completed, the ones completed in a campaign's group review, "
          "not each read on its own)"),
         ("responses", "how many")],
        lambda c: [("received", c.responses.received), ("completed", c.responses.completed),
                   ("excluded", c.responses.excluded.total), ("counted", c.responses.counted),
                   *([("completed_in_group_reviews", c.responses.in_group_reviews)] if c.responses.in_group_reviews is not None else [])],
    ),
    Table(
        "exclusions.csv", "excluded responses by reason; a response excluded for several reasons counts under each",
        [("reason", "spam, abusive, off_topic, duplicate, or other (excluded for none of those)"), ("responses", "how many")],
        lambda c: [(reason, c.responses.excluded.by_reason.get(reason, 0)) for reason in REASONS],
    ),
    Table(
        "answers.csv", "the answers to every choice and yes/no question, per option, in the form's order",
        [("question_id", "the question's id in the form"), ("question", "the question as asked"),
         ("kind", "single_choice or yes_no"), ("option_id", "the option's id (true or false for a yes/no question)"),
         ("option", "the option as shown"), ("counted", "responses choosing it, excluded responses left out"),
         ("received", "responses choosing it, excluded ones included")],
        lambda c: [(q.id, q.prompt, q.kind, o.id, o.label, o.counted, o.received) for q in c.questions for o in q.options],
    ),
    Table(
        "themes.csv", "responses per theme of the coding frame, as the frame stood when the version was built",
        [("theme_id", "the theme's id"), ("theme", "its label then"), ("retired", "true if no longer used for new tags"),
         ("responses", "responses completed (not excluded) and tagged with it"), ("frame_version", "the coding frame's version")],
        lambda c: [(t.id, t.label, t.retired, t.responses, c.themes.frame_version) for t in c.themes.themes],
    ),
    Table(
        "sessions.csv", "confirmed attendance per working session (counts only: no names)",
        [("session_id", "the session's id"), ("title", "its title"), ("starts_at", "when it starts (ISO 8601, UTC)"),
         ("confirmed", "seats confirmed")],
        lambda c: [(s.id, s.title, s.starts_at, s.confirmed) for s in c.sessions],
    ),
    Table(
        "quotes.csv", "the passages quoted, as the answers read (redactions applied) when the version was built",
        [("ref", "response/question/start-end: the span as the reviewer marked it"), ("response_id", "the response quoted"),
         ("question_id", "the question answered"), ("question", "the question as asked"),
         ("text", "the passage; empty if it was erased after publication"), ("sha256", "SHA-256 of the passage as published (from format 3, of its nonce, given in report.json, then the passage)")],
        lambda c: [(q.ref, str(q.response_id), q.question_id, q.question, q.text, q.sha256) for q in c.quotes],
    ),
    Table(
        "sections.csv", "the report's narrative, one section a row",
        [("key", "the section's key (we-asked, you-said, we-did, or another)"), ("title", "its title"),
         ("markdown", "its text, in Markdown")],
        lambda c: [(s.key, s.title, s.markdown) for s in c.sections],
    ),
    Table(
        "timeline.csv", "the consultation's moments up to this version",
        [("what", "created, opened, closed, published, corrected or withdrawn"), ("at", "when (ISO 8601, UTC)"),
         ("position", "the event's position in the log"), ("version", "the report version, for publications"),
         ("final", "true for a final version, false for an interim one")],
        lambda c: [(e.what, e.at, e.position, e.version, e.final) for e in c.timeline],
    ),
    Table(
        "errata.csv", "every correction up to this version",
        [("version", "the version that made it"), ("erratum", "what changed"), ("reason", "why")],
        lambda c: [(e.version, e.erratum, e.reason) for e in c.errata],
    ),
]

# Format 2 on (reports.content.FORMATS): a version built by earlier rules has neither.
CAMPAIGN_TABLES = [
    Table(
        "campaigns.csv", "the campaigns editors confirmed (many responses sending the same or nearly the same text), in the order confirmed",
        [("campaign_id", "the campaign's id (its cluster's)"), ("campaign", "its name"), ("received", "its responses"),
         ("counted", "its responses not excluded"), ("representative_id", "the response whose text stands for it: its earliest a reviewer read on its own and kept, not flagged personal_data, with a passage marked as a quote (by agora-report/3 and /4, marked or not; by /2, any kept); empty if none yet"),
         ("representative", "the passages marked in that response, one per line (by agora-report/2 to /4, all its free text), as they read (redactions applied); empty if erased after publication"),
         ("sha256", "SHA-256 of the representative text as published (from format 3, of its nonce, given in report.json, then the text)")],
        lambda c: [
            (k.id, k.name, k.received, k.counted, *((k.representative.response_id, k.representative.text, k.representative.sha256) if k.representative else (None,) * 3))
            for k in c.campaigns.campaigns  # type: ignore[union-attr]
        ],
    ),
    Table(
        "campaign_answers.csv", "the counted answers (excluded responses left out) of the responses in no campaign, then of each campaign's",
        [("campaign_id", "the campaign's id; empty for the responses in no campaign"), ("campaign", "its name; empty likewise"),
         ("question_id", "the question's id in the form"), ("option_id", "the option's id (true or false for a yes/no question)"),
         ("option", "the option as shown"), ("counted", "responses choosing it")],
        lambda c: [
            (k_id, name, q.id, o.id, o.label, answers[q.id][o.id])
            for k_id, name, answers in [(None, None, c.campaigns.answers), *((k.id, k.name, k.answers) for k in c.campaigns.campaigns)]  # type: ignore[union-attr]
            for q in c.questions for o in q.options
        ],
    ),
]


def tables(c: ReportContent) -> list[Table]:
    return TABLES if c.campaigns is None else TABLES + CAMPAIGN_TABLES


# A zip of fixed bytes: the same entries in the same order, with one timestamp and mode, stored
# uncompressed (deflate's output may differ between zlib builds; the files are small).
_EPOCH = (1980, 1, 1, 0, 0, 0)


def data_zip(built: Built) -> bytes:
    files = [("README.txt", readme(built)), ("report.json", built.body), *((t.name, t.csv(built.content)) for t in tables(built.content))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # Unix, whatever the platform
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buffer.getvalue()


def readme(built: Built) -> bytes:
    c = built.content
    json_about = [("report.json", "the version's content as JSON, exactly as served: the same figures as the CSV files", [
        ("format", f"the format of this document ({c.format})"), ("builder", "the rules that built it"),
        ("consultation", "id, slug, title; open and closes_at as they stood at the position"),
        ("version", "this version's number"), ("final", "true for a final version, false for an interim one"),
        ("position", "the log position it was built from"), ("sections", "as in sections.csv"),
        ("responses", "as in responses.csv and exclusions.csv"), ("questions", "as in answers.csv"),
        ("themes", "as in themes.csv"), ("sessions", "as in sessions.csv"), ("quotes", "as in quotes.csv (text null if erased)"),
        ("timeline", "as in timeline.csv"), ("errata", "as in errata.csv"),
        *([("campaigns", "as in campaigns.csv and campaign_answers.csv (representative text null if erased)")] if c.campaigns is not None else []),
    ])]
    files = json_about + [(t.name, t.about, t.fields) for t in tables(c)]
    return _ENV.get_template("README.txt.j2").render(c=c, info=built.info, digest=built.digest, files=files).encode()


def outputs(built: Built, checkpoint: Checkpoint | None = None) -> dict[str, bytes]:
    """What `agora report build` writes, by file name: the bytes the public routes serve."""
    return {"report.json": built.body, "report.html": page(built, checkpoint), "data.zip": data_zip(built)}
