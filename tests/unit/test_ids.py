"""Derived ids: the fast text form is exactly UUID version 5, which every stored aggregate id was made with;
and what a keyed submission derives from its Idempotency-Key."""

import hashlib
import hmac
from uuid import NAMESPACE_URL, uuid4, uuid5

import msgspec

from domain.campaigns.cluster import assignment_id, assignment_text
from domain.consultations.service import Keyed
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


def test_an_answers_fingerprint_needs_the_idempotency_key_as_well_as_the_secret() -> None:
    """The log keeps it for good: an auditor holding the server's secret confirmed a redacted phone
    number against the old one, a MAC of the answers under the secret alone."""
    keyed, key = Keyed("s" * 48), "k" * 20
    answers = {"works_well": "Call me on 0612345678", "familiarity": "read"}
    fingerprint = keyed.fingerprint(key, answers)
    assert fingerprint == keyed.fingerprint(key, dict(reversed(answers.items())))  # a retry: the same answers
    assert fingerprint != keyed.fingerprint(key, {**answers, "works_well": "Call me on 0612345679"})
    assert fingerprint != keyed.fingerprint("j" * 20, answers)
    secret_alone = hmac.new(b"s" * 48, b"answers\0" + msgspec.json.encode(answers, order="sorted"), hashlib.sha256).hexdigest()
    assert fingerprint != secret_alone
