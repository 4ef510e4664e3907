"""Fingerprints, the index and the cluster aggregates, with no services: what clusters and what must not."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.campaigns.cluster import Assignment, Book, Cluster, ClusterConflict, Likeness, first_cluster_id
from domain.campaigns.service import diff
from domain.campaigns.similarity import Index, fingerprint, normalise, shingles, similarity, tokens
from domain.errors import InvalidInput

TEMPLATE = (
    "I oppose the proposed change to section four of the code of conduct because it removes the "
    "independent appeals panel and leaves every decision with the same committee that made it in the first place."
)
ARABIC = (
    "أعارض التغيير المقترح على القسم الرابع من مدونة السلوك لأنه يلغي لجنة الاستئناف المستقلة "
    "ويترك كل قرار في يد اللجنة نفسها التي اتخذته في المقام الأول"
)
CHINESE = "我反对对行为准则第四节的拟议修改，因为它取消了独立的申诉小组，并将所有决定留给最初做出决定的同一个委员会。"
HINDI = (
    "मैं आचार संहिता की धारा चार में प्रस्तावित बदलाव का विरोध करता हूँ क्योंकि यह स्वतंत्र अपील पैनल को हटा देता है "
    "और हर फैसला उसी समिति के पास छोड़ देता है जिसने इसे पहले लिया था"
)


def index_with(*texts: str, threshold: float = 0.8) -> Index:
    index = Index(threshold)
    for i, text in enumerate(texts):
        print_ = fingerprint(text)
        assert print_ is not None
        index.add(i, print_)
    return index


def test_normalising_folds_width_case_and_whitespace() -> None:
    assert normalise("  Ｉ  OPPOSE\tthe\n\nﬁle ") == "i oppose the file"
    assert fingerprint(TEMPLATE.upper().replace(" ", "  ")).digest == fingerprint(TEMPLATE).digest  # type: ignore[union-attr]


def test_devanagari_words_keep_their_vowel_signs() -> None:
    # \w alone would cut "हिन्दी" at its vowel signs and virama: three tokens instead of one.
    assert tokens("नमस्ते हिन्दी") == ["नमस्ते", "हिन्दी"]
    assert tokens("مرحبا، بالعالم") == ["مرحبا", "بالعالم"]


def test_scripts_without_spaces_are_shingled_by_character() -> None:
    assert tokens("我们支持abc") == ["我", "们", "支", "持", "abc"]
    found = shingles(normalise(CHINESE))
    assert found is not None and "行 为" in found


@pytest.mark.parametrize("text", [TEMPLATE, ARABIC, CHINESE, HINDI])
def test_every_script_finds_its_near_copy_and_not_another_text(text: str) -> None:
    words = text.split()
    if len(words) > 5:  # a word left out, one added at the end: a personalised copy
        copy = " ".join(words[:3] + words[4:] + [words[1]])
    else:  # Chinese: two characters changed
        copy = text[:10] + "新" + text[11:30] + "旧" + text[31:]
    index = index_with(text)
    match = index.match(fingerprint(copy))  # type: ignore[arg-type]
    assert match is not None and match.member == 0 and not match.identical and match.similarity >= 0.8
    others = [t for t in (TEMPLATE, ARABIC, CHINESE, HINDI) if t != text]
    assert all(index.match(fingerprint(o)) is None for o in others)  # type: ignore[arg-type]


def test_short_and_empty_answers_never_cluster() -> None:
    assert fingerprint("") is None
    assert fingerprint("   \n ") is None
    assert fingerprint("I agree with this proposal entirely") is None  # six words
    assert fingerprint("我同意这个提案的内容") is None  # ten characters: five words' worth
    assert fingerprint("one two three four five six seven eight nine ten") is not None


def test_identical_texts_share_one_entry_and_survive_removal_of_the_first() -> None:
    index = index_with(TEMPLATE, TEMPLATE.lower())
    assert len(index.shingles) == 1 and len(index) == 2
    assert index.match(fingerprint(TEMPLATE)).member == 0  # type: ignore[arg-type,union-attr]
    index.remove([0])
    match = index.match(fingerprint(TEMPLATE))  # type: ignore[arg-type]
    assert match is not None and match.member == 1 and match.identical
    index.remove([1, 1, 7])  # removing twice, or what was never there, changes nothing
    assert len(index) == 0 and index.match(fingerprint(TEMPLATE)) is None  # type: ignore[arg-type]


def test_below_the_threshold_is_no_match() -> None:
    half = " ".join(TEMPLATE.split()[:18]) + " but I do support the rest of the draft and thank the committee for its work so far"
    assert index_with(TEMPLATE).match(fingerprint(half)) is None  # type: ignore[arg-type]
    assert index_with(TEMPLATE, threshold=0.3).match(fingerprint(half)) is not None  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Index(0)
    with pytest.raises(ValueError):
        Index(1.5)


LETTER = [
    "I oppose the proposed change to section four of the code of conduct.",
    "It removes the independent appeals panel that members fought hard to create.",
    "Every decision would then stay with the same committee that made it in the first place.",
    "Nobody should judge an appeal against their own ruling, however careful they are.",
    "Please keep the panel and publish how its members are chosen each year.",
    "I ask the board to withdraw this change before the consultation closes.",
]
OWN = [
    "I have run our chapter's events for six years and reported two incidents myself.",
    "Both times the committee took months to answer and never explained its reasons to anyone.",
    "A panel outside the committee was the only thing that gave me any confidence in the process.",
]


def test_words_added_to_a_template_count_half_and_words_replaced_in_full() -> None:
    template = " ".join(LETTER)
    added = " ".join(["Dear committee,", *LETTER[:3], OWN[0], *LETTER[3:], "Regards, Ana Lopez"])
    rewritten = " ".join([OWN[1], *LETTER[1:4], OWN[2], LETTER[5]])  # a third replaced: another organisation's letter
    quoting = " ".join([*OWN, LETTER[1], LETTER[2]])  # quotes a third of it amid more of its own
    print_ = {name: fingerprint(text) for name, text in [("template", template), ("added", added), ("rewritten", rewritten), ("quoting", quoting)]}
    a, b = print_["template"].shingles, print_["added"].shingles  # type: ignore[union-attr]
    shared = len(set(a.tolist()) & set(b.tolist()))
    assert shared / (len(a) + len(b) - shared) < 0.8  # Jaccard's similarity would part them
    assert similarity(a, b) == similarity(b, a) == shared / (shared + (len(a) - shared) + (len(b) - shared) / 2) >= 0.8
    index = index_with(template)
    match = index.match(print_["added"])  # type: ignore[arg-type]
    assert match is not None and match.member == 0 and 0.8 <= match.similarity < 1
    assert index.match(print_["rewritten"]) is None and index.match(print_["quoting"]) is None  # type: ignore[arg-type]
    assert index_with(" ".join(LETTER[:2])).match(print_["template"]) is None  # type: ignore[arg-type]  # a short text within a long one


def test_a_removed_text_leaves_the_lsh_buckets() -> None:
    index = index_with(" ".join(LETTER), " ".join(OWN + LETTER[:2]))
    index.remove([0, 1])
    assert index.buckets == {} and index.shingles == {} and index.texts == {}


def test_splits_merges_and_departures_fold_into_the_book() -> None:
    consultation, editor = uuid4(), uuid4()
    a, b, c = uuid4(), uuid4(), uuid4()
    first = first_cluster_id(a)
    assignments = [
        Assignment(response_id=a, consultation_id=consultation, cluster_id=first, kind=Likeness.UNIQUE, similarity=0.0),
        Assignment(response_id=b, consultation_id=consultation, cluster_id=first, kind=Likeness.NEAR, similarity=0.9),
        Assignment(response_id=c, consultation_id=consultation, cluster_id=first_cluster_id(c), kind=Likeness.UNIQUE, similarity=0.0),
    ]
    book = Book()
    for position, x in enumerate(assignments, 1):
        book.apply(x.pending_events[0], position)
    assert {k: len(v) for k, v in book.clusters(consultation).items()} == {first: 2, first_cluster_id(c): 1}

    split = assignments[1]
    with pytest.raises(InvalidInput):
        split.split_out(editor, " ")
    split.split_out(editor, "Different argument")
    assert split.cluster_id not in (first, first_cluster_id(b))
    source, target = Cluster(consultation_id=consultation, id=first_cluster_id(c)), Cluster(consultation_id=consultation, id=first)
    with pytest.raises(ClusterConflict):
        source.merge_into(editor, source, "itself")
    with pytest.raises(ClusterConflict):
        source.merge_into(editor, Cluster(consultation_id=uuid4(), id=uuid4()), "another consultation")
    source.merge_into(editor, target, "Same template")
    with pytest.raises(ClusterConflict):
        source.confirm(editor, "Too late", "merged")
    target.confirm(editor, "Save the panel", "Template from a mailing list")
    for e in [*split.pending_events, *source.pending_events, *target.pending_events]:
        book.apply(e, 10)
    book.apply(split.pending_events[-1], 11)  # folded twice: no change
    clusters = book.clusters(consultation)
    assert sorted(len(m) for m in clusters.values()) == [1, 2]
    assert book.cluster_of(c) == first and book.campaigns == {first: "Save the panel"}

    gone = Assignment(response_id=uuid4(), consultation_id=consultation, cluster_id=None, kind=Likeness.UNCLUSTERED, similarity=0.0)
    with pytest.raises(ClusterConflict):
        gone.split_out(editor, "nothing to split")
    gone.leave("shredded")
    assert len(gone.pending_events) == 1  # leaving no cluster records nothing


def test_a_campaign_needs_a_name_and_a_reason() -> None:
    cluster = Cluster(consultation_id=uuid4(), id=uuid4())
    for name, reason in [("", "why"), ("A\u202eB", "why"), ("Name", ""), ("Name", "x" * 2001)]:
        with pytest.raises(InvalidInput):
            cluster.confirm(uuid4(), name, reason)
    cluster.confirm(uuid4(), "  Save   the panel ", "why")
    assert cluster.campaign == "Save the panel"


def test_a_diff_shows_what_a_member_changed() -> None:
    changes = [(c.op, c.text) for c in diff("I oppose the change to section four", "Dear all, I oppose the change to section five")]
    assert changes == [("+", "Dear all,"), (" ", "I oppose the change to section"), ("-", "four"), ("+", "five")]
