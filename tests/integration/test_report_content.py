"""The report's content: a pure fold over the log up to a position, on SQLite and PostgreSQL.

`scenario` records a small consultation's life (responses, reviews with tags, flags, exclusions,
a quote and a redaction, signups, sections); the tests check each figure the report states, that a
position always gives the same bytes (later events, the other store), and what the fold refuses to show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from domain.consultations.consultation import Theme, consultation_id
from domain.consultations.service import Submission
from domain.reports.report import QuoteRef
from domain.review.case import Flag, Outcome, span_after
from domain.signups.signup import Purpose
from projections.state import replay
from projections.stats import StatsProjection, stats_key, tally
from reports.content import BUILDER, build, canonical, digest, first_difference
from runtime import System
from runtime.settings import Settings
from tests.conftest import POSTGRES, SLUG, enrol_everyone

LEASE = timedelta(minutes=5)
BEFORE_SESSIONS = datetime(2026, 5, 1, tzinfo=UTC)
QUOTED = "Alice Smith says the AI rules are clear and fair."


class Story(msgspec.Struct):
    """What `scenario` recorded, for the tests to check against."""

    staff: dict[str, UUID]
    responses: list[UUID]
    quote: QuoteRef
    marked_at: int  # position after marking the quote and selecting it
    redacted_at: int  # position after the redaction


def review(
    system: System, response_id: UUID, by: UUID, outcome: Outcome, tags: tuple[str, ...] = (), flags: tuple[Flag, ...] = (),
    duplicate_of: UUID | None = None,
) -> None:
    system.review.claim(response_id, by, LEASE)
    for tag in tags:
        system.review.tag(response_id, by, tag)
    for flag in flags:
        system.review.flag(response_id, by, flag, "a reason", duplicate_of if flag is Flag.DUPLICATE else None)
    system.review.complete(response_id, by, outcome, "" if outcome is Outcome.REVIEWED else "excluded for a reason")


def scenario(system: System) -> Story:
    """Seven responses: three reviewed (tagged), three excluded (spam; abusive and duplicate; no flag), one left."""
    staff = enrol_everyone(system)
    answers = [
        {"familiarity": "read", "works_well": QUOTED, "join_session": True},
        {"familiarity": "read", "works_well": "Clear.", "join_session": False},
        {"familiarity": "know_well", "join_session": True},
        {"familiarity": "not_aware", "works_well": "Buy cheap watches"},  # spam
        {"familiarity": "not_aware", "join_session": False},  # abusive and a duplicate
        {"familiarity": "read"},  # excluded, no flag
        {"familiarity": "aware_not_read", "join_session": True},  # left unreviewed
    ]
    receipts = system.consultations.submit_batch([Submission(SLUG, a) for a in answers])
    ids = [r.id for r in receipts]  # type: ignore[union-attr]
    reviewer = staff["reviewer"]
    system.review.claim(ids[0], reviewer, LEASE)
    system.review.tag(ids[0], reviewer, "ai_use")
    system.review.tag(ids[0], reviewer, "consent")
    system.review.untag(ids[0], reviewer, "consent")
    system.review.mark_quote(ids[0], reviewer, "works_well", 12, len(QUOTED))  # "says the AI rules are clear and fair."
    system.review.complete(ids[0], reviewer, Outcome.REVIEWED, "")
    review(system, ids[1], reviewer, Outcome.REVIEWED, tags=("ai_use", "cultural_context"))
    review(system, ids[2], reviewer, Outcome.REVIEWED, tags=("cultural_context",))
    review(system, ids[3], reviewer, Outcome.EXCLUDED, flags=(Flag.SPAM,))
    review(system, ids[4], reviewer, Outcome.EXCLUDED, tags=("ai_use",), flags=(Flag.ABUSIVE, Flag.DUPLICATE), duplicate_of=ids[1])
    review(system, ids[5], reviewer, Outcome.EXCLUDED)
    quote = QuoteRef(ids[0], "works_well", 12, len(QUOTED))
    system.reports.write_section(SLUG, staff["editor"], "we-did", "We did", "We rewrote the AI section.")
    system.reports.write_section(SLUG, staff["editor"], "annex", "Annex", "Method.")
    system.reports.write_section(SLUG, staff["editor"], "we-asked", "We asked", "Seven questions.")
    system.reports.select_quote(SLUG, staff["editor"], quote)
    marked_at = system.app.head()
    # The answer is redacted after the quote was selected: the name goes, the quote moves with the text.
    system.review.reopen(ids[0], staff["editor"], "a name to redact")
    system.review.claim(ids[0], reviewer, LEASE)
    system.review.redact(ids[0], reviewer, "works_well", 0, 11, "a name")
    system.review.complete(ids[0], reviewer, Outcome.REVIEWED, "")
    redacted_at = system.app.head()
    for n, session in enumerate(["session_1300", "session_1300", "session_1800"]):
        signup = system.signups.request(SLUG, session, f"P{n}", f"p{n}@example.org", True, now=BEFORE_SESSIONS)
        system.signups.confirm(signup, system.signups.links.token(Purpose.CONFIRM, signup, 1), now=BEFORE_SESSIONS)
    pending = system.signups.request(SLUG, "session_1800", "Q", "q@example.org", True, now=BEFORE_SESSIONS)
    assert pending
    return Story(staff, ids, quote, marked_at, redacted_at)


def content_at(system: System, position: int, version: int = 1, final: bool = False) -> Any:
    return build(system.app, system.texts, consultation_id(SLUG), position, version, final)


def test_every_figure_of_the_report(system: System) -> None:
    story = scenario(system)
    content = content_at(system, system.app.head())
    assert content.builder == BUILDER and content.position == system.app.head() and not content.final
    assert content.consultation.slug == SLUG and content.consultation.open
    r = content.responses
    assert (r.received, r.completed, r.counted, r.excluded.total) == (7, 6, 4, 3)
    assert r.excluded.by_reason == {"spam": 1, "abusive": 1, "off_topic": 0, "duplicate": 1, "other": 1}
    questions = {q.id: {o.id: (o.received, o.counted) for o in q.options} for q in content.questions}
    assert questions == {
        "familiarity": {"not_aware": (2, 0), "aware_not_read": (1, 1), "read": (3, 2), "know_well": (1, 1)},
        "join_session": {"true": (3, 3), "false": (2, 1)},
    }
    labels = {q.id: [o.label for o in q.options] for q in content.questions}
    assert labels["join_session"] == ["Yes", "No"] and labels["familiarity"][0] == "I didn't know there was one"
    themes = {t.id: t.responses for t in content.themes.themes}
    # Reviewed responses only: the excluded one's tag does not count; an untagged theme is gone.
    assert themes["ai_use"] == 2 and themes["cultural_context"] == 2 and themes["consent"] == 0
    assert content.themes.frame_version == 1
    assert {s.id: s.confirmed for s in content.sessions} == {"session_1300": 2, "session_1800": 1}
    assert [s.key for s in content.sections] == ["we-asked", "we-did", "annex"]
    (quote,) = content.quotes
    assert quote.ref == str(story.quote) and quote.text == "says the AI rules are clear and fair."
    assert quote.question == "Having read the draft, what works well in the draft?"
    assert [e.what for e in content.timeline] == ["created"]


def test_a_quote_reads_as_its_answer_did_at_the_position(system: System) -> None:
    story = scenario(system)
    before = content_at(system, story.marked_at)
    after = content_at(system, story.redacted_at)
    assert before.quotes[0].text == "says the AI rules are clear and fair."
    assert after.quotes[0].text == "says the AI rules are clear and fair."  # the name before it went, the span moved
    # A redaction inside the quoted span shows in it.
    system.review.reopen(story.responses[0], story.staff["editor"], "more")
    system.review.claim(story.responses[0], story.staff["reviewer"], LEASE)
    answer = system.review.answers(story.responses[0])["works_well"]
    assert answer == "[redacted] says the AI rules are clear and fair."
    system.review.redact(story.responses[0], story.staff["reviewer"], "works_well", answer.index("AI"), answer.index("AI") + 2, "why not")
    assert content_at(system, system.app.head()).quotes[0].text == "says the [redacted] rules are clear and fair."
    # The earlier positions still read as they did.
    assert canonical(content_at(system, story.redacted_at)) == canonical(after)


def test_a_quote_whose_response_is_excluded_later_drops_out(system: System) -> None:
    story = scenario(system)
    system.review.reopen(story.responses[0], story.staff["editor"], "it is spam after all")
    system.review.claim(story.responses[0], story.staff["reviewer"], LEASE)
    system.review.complete(story.responses[0], story.staff["reviewer"], Outcome.EXCLUDED, "spam")
    content = content_at(system, system.app.head())
    assert content.quotes == []
    assert QUOTED[12:] not in canonical(content).decode()
    assert content.responses.excluded.by_reason["other"] == 2


def test_the_frame_as_it_stood_retired_themes_still_count(system: System) -> None:
    story = scenario(system)
    at = system.app.head()
    editor = story.staff["editor"]
    system.review.revise_theme(SLUG, Theme("ai_use", "Artificial intelligence"), editor)
    system.review.retire_theme(SLUG, "ai_use", editor)
    system.review.add_theme(SLUG, Theme("new_one", "New"), editor)
    old, new = content_at(system, at), content_at(system, system.app.head())
    ai = lambda c: next(t for t in c.themes.themes if t.id == "ai_use")  # noqa: E731
    assert (ai(old).label, ai(old).retired, ai(old).responses) == ("AI use", False, 2)
    assert (ai(new).label, ai(new).retired, ai(new).responses) == ("Artificial intelligence", True, 2)
    assert (old.themes.frame_version, new.themes.frame_version) == (1, 4)
    assert "new_one" not in {t.id for t in old.themes.themes} and "new_one" in {t.id for t in new.themes.themes}


def test_a_position_gives_the_same_bytes_whatever_happens_after(system: System) -> None:
    story = scenario(system)
    at = system.app.head()
    first = canonical(content_at(system, at))
    assert canonical(content_at(system, at)) == first
    more = system.consultations.submit_batch([Submission(SLUG, {"familiarity": "read"})] * 3)
    system.review.claim(story.responses[6], story.staff["reviewer"], LEASE)
    system.consultations.close(SLUG)
    assert canonical(content_at(system, at)) == first
    later = content_at(system, system.app.head())
    assert later.responses.received == 7 + len(more) and not later.consultation.open
    assert [e.what for e in later.timeline] == ["created", "closed"]
    assert first_difference(first, canonical(later)) == "consultation.open: true != false"
    assert first_difference(first, first) is None


def test_only_the_consultations_own_events_count(system: System) -> None:
    scenario(system)
    definition = system.consultations.get(SLUG).definition
    other = msgspec.structs.replace(definition, slug="another-one", themes=())
    system.consultations.load(other)
    system.consultations.submit_batch([Submission("another-one", {"familiarity": "read"})] * 4)
    content = content_at(system, system.app.head())
    assert content.responses.received == 7
    elsewhere = build(system.app, system.texts, consultation_id("another-one"), system.app.head(), 1, False)
    assert elsewhere.responses.received == 4 and elsewhere.quotes == [] and elsewhere.sections == []


def test_a_position_before_the_consultation_existed_is_refused(system: System) -> None:
    with pytest.raises(ValueError, match="not in the log"):
        content_at(system, 0)


def test_spans_move_with_a_redaction() -> None:
    n = len("[redacted]")
    assert span_after(0, 5, 10, 15) == (0, 5)  # before
    assert span_after(20, 25, 10, 15) == (20 + n - 5, 25 + n - 5)  # after
    assert span_after(5, 12, 10, 15) == (5, 10 + n)  # overlapping its start: grows to the whole marker
    assert span_after(12, 20, 10, 15) == (10, 20 + n - 5)  # overlapping its end
    assert span_after(11, 13, 10, 15) == (10, 10 + n)  # inside it
    assert span_after(10, 15, 10, 15) == (10, 10 + n)
    assert span_after(0, 10, 10, 15) == (0, 10)  # touching, before
    assert span_after(15, 18, 10, 15) == (10 + n, 13 + n)  # touching, after


# The same log on SQLite and PostgreSQL gives the same bytes.


@pytest.fixture
def both(tmp_path: Path, settings: Settings) -> Iterator[tuple[System, System]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sqlite_env = {"PERSISTENCE_MODULE": "store.sqlite", "SQLITE_DBNAME": str(tmp_path / "copy.sqlite")}
    postgres_env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema,
    }
    try:
        with System(settings, sqlite_env) as lite, System(settings, postgres_env) as pg:
            yield lite, pg
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def copy_store(source: System, target: System) -> None:
    """Every event, in the same order (so at the same positions), and every text key."""
    notifications = source.app.recorder.select_notifications(start=1, limit=1_000_000)
    target.app.recorder.insert_events([
        StoredEvent(n.originator_id, n.originator_version, n.topic, n.state) for n in notifications
    ])
    with source.texts.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT key_id, key FROM {source.texts.table}")
        keys = [(r["key_id"], bytes(r["key"])) for r in c.fetchall()]
    with target.texts.datastore.transaction(commit=True) as c:
        c.executemany(f"INSERT INTO {target.texts.table} (key_id, key) VALUES ({target.texts.p}, {target.texts.p})", keys)


def test_the_same_position_gives_the_same_bytes_on_sqlite_and_postgresql(both: tuple[System, System], seed: Any) -> None:
    lite, pg = both
    lite.consultations.load(seed)
    story = scenario(lite)
    copy_store(lite, pg)
    assert pg.app.head() == lite.app.head()
    for position in (story.marked_at, story.redacted_at, lite.app.head()):
        on_sqlite, on_postgres = content_at(lite, position, 3, True), content_at(pg, position, 3, True)
        assert canonical(on_sqlite) == canonical(on_postgres)
        assert digest(on_sqlite) == digest(on_postgres)
    assert content_at(pg, pg.app.head()).quotes[0].text == "says the AI rules are clear and fair."


def test_received_counts_are_the_public_statistics_at_the_same_position(system: System) -> None:
    """The report gathers counts by distinct answers; the live statistics' fold, replayed, agrees."""
    story = scenario(system)
    system.consultations.submit_batch([Submission(SLUG, {"familiarity": "know_well", "join_session": False})] * 2)
    definition = system.consultations.get(SLUG).definition
    for position in (story.marked_at, system.app.head()):
        stats = tally(definition, replay(system.app, StatsProjection, position).hgetall(stats_key(consultation_id(SLUG))), position)
        content = content_at(system, position)
        assert content.responses.received == stats.responses
        assert {q.id: {o.id: o.received for o in q.options} for q in content.questions} == stats.answers
