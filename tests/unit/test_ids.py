"""Derived ids: the fast text form is exactly UUID version 5, which every stored aggregate id was made with."""

from uuid import NAMESPACE_URL, uuid4, uuid5

from domain.campaigns.cluster import assignment_id, assignment_text
from domain.ids import derived, derived_text
from domain.review.case import case_id, case_text


def test_derived_ids_are_uuid5_of_the_kind_and_the_id():
    for _ in range(1000):
        of = uuid4()
        expected = uuid5(NAMESPACE_URL, f"agora:review-case:{of}")
        assert derived("review-case", of) == expected
        assert derived_text("review-case", of) == str(expected)
        assert derived("review-case", of).version == 5


def test_cases_and_assignments_keep_the_ids_they_were_recorded_under():
    of = uuid4()
    assert case_id(of) == uuid5(NAMESPACE_URL, f"agora:review-case:{of}") and case_text(of) == str(case_id(of))
    assert assignment_id(of) == uuid5(NAMESPACE_URL, f"agora:cluster-assignment:{of}")
    assert assignment_text(of) == str(assignment_id(of))
    assert case_text(of) != assignment_text(of)
