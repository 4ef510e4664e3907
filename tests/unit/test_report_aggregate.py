"""The report's rules and refusals, on the aggregate alone."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidInput
from domain.reports.report import (
    MAX_MARKDOWN,
    MAX_QUOTES,
    MAX_SECTIONS,
    NotReadyForFinal,
    QuoteNotCandidate,
    QuoteRef,
    Report,
    ReportConflict,
    ReportNotFound,
    report_id,
)
from reports import render

CONSULTATION, EDITOR = uuid4(), uuid4()
QUOTE = QuoteRef(uuid4(), "works_well", 0, 10)
DIGEST = "ab" * 32


def drafted() -> Report:
    report = Report(consultation_id=CONSULTATION, by=EDITOR)
    report.collect_events()
    return report


def published(report: Report, final: bool = False) -> int:
    return report.publish(EDITOR, 10, DIGEST, "agora-report/1", final, {}, is_open=not final, left=0)


def test_one_report_per_consultation_named_by_its_id() -> None:
    report = drafted()
    assert report.id == report_id(CONSULTATION) != report_id(uuid4())


def test_sections_are_written_replaced_and_removed_and_unchanged_ones_record_nothing() -> None:
    report = drafted()
    report.write_section(EDITOR, "we-asked", " We asked ", "Three questions.")
    report.write_section(EDITOR, "we-asked", "We asked", "Three questions.")  # the same again
    assert [type(e) for e in report.collect_events()] == [Report.SectionWritten]
    assert report.sections["we-asked"].title == "We asked"
    report.remove_section(EDITOR, "we-asked")
    (removed,) = report.collect_events()
    assert removed.markdown == "" and "we-asked" not in report.sections
    report.remove_section(EDITOR, "never-written")  # removing what is not there: nothing
    assert report.collect_events() == []


@pytest.mark.parametrize(
    ("key", "title", "markdown", "field"),
    [
        ("We Asked", "T", "x", "key"),
        ("-x", "T", "x", "key"),
        ("k" * 41, "T", "x", "key"),
        ("we-asked", "   ", "x", "title"),
        ("we-asked", "t" * 201, "x", "title"),
        ("we-asked", "T", "m" * (MAX_MARKDOWN + 1), "markdown"),
        ("we-did", "We did \u202e evil", "x", "title"),  # a tester's: on the public page it read backwards
        ("we-did", "We did\x00", "x", "title"),
        ("we-did", "We did", "# We did \u202e evil", "markdown"),
        ("we-did", "We did", "Red\x1b[31m alert\x07", "markdown"),  # a tester's reached the page and sections.csv
        ("we-did", "We did", "", "markdown"),  # a tester's blank save removed the section, without a word
        ("we-did", "We did", " \n\u200b", "markdown"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(key: str, title: str, markdown: str, field: str) -> None:
    report = drafted()
    with pytest.raises(InvalidInput) as refused:
        report.write_section(EDITOR, key, title, markdown)
    assert [e.field for e in refused.value.errors] == [field]
    assert report.collect_events() == []


def test_a_report_has_at_most_so_many_sections() -> None:
    report = drafted()
    for n in range(MAX_SECTIONS):
        report.write_section(EDITOR, f"s{n}", "T", "x")
    report.write_section(EDITOR, "s0", "T", "changed")  # changing one is fine
    with pytest.raises(InvalidInput, match="at most"):
        report.write_section(EDITOR, "one-more", "T", "x")


def test_quotes_are_selected_once_and_unselected_only_when_selected() -> None:
    report = drafted()
    report.select_quote(EDITOR, QUOTE)
    report.select_quote(EDITOR, QUOTE)
    (selected,) = report.collect_events()
    assert (selected.response_id, selected.question_id, selected.start, selected.end, selected.by) == (QUOTE.response_id, "works_well", 0, 10, EDITOR)
    report.unselect_quote(EDITOR, QUOTE)
    assert report.quotes == set()
    with pytest.raises(QuoteNotCandidate, match="not selected"):
        report.unselect_quote(EDITOR, QUOTE)


def test_a_report_quotes_at_most_so_many_passages() -> None:
    report = drafted()
    for n in range(MAX_QUOTES):
        report.select_quote(EDITOR, QuoteRef(QUOTE.response_id, "works_well", n, n + 1))
    with pytest.raises(InvalidInput, match="at most"):
        report.select_quote(EDITOR, QuoteRef(QUOTE.response_id, "works_well", 0, 500))


def test_versions_are_numbered_and_each_records_its_position_digest_and_builder() -> None:
    report = drafted()
    assert published(report) == 1
    assert published(report) == 2
    first, second = report.collect_events()
    assert (second.version, second.position, second.digest, second.builder, second.final, second.by) == (
        2, 10, DIGEST, "agora-report/1", False, EDITOR,
    )
    assert first.version == 1


@pytest.mark.parametrize(("is_open", "left", "words"), [(True, 0, "still open"), (False, 3, "3 responses still to review"), (True, 1, "open and 1 response still")])
def test_a_final_version_needs_a_closed_consultation_and_every_response_completed(is_open: bool, left: int, words: str) -> None:
    report = drafted()
    with pytest.raises(NotReadyForFinal, match=words) as refused:
        report.publish(EDITOR, 10, DIGEST, "b", True, {}, is_open=is_open, left=left)
    assert refused.value.left == left
    assert report.collect_events() == []
    assert report.publish(EDITOR, 10, DIGEST, "b", False, {}, is_open=is_open, left=left) == 1  # an interim one is fine
    assert report.publish(EDITOR, 10, DIGEST, "b", True, {}, is_open=False, left=0) == 2


def test_a_correction_needs_a_published_version_what_changed_and_why() -> None:
    report = drafted()
    with pytest.raises(ReportConflict, match="Nothing is published"):
        report.correct(EDITOR, 10, DIGEST, "b", False, {}, False, 0, "a figure", "a typo")
    published(report)
    for erratum, reason in [("", "why"), ("what", "  "), ("w" * 2001, "why"), ("\u200b\u2060", "why"), ("what", "\u200b")]:
        with pytest.raises(InvalidInput):
            report.correct(EDITOR, 10, DIGEST, "b", False, {}, False, 0, erratum, reason)
    with pytest.raises(NotReadyForFinal):
        report.correct(EDITOR, 10, DIGEST, "b", True, {}, True, 0, "what", "why")
    report.collect_events()
    assert report.correct(EDITOR, 11, DIGEST, "b", False, {}, False, 0, " the\x00 count ", " a typo\x1b[2J ") == 2
    (corrected,) = report.collect_events()
    # Published words: trimmed, and without the NUL or the escape sequence an attacker's tester slipped in.
    assert (corrected.version, corrected.erratum, corrected.reason) == (2, "the count", "a typo[2J")


def test_withdrawing_marks_one_version_once_and_needs_a_reason() -> None:
    report = drafted()
    with pytest.raises(ReportNotFound, match="Nothing is published"):
        report.withdraw(EDITOR, "mistake")
    published(report)
    published(report)
    for blank in (" ", "\u200b\u2060"):  # nothing at all, or nothing that shows
        with pytest.raises(InvalidInput):
            report.withdraw(EDITOR, blank)
    with pytest.raises(ReportNotFound, match="no published version 3"):
        report.withdraw(EDITOR, "mistake", 3)
    assert report.withdraw(EDITOR, "mistake", 1) == 1
    assert report.collect_events()[-1].reason == "mistake"
    assert report.withdraw(EDITOR, " mis\x00take ") == 2
    assert report.collect_events()[-1].reason == "mistake"
    with pytest.raises(ReportConflict, match="withdrawn already"):
        report.withdraw(EDITOR, "again", 2)
    assert report.withdrawn == {1, 2}


def test_a_sections_markdown_writes_out_overrides_the_parser_makes_of_entities() -> None:
    """A tester's link title `&#x202E;…` passed the check on the raw text and reversed the title on the page."""
    html = render.markdown('[link](https://example.org "tip &#x202E;gnp.exe&#x202C;") and `co\u202ede`')
    assert 'title="tip [U+202E]gnp.exe[U+202C]"' in html and "<code>co[U+202E]de</code>" in html and "\u202e" not in html
    assert render.markdown("Line one\nline two") == "<p>Line one\nline two</p>\n"  # line breaks are no control characters here
