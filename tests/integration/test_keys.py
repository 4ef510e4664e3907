"""The data keys beside the event store, read many at once (the clusterer reads a batch's together)."""

from __future__ import annotations

from runtime import System
from store.keys import GET_MANY


def test_many_sealed_texts_open_at_once_and_a_destroyed_key_opens_none(system: System) -> None:
    count = 2 * GET_MANY + 7  # more than one query's worth
    texts = [(f"q{i % 3}", f"answer {i}") for i in range(count)]
    sealed = system.texts.seal(texts)
    gone = {sealed[i].key_id for i in (0, GET_MANY, count - 1)}  # one in each query
    system.texts.destroy(gone)

    items = [(s, associated) for s, (associated, _) in zip(sealed, texts, strict=True)]
    opened = system.texts.unseal_many([*items, items[1]])  # a key asked for twice

    expected = [None if s.key_id in gone else text for s, (_, text) in zip(sealed, texts, strict=True)]
    assert opened == [*expected, texts[1][1]]
    assert [system.texts.unseal(s, a) for s, a in items[:2]] == expected[:2]
