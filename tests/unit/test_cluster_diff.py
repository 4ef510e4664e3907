"""A cluster member's diff against its representative: precise for near-duplicates, bounded in work for any text."""

from __future__ import annotations

import difflib
import random
from bisect import bisect_left

import pytest

from domain.campaigns.service import DIFF_STEPS, Change, diff

rng = random.Random(1)
FEW_WORDS = {  # each as long as the answer form allows, about 17,000 characters
    "a-and-b-at-random": (" ".join(rng.choices("ab", k=8500)), " ".join(rng.choices("ab", k=8500))),  # a tester's: 13 s
    "one-word-repeated": ("a " * 8500, "a " * 8500),
    "a-against-a-b": ("a " * 8500, "a b " * 4250),  # cubic: 1,000 words of it took 10 s
}


@pytest.fixture
def within_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test as soon as difflib's searches take more than DIFF_STEPS steps: a word of the range
    searched, and each place it has in the other text before the range's end. (A search the budget stops
    before it begins takes none.)"""
    taken = 0
    search = difflib.SequenceMatcher.find_longest_match

    def counted(self: difflib.SequenceMatcher, alo: int, ahi: int, blo: int, bhi: int) -> difflib.Match:
        nonlocal taken
        taken += sum(1 + bisect_left(self.b2j.get(word, ()), bhi) for word in self.a[alo:ahi])
        assert taken <= DIFF_STEPS, "the diff went on past its budget"
        return search(self, alo, ahi, blo, bhi)

    monkeypatch.setattr(difflib.SequenceMatcher, "find_longest_match", counted)


def sides(changes: list[Change]) -> tuple[list[str], list[str]]:
    """The representative's words and the member's, as the changes tell them."""
    return ([w for c in changes if c.op in " -" for w in c.text.split()], [w for c in changes if c.op in " +" for w in c.text.split()])


@pytest.mark.usefixtures("within_budget")
@pytest.mark.parametrize("representative, member", FEW_WORDS.values(), ids=FEW_WORDS.keys())
def test_a_text_of_a_few_words_repeated_is_diffed_within_the_budget(representative: str, member: str) -> None:
    changes = diff(representative, member)
    assert sides(changes) == (representative.split(), member.split())  # coarse, perhaps, but true


def template(rng: random.Random, words: int) -> list[str]:
    """A text of `words` words drawn as in prose: a few words very often, most rarely."""
    vocabulary = [f"word{rank}" for rank in range(3000)]
    return rng.choices(vocabulary, weights=[1 / (rank + 1) for rank in range(3000)], k=words)


def test_a_near_duplicate_as_long_as_the_form_allows_keeps_its_precise_diff() -> None:
    rng = random.Random(2)
    representative = template(rng, 2800)  # the words of about 17,000 characters of prose
    member = ["Dear", "committee,", *representative, "Yours,", "Ana"]
    for _ in range(60):  # words changed, dropped and added here and there
        at = rng.randrange(len(member))
        member[at : at + 1] = rng.choice([[], ["changed"], ["two", "added"]])
    a, b = " ".join(representative), " ".join(member)
    matcher = difflib.SequenceMatcher(None, representative, member, autojunk=False)  # as before the budget
    before = [
        (op, " ".join(words))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        for op, words in ([(" ", representative[i1:i2])] if tag == "equal" else [("-", representative[i1:i2]), ("+", member[j1:j2])])
        if words
    ]
    assert [(c.op, c.text) for c in diff(a, b)] == before
    assert len(before) > 100


@pytest.mark.usefixtures("within_budget")
def test_past_the_budget_the_same_start_and_end_still_show() -> None:
    start, end = "I oppose the change to section four", "and ask the committee to keep the appeals panel"
    representative, member = "a " * 4000, "b a " * 2000 + "b "  # they differ at their first and last word
    changes = diff(f"{start} {representative}{end}", f"{start} {member}{end}")
    assert [(c.op, c.text) for c in changes] == [(" ", start), ("-", representative.strip()), ("+", member.strip()), (" ", end)]
