"""The data keys beside the event store, read many at once (the clusterer reads a batch's together)."""

from __future__ import annotations

import psycopg
import pytest
from eventsourcing.persistence import PersistenceError

from runtime import System
from store.keys import GET_MANY
from tests.conftest import POSTGRES, raw_storage


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


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_a_key_an_older_transaction_may_still_see_is_not_reported_scrubbed(system: System, store_env: dict[str, str]) -> None:
    """PostgreSQL's VACUUM FULL copies a deleted row that a transaction older than the delete may
    still see (a backup's snapshot, a long report), so the key would stay in the files while the
    erasure said it was done. Destroying then refuses to call it done; once that transaction ends,
    destroying again scrubs it."""
    sealed, unused = system.texts.seal([("q", "my name is Zoë"), ("q", "never recorded")])
    key = system.texts.get(sealed.key_id)
    assert key is not None
    with psycopg.connect(POSTGRES, autocommit=True) as older:
        older.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        older.execute("SELECT 1").fetchone()  # its snapshot, taken before the delete
        # Cleaning up after a failed command (a key no event used) deletes without waiting.
        system.texts.destroy([unused.key_id], scrub=False)
        assert system.texts.get(unused.key_id) is None
        with pytest.raises(PersistenceError, match="destroy again"):
            system.texts.destroy([sealed.key_id])
        assert system.texts.get(sealed.key_id) is None  # deleted all the same: no one reads it again
        older.execute("COMMIT")
    system.texts.destroy([sealed.key_id])
    assert key not in raw_storage(store_env)


def test_a_key_altered_outside_agora_opens_nothing_and_is_logged_not_a_crash(
    system: System, store_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An attacker's: two keys swapped in the table made the response's page a 500 and the clusterer rebuild
    itself every second without naming anything, clustering no new response."""
    (one, other) = system.texts.seal([("response:a", "my name is Zoë"), ("response:b", "and mine is Sam")])
    table = "data_keys" if store_env["PERSISTENCE_MODULE"] == "store.sqlite" else f"{store_env['POSTGRES_SCHEMA']}.data_keys"
    with system.texts.datastore.transaction(commit=True) as c:
        p = system.texts.p
        c.execute(f"UPDATE {table} SET key = (SELECT key FROM {table} WHERE key_id = {p}) WHERE key_id = {p}", (other.key_id, one.key_id))
    assert system.texts.unseal_many([(one, "response:a"), (other, "response:b")]) == [None, "and mine is Sam"]
    assert f"key {one.key_id} does not open the value sealed under it (response:a)" in caplog.text
