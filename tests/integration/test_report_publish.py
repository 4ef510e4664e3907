"""Publishing reports through the service: roles, final versus interim, quotes, corrections,
withdrawals, versions rebuilt and checked, provenance, and `verify` against tampering and erasure."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import uuid4

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.consultations.consultation import consultation_id
from domain.consultations.service import Submission
from domain.errors import ConsultationNotFound, InvalidInput
from domain.reports.report import (
    NotReadyForFinal,
    QuoteNotCandidate,
    QuoteRef,
    Report,
    ReportConflict,
    ReportMismatch,
    ReportNotFound,
    report_id,
)
from domain.review.case import Flag, Outcome
from domain.staff.member import NotPermitted
from reports import render
from reports.content import BUILDER, build, canonical, digest
from runtime import System
from tests.conftest import SLUG
from tests.integration.test_report_content import LEASE, Story, scenario


@pytest.fixture
def story(system: System) -> Story:
    return scenario(system)


def finish(system: System, story: Story) -> None:
    """Review the last response and close the consultation: ready for a final version."""
    review = system.review
    review.claim(story.responses[6], story.staff["reviewer"], LEASE)
    review.complete(story.responses[6], story.staff["reviewer"], Outcome.REVIEWED, "")
    system.consultations.close(SLUG)


def test_editors_write_and_publish_others_read_or_nothing(system: System, story: Story) -> None:
    reports, staff = system.reports, story.staff
    for role in ("reviewer", "auditor", "admin"):
        for command in (
            lambda by: reports.draft(SLUG, by),
            lambda by: reports.write_section(SLUG, by, "we-did", "We did", "x"),
            lambda by: reports.select_quote(SLUG, by, story.quote),
            lambda by: reports.unselect_quote(SLUG, by, story.quote),
            lambda by: reports.publish(SLUG, by, final=False),
            lambda by: reports.correct(SLUG, by, "what", "why", final=False),
            lambda by: reports.withdraw(SLUG, by, "why"),
        ):
            head = system.app.head()
            with pytest.raises(NotPermitted, match="editor"):
                command(staff[role])
            assert system.app.head() == head
    for role in ("editor", "auditor", "admin"):
        assert reports.preview(SLUG, staff[role]).info is None
        assert reports.candidates(SLUG, staff[role])
        assert reports.provenance(SLUG, staff[role]).quotes
    for command in (lambda by: reports.preview(SLUG, by), lambda by: reports.candidates(SLUG, by), lambda by: reports.provenance(SLUG, by)):
        with pytest.raises(NotPermitted, match="editor or auditor or admin"):
            command(staff["reviewer"])
    with pytest.raises(ConsultationNotFound):
        reports.publish("no-such-thing", staff["editor"], final=False)


def test_a_deactivated_editor_can_do_nothing(system: System, story: Story) -> None:
    system.staff.deactivate(story.staff["editor"], story.staff["admin"])
    with pytest.raises(NotPermitted, match="deactivated"):
        system.reports.publish(SLUG, story.staff["editor"], final=False)
    with pytest.raises(NotPermitted, match="deactivated"):
        system.reports.preview(SLUG, story.staff["editor"])


def test_final_only_once_closed_and_every_response_completed(system: System, story: Story) -> None:
    editor = story.staff["editor"]
    head = system.app.head()
    with pytest.raises(NotReadyForFinal, match="still open and 1 response still to review") as refused:
        system.reports.publish(SLUG, editor, final=True)
    assert refused.value.left == 1 and system.app.head() == head
    system.consultations.close(SLUG)
    with pytest.raises(NotReadyForFinal, match="1 response still to review"):
        system.reports.publish(SLUG, editor, final=True)
    interim = system.reports.publish(SLUG, editor, final=False)
    assert interim.info is not None and not interim.info.final and not interim.content.final
    finish(system, story)
    final = system.reports.publish(SLUG, editor, final=True)
    assert final.info is not None and final.info.version == 2 and final.content.final
    assert final.content.responses.completed == final.content.responses.received == 7
    assert [(e.what, e.version, e.final) for e in final.content.timeline] == [
        ("created", None, None), ("closed", None, None), ("published", 1, False),
    ]
    # A correction is as final as the version it corrects unless it says otherwise (a tester's went out as interim).
    corrected = system.reports.correct(SLUG, editor, "A figure", "It was wrong")
    assert corrected.info is not None and corrected.info.final and corrected.content.final
    assert not system.reports.correct(SLUG, editor, "Another", "Withdrawn in part", final=False).content.final
    final_again = system.reports.correct(SLUG, editor, "A third", "Final again", final=True)
    system.review.reopen(story.responses[6], editor, "one more look")
    with pytest.raises(NotReadyForFinal, match='Version 5 is final, and so is its correction unless it says "final": false. A final version cannot'):
        system.reports.correct(SLUG, editor, "A fourth", "Not final now")  # the user asked for no final version: say why it was one
    assert final_again.content.final


def test_a_consultation_past_its_closing_time_counts_as_closed(system: System, story: Story) -> None:
    review = system.review
    review.claim(story.responses[6], story.staff["reviewer"], LEASE)
    review.complete(story.responses[6], story.staff["reviewer"], Outcome.REVIEWED, "")
    system.consultations.move_closing_time(SLUG, datetime.now(UTC) - timedelta(seconds=1))
    built = system.reports.publish(SLUG, story.staff["editor"], final=True)
    assert built.content.final and built.content.consultation.open and built.content.consultation.closes_at


def test_an_interim_version_built_past_the_closing_time_says_the_consultation_was_closed(system: System, story: Story) -> None:
    """A closing time passing records no event: the page, not only the final rule, must read the time (a newcomer's)."""
    before = render.page(system.reports.publish(SLUG, story.staff["editor"], final=False)).decode()
    assert "the consultation was still open" in before and "Its figures may change." in before
    system.consultations.move_closing_time(SLUG, datetime.now(UTC) - timedelta(seconds=1))
    after = render.page(system.reports.publish(SLUG, story.staff["editor"], final=False)).decode()
    assert "the consultation was closed and" in after and "still open" not in after


def test_publishing_records_one_event_with_the_position_and_digest(system: System, story: Story) -> None:
    before = system.app.head()
    built = system.reports.publish(SLUG, story.staff["editor"], final=False)
    assert system.app.head() == before + 1
    *_, event = system.app.events.get(report_id(consultation_id(SLUG)))
    assert isinstance(event, Report.Published)
    assert (event.version, event.position, event.digest, event.builder, event.final) == (1, before, built.digest, BUILDER, False)
    assert event.quotes == {str(story.quote): built.content.quotes[0].sha256}
    assert built.digest == digest(built.content) and built.body == canonical(built.content)
    assert built.content.position == before and built.content.version == 1
    # The recipe the docs, the page and the open data's README give (an auditor's, with sorted keys, missed).
    doc = json.loads(built.body)
    for quote in doc["quotes"]:
        quote["text"] = None
        del quote["nonce"]
    assert hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest() == built.digest
    assert b'json.dumps(doc, separators=(",", ":"), ensure_ascii=False)' in render.data_zip(built)
    assert "set to null and its <code>nonce</code> removed" in render.page(built).decode()  # a newcomer's: the page said text only


def test_every_version_is_rebuilt_from_the_log_and_checked(system: System, story: Story) -> None:
    editor = story.staff["editor"]
    first = system.reports.publish(SLUG, editor, final=False)
    system.reports.write_section(SLUG, editor, "we-did", "We did", "We rewrote it all.")
    system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})])
    second = system.reports.correct(SLUG, editor, "The 'we did' section", "It was out of date", final=False)
    assert second.content.errata[0].erratum == "The 'we did' section" and second.content.errata[0].version == 2
    assert system.reports.version(SLUG, 1).body == first.body
    assert system.reports.version(SLUG, 2).body == second.body == system.reports.version(SLUG).body
    infos = system.reports.versions(SLUG)
    assert [(i.version, i.erratum, i.reason, i.withdrawn) for i in infos] == [
        (1, None, None, None), (2, "The 'we did' section", "It was out of date", None),
    ]
    assert infos[1].position > infos[0].position and infos[0].by == editor
    assert [e.what for e in second.content.timeline][-1] == "published"
    with pytest.raises(ReportNotFound, match="no version 3"):
        system.reports.version(SLUG, 3)
    with pytest.raises(ReportNotFound, match="no version 0"):
        system.reports.version(SLUG, 0)


def test_no_version_yet(system: System, story: Story) -> None:
    assert system.reports.versions(SLUG) == []
    with pytest.raises(ReportNotFound, match="published yet"):
        system.reports.version(SLUG)
    with pytest.raises(ReportNotFound, match="published yet"):
        system.reports.verify(SLUG)
    with pytest.raises(ReportConflict, match="nothing to correct"):
        system.reports.correct(SLUG, story.staff["editor"], "what", "why", final=False)
    with pytest.raises(ReportNotFound):
        system.reports.withdraw(SLUG, story.staff["editor"], "why")


def test_corrections_need_what_and_why_and_record_nothing_otherwise(system: System, story: Story) -> None:
    system.reports.publish(SLUG, story.staff["editor"], final=False)
    head = system.app.head()
    with pytest.raises(InvalidInput) as refused:
        system.reports.correct(SLUG, story.staff["editor"], "", " ", final=False)
    assert {e.field for e in refused.value.errors} == {"erratum", "reason"}
    assert system.app.head() == head


def test_withdrawn_versions_stay_listed_with_the_reason(system: System, story: Story) -> None:
    editor = story.staff["editor"]
    system.reports.publish(SLUG, editor, final=False)
    system.reports.publish(SLUG, editor, final=False)
    position = system.reports.withdraw(SLUG, editor, "Published by mistake", version=1)
    assert position == system.app.head()
    with pytest.raises(ReportConflict):
        system.reports.withdraw(SLUG, editor, "again", version=1)
    with pytest.raises(ReportNotFound):
        system.reports.withdraw(SLUG, editor, "why", version=7)
    first, second = system.reports.versions(SLUG)
    assert first.withdrawn is not None and first.withdrawn.reason == "Published by mistake" and first.withdrawn.by == editor
    assert second.withdrawn is None
    assert system.reports.version(SLUG, 1).info.withdrawn is not None  # still readable, marked
    third = system.reports.publish(SLUG, editor, final=False)
    assert [e.what for e in third.content.timeline][-3:] == ["published", "published", "withdrawn"]


def test_only_candidate_quotes_of_responses_not_excluded_can_be_selected(system: System, story: Story) -> None:
    editor = story.staff["editor"]
    reports = system.reports
    head = system.app.head()
    for quote in (
        QuoteRef(story.quote.response_id, "works_well", 12, 20),  # not the span marked
        QuoteRef(story.quote.response_id, "missing_or_unclear", 12, len("x")),  # not the question
        QuoteRef(story.responses[1], "works_well", 0, 3),  # a response nobody quoted
        QuoteRef(uuid4(), "works_well", 12, 49),  # no such response
    ):
        with pytest.raises(QuoteNotCandidate, match="choose one of the candidate quotes"):
            reports.select_quote(SLUG, editor, quote)
    assert system.app.head() == head
    # A quote marked on a response that was then excluded.
    spam = story.responses[3]
    system.review.reopen(spam, editor, "quote it")
    system.review.claim(spam, story.staff["reviewer"], LEASE)
    system.review.mark_quote(spam, story.staff["reviewer"], "works_well", 0, 3)
    system.review.complete(spam, story.staff["reviewer"], Outcome.EXCLUDED, "spam")
    with pytest.raises(QuoteNotCandidate, match="excluded"):
        reports.select_quote(SLUG, editor, QuoteRef(spam, "works_well", 0, 3))
    # A quote of another consultation's response.
    definition = system.consultations.get(SLUG).definition
    system.consultations.load(msgspec.structs.replace(definition, slug="another-one"))
    (other,) = system.consultations.submit_batch([Submission("another-one", {"familiarity": "read", "works_well": "Elsewhere."})])
    system.review.claim(other.id, story.staff["reviewer"], LEASE)
    system.review.mark_quote(other.id, story.staff["reviewer"], "works_well", 0, 9)
    with pytest.raises(QuoteNotCandidate):
        reports.select_quote(SLUG, editor, QuoteRef(other.id, "works_well", 0, 9))
    assert reports.select_quote("another-one", editor, QuoteRef(other.id, "works_well", 0, 9)) is not None
    # Unselecting: only what is selected.
    with pytest.raises(QuoteNotCandidate, match="not selected"):
        reports.unselect_quote(SLUG, editor, QuoteRef(story.responses[1], "works_well", 0, 3))
    assert reports.unselect_quote(SLUG, editor, story.quote) is not None
    assert reports.preview(SLUG, editor).content.quotes == []


def test_a_quote_of_a_response_flagged_as_holding_personal_data_is_neither_selected_nor_published(system: System, story: Story) -> None:
    """A tester's reviewer flagged an email in an answer and kept it unredacted; the editor selected the
    quote, with nothing to warn them, and the report published the email."""
    editor, reviewer, review, reports = story.staff["editor"], story.staff["reviewer"], system.review, system.reports
    response = story.quote.response_id
    review.reopen(response, editor, "it names someone")
    review.claim(response, reviewer, LEASE)
    review.flag(response, reviewer, Flag.PERSONAL_DATA, "a name")
    review.flag(response, reviewer, Flag.ABUSIVE, "rude too")
    review.complete(response, reviewer, Outcome.REVIEWED, "")
    built = reports.publish(SLUG, editor, final=False)  # selected before the flag: left out now
    assert built.content.quotes == [] and b"AI rules are clear" not in built.body
    assert built.info is not None and reports.provenance(SLUG, editor, version=built.info.version).quotes == []  # as published
    earlier = build(system.app, system.texts, consultation_id(SLUG), built.content.position, 1, False, builder="agora-report/3")
    assert [q.response_id for q in earlier.quotes] == [response]  # versions built by earlier rules rebuild as they were
    reports.unselect_quote(SLUG, editor, story.quote)
    (candidate,) = reports.candidates(SLUG, editor)
    assert candidate.personal_data and not candidate.selected
    assert candidate.flags == [Flag.ABUSIVE, Flag.PERSONAL_DATA]  # every flag, for the editor to weigh (a tester's abusive one was not shown)
    head = system.app.head()
    with pytest.raises(QuoteNotCandidate, match="flagged as holding personal data: redact it and remove the flag"):
        reports.select_quote(SLUG, editor, story.quote)
    assert system.app.head() == head
    review.reopen(response, editor, "redacted: the flag can go")
    review.claim(response, reviewer, LEASE)
    review.unflag(response, reviewer, Flag.PERSONAL_DATA, "nothing personal left")
    assert reports.select_quote(SLUG, editor, story.quote) is not None
    assert [q.response_id for q in reports.preview(SLUG, editor).content.quotes] == [response]


def test_a_quote_holding_a_bidirectional_override_shows_it_written_out_on_the_page(system: System, story: Story) -> None:
    """Left in, U+202E made a tester's quote read backwards on the public page; the JSON keeps the words as written."""
    editor, reviewer = story.staff["editor"], story.staff["reviewer"]
    (response,) = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read", "works_well": "Fine \u202eliveht\u202c rules."})])
    system.review.claim(response.id, reviewer, LEASE)
    system.review.mark_quote(response.id, reviewer, "works_well", 0, 20)
    system.review.complete(response.id, reviewer, Outcome.REVIEWED, "")
    system.reports.select_quote(SLUG, editor, QuoteRef(response.id, "works_well", 0, 20))
    built = system.reports.publish(SLUG, editor, final=False)
    assert "Fine \u202eliveht\u202c rules." in [q.text for q in built.content.quotes]
    page = render.page(built).decode()
    assert "Fine [U+202E]liveht[U+202C] rules." in page and "\u202e" not in page


def test_an_editors_words_are_published_as_free_text_with_overrides_written_out_on_the_page(system: System, story: Story) -> None:
    """A tester's erratum and reason kept a NUL and an escape sequence, and U+202E reversed them on the page."""
    editor = story.staff["editor"]
    system.reports.publish(SLUG, editor, final=False)
    built = system.reports.correct(SLUG, editor, "The \u202ecount\u202c\x00 was wrong", "A typo\x1b[2J", final=False)
    assert (built.info.erratum, built.info.reason) == ("The \u202ecount\u202c was wrong", "A typo[2J")
    assert [(e.erratum, e.reason) for e in built.content.errata] == [(built.info.erratum, built.info.reason)]  # as the digest covers them
    page = render.page(built).decode()
    assert "The [U+202E]count[U+202C] was wrong" in page and "\u202e" not in page
    system.reports.withdraw(SLUG, editor, "Wrong \u202eway\x00", version=2)
    version = system.reports.versions(SLUG)[1]
    assert version.withdrawn.reason == "Wrong \u202eway"
    withdrawn = render.withdrawn_page("The report", SLUG, version).decode()
    assert "Wrong [U+202E]way" in withdrawn and "\u202e" not in withdrawn


def test_candidates_read_as_their_answers_do_now(system: System, story: Story) -> None:
    candidates = system.reports.candidates(SLUG, story.staff["auditor"])
    (candidate,) = candidates
    assert candidate.quote == story.quote and candidate.selected and not candidate.excluded
    assert candidate.text == "says the AI rules are clear and fair." and candidate.marked_by == story.staff["reviewer"]
    assert "Alice" not in msgspec.json.encode(candidates).decode()


def test_provenance_names_the_responses_and_steps_behind_quotes_and_themes(system: System, story: Story) -> None:
    built = system.reports.publish(SLUG, story.staff["editor"], final=False)
    provenance = system.reports.provenance(SLUG, story.staff["auditor"], version=1)
    assert provenance.position == built.content.position
    (quote,) = provenance.quotes
    assert quote.ref == str(story.quote) and quote.response_id == story.quote.response_id
    whats = [s.what for s in quote.steps]
    assert whats == ["quote-marked", "completed", "quote-selected", "reopened", "redacted", "completed"]
    assert {s.by for s in quote.steps} == {story.staff["reviewer"], story.staff["editor"]}
    assert [s.position for s in quote.steps] == sorted(s.position for s in quote.steps)
    themes = {t.theme_id: t for t in provenance.themes}
    assert set(themes["ai_use"].responses) == {story.responses[0], story.responses[1]}  # not the excluded one
    assert len(themes["ai_use"].responses) == next(t.responses for t in built.content.themes.themes if t.id == "ai_use")
    assert [s.what for s in themes["ai_use"].steps if s.response_id == story.responses[1]] == ["tagged", "completed"]
    assert [s.what for s in themes["consent"].steps] == []  # tagged then untagged: no response behind it
    earlier = system.reports.provenance(SLUG, story.staff["auditor"], position=story.marked_at)
    assert [s.what for s in earlier.quotes[0].steps] == ["quote-marked", "completed", "quote-selected"]


def test_verify_says_ok_for_an_untouched_log(system: System, story: Story) -> None:
    built = system.reports.publish(SLUG, story.staff["editor"], final=False)
    result = system.reports.verify(SLUG)
    assert result.ok and result.difference is None and result.recorded == result.rebuilt and result.erased == []
    assert system.reports.verify(SLUG, against=built.body).ok


def test_verify_against_a_document_someone_holds_says_whether_it_is_the_one_published(system: System, story: Story) -> None:
    """An auditor's copy with a figure changed verified ok: the copy was only read when the log's rebuild failed."""
    built = system.reports.publish(SLUG, story.staff["editor"], final=False)
    (quote,) = built.content.quotes
    counted = built.content.responses.counted
    figure, text = json.loads(built.body), json.loads(built.body)
    figure["responses"]["counted"] += 1
    text["quotes"][0]["text"] = "says nothing of the kind."
    for copy, expected in (
        (figure, f"responses.counted: {counted + 1} != {counted}"),
        (text, f"the text of quote {quote.ref} is not the text published"),
    ):
        result = system.reports.verify(SLUG, against=json.dumps(copy).encode())
        assert not result.ok and result.recorded == result.rebuilt  # the log is fine: the copy is not
        assert result.difference is not None and expected in result.difference, result.difference
    assert "not a report" in (system.reports.verify(SLUG, against=b'{"not": "a report"}').difference or "")
    # A forged text read first by a reader, the genuine one last (msgspec keeps the last of a key given twice).
    twice = built.body.replace(b'"text":', b'"text":"FORGED","text":', 1)
    assert "a key twice" in (system.reports.verify(SLUG, against=twice).difference or "")
    assert system.reports.verify(SLUG, against=built.body).ok


def tamper(system: System, position: int, change: tuple[bytes, bytes]) -> None:
    """Alter one stored event's payload in place, as someone with access to the database might."""
    (n,) = system.app.recorder.select_notifications(start=position, limit=1)
    state = n.state.replace(*change)
    assert state != n.state
    recorder: Any = system.app.recorder
    if system.texts.sqlite:
        table, p, originator = recorder.events_table_name, "?", n.originator_id.hex
    else:
        table, p, originator = f"{recorder.datastore.schema}.{recorder.events_table_name}", "%s", n.originator_id
    with system.texts.datastore.transaction(commit=True) as c:
        c.execute(f"UPDATE {table} SET state = {p} WHERE originator_id = {p} AND originator_version = {p}", (state, originator, n.originator_version))


def test_verify_finds_an_altered_event_and_with_the_published_bytes_says_where(system: System, story: Story) -> None:
    built = system.reports.publish(SLUG, story.staff["editor"], final=False)
    submitted = story.responses[2]
    position = next(
        n.id for n in system.app.recorder.select_notifications(start=1, limit=1000) if n.originator_id == submitted
    )
    tamper(system, position, (b'"know_well"', b'"not_aware"'))
    result = system.reports.verify(SLUG)
    assert not result.ok and result.recorded == built.digest != result.rebuilt
    assert "altered" in (result.difference or "")
    located = system.reports.verify(SLUG, against=built.body)
    assert located.difference == "questions[0].options[0].received: 2 != 3"
    with pytest.raises(ReportMismatch):
        system.reports.version(SLUG, 1)
    wrong = system.reports.verify(SLUG, against=b'{"not": "a report"}')
    assert "not a report" in (wrong.difference or "")


def test_a_quote_shredded_after_publication_verifies_as_erased_not_as_tampering(system: System, story: Story) -> None:
    published = system.reports.publish(SLUG, story.staff["editor"], final=False)
    quoted = published.content.quotes[0]
    assert quoted.text is not None and quoted.nonce is not None  # the opening, published while the text may be read
    assert quoted.sha256 == hashlib.sha256(bytes.fromhex(quoted.nonce) + quoted.text.encode()).hexdigest()
    # The name is redacted again and the earlier versions shredded: the text version 1 quoted is gone.
    rid = story.quote.response_id
    system.review.reopen(rid, story.staff["editor"], "shred")
    system.review.claim(rid, story.staff["reviewer"], LEASE)
    system.review.redact(rid, story.staff["reviewer"], "works_well", 0, len("[redacted]"), "again")  # the marker whole
    system.review.shred_originals(rid, story.staff["admin"], "works_well")
    rebuilt = system.reports.version(SLUG, 1)
    assert rebuilt.digest == published.digest and rebuilt.content.quotes[0].text is None
    assert rebuilt.content.quotes[0].sha256 == published.content.quotes[0].sha256
    assert b"clear and fair" not in rebuilt.body and rebuilt.content.quotes[0].nonce is None
    # An attacker's right guess at the erased words no longer matches the hash (a tester's: a plain SHA-256 gave
    # back a redacted phone number); the nonce that would is gone with the key.
    assert hashlib.sha256(quoted.text.encode()).hexdigest() != rebuilt.content.quotes[0].sha256
    result = system.reports.verify(SLUG, version=1)
    assert result.ok and result.erased == [str(story.quote)]


def test_a_version_built_by_earlier_rules_keeps_its_unsalted_hashes(system: System, story: Story) -> None:
    content = build(system.app, system.texts, consultation_id(SLUG), system.app.head(), 1, False, builder="agora-report/5")
    (quote,) = content.quotes
    assert content.format == 2 and quote.nonce is None and b'"nonce"' not in canonical(content)
    assert quote.text is not None and quote.sha256 == hashlib.sha256(quote.text.encode()).hexdigest()


def test_a_text_key_gone_without_a_recorded_shredding_is_a_difference(system: System, story: Story) -> None:
    system.reports.publish(SLUG, story.staff["editor"], final=False)
    case_events = [e for e in system.review.history(story.quote.response_id) if type(e).__name__ == "Redacted"]
    system.texts.destroy([case_events[-1].sealed.key_id])  # outside Agora's rules: no event says so
    result = system.reports.verify(SLUG)
    assert not result.ok and result.erased == []
    assert "no shredding of its key is recorded" in (result.difference or "")


def test_a_reverted_redaction_and_an_unmarked_quote_are_what_the_report_then_shows(system: System, story: Story) -> None:
    """Reviewers' undo reaches the report: the answer reads as before the redaction, an unmarked quote is no candidate."""
    editor, reviewer, review = story.staff["editor"], story.staff["reviewer"], system.review
    case = story.quote.response_id
    review.reopen(case, editor, "the name may stay")
    review.claim(case, reviewer, LEASE)
    review.revert_redaction(case, reviewer, "works_well", "the name may stay")
    original = review.answers(case)["works_well"]
    assert isinstance(original, str) and "[redacted]" not in original
    review.mark_quote(case, reviewer, "works_well", 0, 11)  # the name, which reads again
    texts = {c.quote.start: c.text for c in system.reports.candidates(SLUG, editor)}
    assert texts == {story.quote.start: original[story.quote.start : story.quote.end], 0: original[:11]}
    review.unmark_quote(case, reviewer, "works_well", 0, 11, "a name is no quote")
    review.unmark_quote(case, reviewer, "works_well", story.quote.start, story.quote.end, "not representative")
    assert system.reports.candidates(SLUG, editor) == []
    assert system.reports.preview(SLUG, editor).content.quotes == []
    with pytest.raises(QuoteNotCandidate):
        system.reports.select_quote(SLUG, editor, story.quote)


def test_removing_a_section_that_is_not_there_records_nothing_not_even_a_draft(system: System, story: Story) -> None:
    """A tester's DELETE of a missing section answered 200 and recorded the report's draft."""
    editor, head = story.staff["editor"], system.app.head()
    assert system.reports.remove_section(SLUG, editor, "nothing") is None
    assert system.app.head() == head
    system.reports.write_section(SLUG, editor, "annex", "Annex", "Method.")
    assert system.reports.remove_section(SLUG, editor, "annex") == system.app.head()
    assert "annex" not in [s.key for s in system.reports.preview(SLUG, editor).content.sections]
