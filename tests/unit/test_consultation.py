"""The consultation's rules, without any infrastructure."""

from __future__ import annotations

import copy
import types
import typing
import unicodedata
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.consultations.consultation import Consultation, Definition, Kind, Question, read_definition
from domain.errors import InvalidDefinition, InvalidResponse, NotAcceptingResponses
from tests.conftest import SEED

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def consultation(**changes: object) -> Consultation:
    return Consultation(msgspec.structs.replace(read_definition(SEED.read_bytes()), **changes))


def test_seed_file_holds_the_consultation_as_published() -> None:
    d = read_definition(SEED.read_bytes())
    assert d.slug == "code-of-conduct-2026"
    assert d.title == "Help Shape Our Global Community Code of Conduct"
    assert [q.kind for q in d.questions] == [
        Kind.SINGLE_CHOICE, Kind.LONG_TEXT, Kind.LONG_TEXT, Kind.LONG_TEXT, Kind.YES_NO, Kind.CONTACT, Kind.LONG_TEXT,
    ]
    assert d.questions[0].prompt == "How familiar are you with the current Code of Conduct?"
    assert d.questions[0].required and d.questions[0].options
    assert len(d.faq) == 7 and d.faq[5].question == "Is my survey response anonymous?"
    assert [s.starts_at for s in d.sessions] == [
        datetime(2026, 5, 7, 13, tzinfo=UTC), datetime(2026, 5, 7, 18, tzinfo=UTC),
    ]
    assert all(s.language == "en" and s.venue == "online" for s in d.sessions)
    assert len(d.next_steps) == 3 and "Every response is read and considered." in d.next_steps[0]
    assert d.draft_url == "" and d.open and d.closes_at is None


def test_answers_are_recorded_without_blank_text() -> None:
    c = consultation()
    recorded = c.check_response({"familiarity": "read", "works_well": "  ", "join_session": False}, NOW)
    assert recorded == {"familiarity": "read", "join_session": False}


@pytest.mark.parametrize(
    ("answers", "field", "words"),
    [
        ({"familiarity": "read", "colour": "blue"}, "answers.colour", "no such question"),
        ({"familiarity": 3}, "answers.familiarity", "Expected a string"),
        ({"familiarity": "often"}, "answers.familiarity", "not one of the options"),
        ({"familiarity": "read", "join_session": "yes"}, "answers.join_session", "true or false"),
        ({"familiarity": "read", "works_well": "x" * 5001}, "answers.works_well", "at most 5000"),
        ({"works_well": "fine"}, "answers.familiarity", "needs an answer"),
        ({"familiarity": "read", "contact": {"name": "A", "email": "a@example.org"}}, "answers.contact", "anonymous"),
        ({"familiarity": "read", "works_well": "e" + "\u0301" * 4990}, "answers.works_well", "more than 30 combining marks"),  # a tester's
        ({"familiarity": "read", "works_well": "ok " + "a\u0301\u0302" * 10 + "e" + "\u0316" * 31}, "answers.works_well", "combining marks"),
        # A tester's ways round a first version: invisible joiners between runs of 30, marks of combining class 0
        # (enclosing, Thai), and a letter NFC composes with its first mark.
        *(({"familiarity": "read", "works_well": "a" + ("\u0301" * 30 + joiner) * 150}, "answers.works_well", "combining marks")
          for joiner in ("\u034f", "\u200d", "\u200b", "\u2060", "\u200e", "\u00ad", "\ufeff")),
        ({"familiarity": "read", "works_well": "a" + "\u0489" * 4000}, "answers.works_well", "combining marks"),
        ({"familiarity": "read", "works_well": "\u0e01" + "\u0e4c" * 4000}, "answers.works_well", "combining marks"),
        ({"familiarity": "read", "works_well": "a" + "\u0301" * 31}, "answers.works_well", "combining marks"),
    ],
)
def test_a_broken_rule_names_its_field(answers: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(InvalidResponse) as refused:
        consultation().check_response(answers, NOW)
    assert [(e.field, words in e.detail) for e in refused.value.errors] == [(field, True)]


def test_text_with_up_to_30_combining_marks_on_a_character_is_an_answer() -> None:
    """Unicode's stream-safe limit: Vietnamese, Hindi or Arabic with its vowel marks never come near it."""
    words = "Tiếng Việt, हिन्दी, العَرَبِيَّة, བོད་ཡིག, 👩🏽‍💻 1️⃣ 🇨🇭, and e" + "\u0316" * 30
    assert consultation().check_response({"familiarity": "read", "works_well": words}, NOW)["works_well"] == words
    consultation().check_response({"familiarity": "read", "works_well": unicodedata.normalize("NFD", words)}, NOW)  # as macOS sends it


def test_a_required_text_answered_with_blanks_is_missing() -> None:
    c = consultation(questions=(Question(id="why", kind=Kind.LONG_TEXT, prompt="Why?", required=True, max_length=100),))
    with pytest.raises(InvalidResponse, match="needs an answer"):
        c.check_response({"why": "   "}, NOW)


def test_closed_consultation_takes_no_response() -> None:
    c = consultation()
    c.close()
    with pytest.raises(NotAcceptingResponses, match="closed"):
        c.check_response({"familiarity": "read"}, NOW)


def test_consultation_takes_responses_only_between_opening_and_closing() -> None:
    c = consultation(opens_at=NOW + timedelta(days=1))
    with pytest.raises(NotAcceptingResponses, match="opens at"):
        c.check_response({"familiarity": "read"}, NOW)
    c = consultation(closes_at=NOW)
    with pytest.raises(NotAcceptingResponses, match="closed at"):
        c.check_response({"familiarity": "read"}, NOW)
    c.move_closing_time(None)
    assert c.check_response({"familiarity": "read"}, NOW) == {"familiarity": "read"}


def test_commands_that_change_nothing_record_nothing() -> None:
    c = consultation()
    c.open()
    c.set_draft_url("")
    c.move_closing_time(None)
    assert len(c.collect_events()) == 1  # only Created


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"questions": ()}, "at least one question"),
        ({"opens_at": datetime(2026, 1, 1)}, "UTC offset"),
    ],
)
def test_a_definition_that_cannot_work_is_refused(change: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidDefinition, match=words):
        msgspec.structs.replace(read_definition(SEED.read_bytes()), **change)


def test_question_rules_are_checked_in_files() -> None:
    with pytest.raises(InvalidDefinition, match="max_length"):
        Definition(slug="x", title="t", introduction="i", questions=(Question(id="q", kind=Kind.LONG_TEXT, prompt="p"),))
    with pytest.raises(InvalidDefinition, match="unique"):
        q = Question(id="q", kind=Kind.YES_NO, prompt="p")
        Definition(slug="x", title="t", introduction="i", questions=(q, q))
    with pytest.raises(InvalidDefinition, match="slug"):
        read_definition(b'slug = "Not A Slug"\ntitle = "t"\nintroduction = "i"\n[[questions]]\nid = "q"\nkind = "yes_no"\nprompt = "p"\n')


def test_a_definition_is_immutable_all_the_way_down_so_copies_share_it() -> None:
    """`Definition.__deepcopy__` returns itself; that is only safe while nothing in it can change."""
    immutable = (str, int, bool, float, datetime, Kind, type(None))

    def check(annotation: object, where: str) -> None:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            check(typing.get_args(annotation)[0], where)
        elif origin is tuple or origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(annotation):
                if arg is not Ellipsis:
                    check(arg, where)
        elif isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            assert annotation.__struct_config__.frozen, f"{where}: {annotation.__name__} is not frozen"
            for name, hint in typing.get_type_hints(annotation, include_extras=True).items():
                check(hint, f"{where}.{name}")
        else:
            assert isinstance(annotation, type) and issubclass(annotation, immutable), f"{where}: {annotation} can change"

    check(Definition, "Definition")
    definition = read_definition(SEED.read_bytes())
    copied = copy.deepcopy(consultation())
    assert copy.deepcopy(definition) is definition and copied.definition == definition
