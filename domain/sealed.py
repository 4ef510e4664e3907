"""Sealed values: text the log keeps only as ciphertext, each under a data key of its own.

Destroying the key erases the text from the immutable log (crypto-shredding). The domain
decides what is sealed and when a key is destroyed; a `Vault` (infrastructure: store/keys.py)
holds the keys and does the cryptography.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec


class Sealed(msgspec.Struct, frozen=True):
    """Text encrypted under the data key `key_id`; unreadable once that key is destroyed."""

    key_id: str
    data: bytes


class Vault(Protocol):
    """Data keys, kept apart from the log; `associated` binds a ciphertext to its place."""

    def seal(self, texts: list[tuple[str, str]]) -> list[Sealed]:
        """Each (associated, text) sealed under a new key."""
        ...

    def seal_for_save(self, texts: list[tuple[str, str]]) -> tuple[list[Sealed], object]:
        """As `seal`, with the new keys not yet recorded: pass the second item to the save that
        records the ciphertext (`app.save(..., keys=...)`), which records them in its own transaction."""
        ...

    def seal_with(self, key_id: str, text: str, associated: str) -> Sealed:
        """Sealed under an existing key."""
        ...

    def unseal(self, sealed: Sealed, associated: str) -> str | None:
        """The text, or None once its key is destroyed."""
        ...

    def unseal_many(self, items: Sequence[tuple[Sealed, str]]) -> list[str | None]:
        """`unseal` of each (sealed, associated), their keys read at once."""
        ...

    def nonce(self, key_id: str, label: str) -> bytes | None:
        """32 secret bytes derived from the data key for `label` (never the key itself), or None once the key
        is destroyed: a hash of a text salted with it cannot be tested against guesses after the shredding."""
        ...

    def find_or_create(self, digest: str, owner: str) -> tuple[str, str]:
        """The (owner, key id) indexed under `digest`; if none yet, a new key for `owner`."""
        ...

    def owner(self, digest: str) -> str | None: ...

    def destroy(self, key_ids: Iterable[str], scrub: bool = True) -> None:
        """Delete the keys and scrub their storage; raises PersistenceError if scrubbing must be tried again.
        `scrub=False`: delete only, for keys no recorded event used (a command that failed), so that
        cleaning up never waits on the store nor hides the command's own error."""
        ...
