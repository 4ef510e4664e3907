"""The projections' folds into memory: events in, plain state out, no Redis."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic

from domain.consultations.consultation import Consultation, Definition, Kind, Option, Question, Session
from domain.consultations.response import Response
from domain.review.case import Flag, Outcome, ReviewCase
from domain.signups.signup import Seats
from projections.form import FormProjection, decode_form, form_key
from projections.queue import PROGRESS, Query, QueueProjection, case_key, item, progress, state_key
from projections.state import POSITION, Fold, Memory
from projections.stats import StatsProjection, counted_key, stats_key, tally

APP = "Agora"
NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
LEASE = timedelta(minutes=30)
ANA, BEN = uuid4(), uuid4()
DEFINITION = Definition(
    slug="folds",
    title="Folds",
    introduction="",
    questions=(
        Question("colour", Kind.SINGLE_CHOICE, "Colour?", options=(Option("red", "Red"), Option("blue", "Blue"), Option("green", "Green"))),
        Question("agree", Kind.YES_NO, "Agree?"),
        Question("why", Kind.LONG_TEXT, "Why?", max_length=100),
    ),
    sessions=(Session("morning", "Morning", NOW + timedelta(days=7), 60, "en", "Room 1", capacity=2),),
    closes_at=NOW + timedelta(days=30),
)


class Log:
    """Events in the order a log would hold them, folded into memory as a follower would, one position each."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def record(self, *aggregates: Aggregate) -> None:
        for a in aggregates:
            self.events.extend(a.collect_events())

    def fold(self, projection_class: type[Fold], upto: int | None = None) -> Memory:
        memory = Memory()
        handlers = projection_class(memory).handlers()  # by topic, as a follower calls them
        for position, e in enumerate(self.events[:upto], start=1):
            handle = handlers.get(get_topic(type(e)))
            if handle is not None:
                handle(e, Tracking(APP, position))
            else:
                memory.insert_tracking(Tracking(APP, position))
        return memory


def consultation(log: Log) -> Consultation:
    c = Consultation(DEFINITION)
    log.record(c)
    return c


def respond(log: Log, c: Consultation, **answers: Any) -> Response:
    r = Response(c.id, 1, answers, {}, "receipt")
    log.record(r)
    return r


# Stats


def test_stats_count_each_option_of_each_counted_question_and_nothing_else() -> None:
    log = Log()
    c = consultation(log)
    respond(log, c, colour="red", agree=True)
    respond(log, c, colour="red", agree=False)
    respond(log, c, colour="blue")
    respond(log, c, agree=True)
    memory = log.fold(StatsProjection)
    assert memory.members(counted_key(c.id)) == {"colour", "agree"}
    stats = tally(DEFINITION, memory.hgetall(stats_key(c.id)), memory.position(APP))
    assert stats.responses == 4
    assert stats.answers == {"colour": {"red": 2, "blue": 1, "green": 0}, "agree": {"true": 2, "false": 1}}
    assert stats.position == 5


def test_stats_at_an_earlier_position_count_only_what_came_before() -> None:
    log = Log()
    c = consultation(log)
    for colour in ("red", "blue", "blue"):
        respond(log, c, colour=colour)
    memory = log.fold(StatsProjection, upto=3)
    stats = tally(DEFINITION, memory.hgetall(stats_key(c.id)), memory.position(APP))
    assert (stats.responses, stats.answers["colour"], stats.position) == (2, {"red": 1, "blue": 1, "green": 0}, 3)


def test_stats_of_a_consultation_nobody_answered_are_zero() -> None:
    log = Log()
    c = consultation(log)
    memory = log.fold(StatsProjection)
    assert tally(DEFINITION, memory.hgetall(stats_key(c.id)), 1).answers["agree"] == {"true": 0, "false": 0}


# The form


def test_form_seats_taken_and_freed() -> None:
    log = Log()
    c = consultation(log)
    seats = Seats(c.id, "morning")
    first, second = uuid4(), uuid4()
    seats.take(first, 2)
    seats.take(second, 2)
    seats.free(first)
    log.record(seats)
    form = decode_form(log.fold(FormProjection).hgetall(form_key(c.id)))
    assert form is not None
    assert form.taken == {"morning": 1}
    assert form.seats_left(DEFINITION.sessions[0]) == 1


def test_form_follows_opening_closing_and_changes() -> None:
    log = Log()
    c = consultation(log)
    c.close()
    c.move_closing_time(None)
    c.set_draft_url("https://example.org/draft")
    log.record(c)
    memory = log.fold(FormProjection)
    form = decode_form(memory.hgetall(form_key(c.id)))
    assert form is not None and form.definition == DEFINITION
    assert (form.is_open, form.closes_at, form.draft_url) == (False, None, "https://example.org/draft")
    assert not form.accepts_responses(NOW)
    c.open()
    log.record(c)
    reopened = decode_form(log.fold(FormProjection).hgetall(form_key(c.id)))
    assert reopened is not None and reopened.accepts_responses(NOW)
    # Point in time: before the closing, it stood open with its first closing time.
    before = decode_form(log.fold(FormProjection, upto=1).hgetall(form_key(c.id)))
    assert before is not None and (before.is_open, before.closes_at) == (True, DEFINITION.closes_at)


def test_no_form_for_an_unknown_consultation() -> None:
    assert decode_form(Memory().hgetall(form_key(uuid4()))) is None


# The review queue


def reviewed(log: Log, count: int) -> list[tuple[Response, ReviewCase]]:
    c = consultation(log)
    return [(r, ReviewCase(r.id)) for r in (respond(log, c, colour="red") for _ in range(count))]


def test_a_reopened_case_leaves_the_reviewed_count() -> None:
    log = Log()
    (first, a), (second, b) = reviewed(log, 2)
    for case in (a, b):
        case.claim(ANA, NOW, LEASE)
    a.complete(ANA, Outcome.REVIEWED, "", NOW)
    b.complete(ANA, Outcome.EXCLUDED, "spam", NOW)
    log.record(a, b)
    memory = log.fold(QueueProjection)
    assert progress(memory.hgetall(PROGRESS), memory.position(APP)) == progress({b"total": b"2", b"reviewed": b"2"}, len(log.events))
    a.reopen(BEN, "again")
    log.record(a)
    memory = log.fold(QueueProjection)
    p = progress(memory.hgetall(PROGRESS), memory.position(APP))
    assert (p.total, p.reviewed, p.percent_reviewed, p.position) == (2, 1, 50.0, len(log.events))
    state = lambda name: state_key(name, first.consultation_id)  # noqa: E731
    assert [m for m, _ in memory.zrange(state("new"))] == [str(a.id).encode()]
    assert [m for m, _ in memory.zrange(state("excluded"))] == [str(b.id).encode()]
    assert state("completed") not in memory.dump() and state("claimed") not in memory.dump()  # emptied, as Redis drops them
    assert memory.hash(case_key(a.id))["state"] == "new"


def test_claims_tags_flags_and_release_keep_the_indexes_in_step() -> None:
    log = Log()
    ((response, case),) = reviewed(log, 1)
    case.claim(ANA, NOW, LEASE)
    case.tag(ANA, "ai_use", NOW)
    case.tag(ANA, "consent", NOW)
    case.untag(ANA, "consent", NOW)
    case.flag(ANA, Flag.ABUSIVE, "rude", None, NOW)
    case.note(ANA, "A note.", NOW)
    log.record(case)
    memory = log.fold(QueueProjection)
    member, score = str(case.id).encode(), 2.0  # scored by the response's position
    assert memory.zrange(f"assignee:{ANA}") == [(member, score)]
    assert memory.zrange(state_key("claimed", response.consultation_id)) == [(member, score)]
    assert memory.zrange("leases") == [(member, (NOW + LEASE).timestamp())]
    assert memory.zrange("tags:ai_use") == [(member, score)] and "tags:consent" not in memory.dump()
    claimed = item(memory.hgetall(case_key(case.id)), lapsed=False, clusters=memory.hashes)
    assert (claimed.response_id, claimed.state, claimed.assignee, claimed.claimed_until) == (response.id, "claimed", ANA, NOW + LEASE)
    assert (claimed.tags, claimed.flags, claimed.notes, claimed.position) == (["ai_use"], [Flag.ABUSIVE.value], 1, 2)
    lapsed = item(memory.hgetall(case_key(case.id)), lapsed=True, clusters=memory.hashes)
    assert (lapsed.state, lapsed.assignee, lapsed.claimed_until) == ("new", None, None)
    case.release(ANA, NOW)
    log.record(case)
    memory = log.fold(QueueProjection)
    dump = memory.dump()
    assert f"assignee:{ANA}" not in dump and "leases" not in dump and state_key("claimed", response.consultation_id) not in dump
    assert memory.zrange(state_key("new", response.consultation_id)) == [(member, score)]


def test_a_page_lists_matches_oldest_first_and_moves_its_cursor_over_the_whole_window() -> None:
    log = Log()
    cases = reviewed(log, 3)
    cases[1][1].claim(ANA, NOW, LEASE)
    log.record(cases[1][1])
    memory = log.fold(QueueProjection)
    query = Query(cases[0][0].consultation_id, "new", None, None, None)
    assert query.index == state_key("new", cases[0][0].consultation_id)
    window = dict(((m, str(s).encode()) for m, s in memory.zrange(query.index)))
    members, upper = query.window(window, limit=1, lapsed=[])
    assert members == [str(cases[0][1].id).encode()] and upper == 2.0
    page = query.page([item(memory.hgetall(case_key(m.decode())), False, memory.hashes) for m in members], 0, upper, memory.position(APP))
    assert [i.response_id for i in page.items] == [cases[0][0].id] and page.next_cursor == 2 and page.position == len(log.events)
    # The claim lapsed: it lists as new again, in its place.
    lapsed = [str(cases[1][1].id).encode()]
    members, upper = query.window(window, limit=10, lapsed=lapsed)
    items = [item(memory.hgetall(case_key(m.decode())), m in lapsed, memory.hashes) for m in members]
    page = query.page(items, 0, upper, 5)
    assert [i.response_id for i in page.items] == [r.id for r, _ in cases] and page.next_cursor is None


# Memory holds what Redis would


def test_a_fold_whose_process_event_is_a_plain_method_has_it_called_for_every_topic() -> None:
    seen: list[int] = []

    class Counting(StatsProjection):
        def process_event(self, domain_event: Any, tracking: Tracking) -> None:
            seen.append(tracking.notification_id)
            super().process_event(domain_event, tracking)

    log = Log()
    c = consultation(log)
    respond(log, c, colour="red")
    assert set(Counting(Memory()).handlers()) == set(StatsProjection.topics)
    memory = log.fold(Counting)
    assert seen == [1, 2]  # the consultation and the response, through the subclass's method
    assert log.fold(StatsProjection).dump() == memory.dump()


def test_memory_holds_bytes_as_redis_does() -> None:
    memory = Memory()
    t = Tracking(APP, 7)
    memory.hset(t, "h", text="é", nul="\x00")
    memory.hincrby(t, "h", "n", 2)
    memory.hincrby(t, "h", "n", -2)
    memory.sadd(t, "empty")
    memory.zadd(t, "z", "a", 1)
    memory.zrem(t, "z", "a")
    assert memory.dump() == {"h": [(b"n", b"0"), (b"nul", b"\x00"), (b"text", "é".encode())], POSITION: [(APP.encode(), b"7")]}
    assert memory.max_tracking_id(APP) == 7 and memory.max_tracking_id("other") is None


def test_folds_need_no_redis() -> None:
    code = (
        "import sys, projections.form, projections.stats, projections.queue, projections.state; "
        "sys.exit(any(m.split('.')[0] == 'redis' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], check=False).returncode == 0
