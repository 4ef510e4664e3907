"""Telling identical and near-identical texts apart from the rest: normalising, shingling, MinHash and LSH.

Two responses are identical when their free text reads the same once normalised (NFKC, case
folded, whitespace collapsed), and near-duplicates when the Jaccard similarity of their shingles
(pairs of adjacent words) reaches a threshold, estimated by MinHash and found by locality-sensitive
hashing (`datasketch`). Scripts written without spaces between words (Chinese, Japanese, Thai...)
are shingled by characters instead; marks (Devanagari's vowel signs, Arabic's harakat) stay
part of their word. A text shorter than `MIN_WORDS` never matches anything, so that short
answers ("I agree") never cluster by accident.

Fingerprints (digests and sketches) live only in this process's memory: they are recomputed
from the sealed text whenever the index is rebuilt, and never stored.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from datasketch import LeanMinHash, MinHash, MinHashLSH

SHINGLE = 2  # tokens per shingle: pairs still tell texts apart, and one changed word costs only two
NUM_PERM = 128
MIN_WORDS = 10  # a character of a script written without spaces counts as half a word
LSH_SLACK = 0.1  # the LSH looks for candidates this far below the threshold; each is then checked

# Scripts written without spaces between words: Thai, Lao, Tibetan, Myanmar, Khmer, CJK
# radicals and punctuation-free ideographs, kana, and the ideographs' extensions.
_UNSPACED = (
    "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029"
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)


def _classes(*categories: str) -> str:
    """A regular expression's character class body: every code point whose category starts with one of `categories`."""
    ranges, start = [], None
    for cp in range(sys.maxunicode + 2):
        inside = cp <= sys.maxunicode and unicodedata.category(chr(cp))[0] in categories
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    return "".join(ranges)


@functools.cache
def _tokens() -> re.Pattern[str]:
    """A token: one character of an unspaced script with its marks, or a run of letters, marks and digits."""
    return re.compile(f"[{_UNSPACED}][{_classes('M')}]*|(?:(?![{_UNSPACED}])[{_classes('L', 'M', 'N')}])+")


def normalise(text: str) -> str:
    """Compatibility forms folded (NFKC), case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold()).split())


def tokens(text: str) -> list[str]:
    return _tokens().findall(text)


_UNSPACED_START = re.compile(f"[{_UNSPACED}]")


def shingles(normalised: str) -> set[str] | None:
    """The text's shingles, or None if it is too short to cluster (empty included)."""
    words = tokens(normalised)
    if sum(0.5 if _UNSPACED_START.match(t) else 1 for t in words) < MIN_WORDS:
        return None
    return {" ".join(words[i : i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 1))}


@functools.cache
def _permutations() -> tuple[object, object]:
    return MinHash(num_perm=NUM_PERM, scheme="affine32").permutations  # made once: making them per text is most of the cost


@dataclass(frozen=True)
class Fingerprint:
    digest: bytes  # of the normalised text: identical texts share it
    sketch: LeanMinHash


def fingerprint(text: str) -> Fingerprint | None:
    """A text's fingerprint, or None if it is too short to cluster."""
    normalised = normalise(text)
    found = shingles(normalised)
    if found is None:
        return None
    sketch = MinHash(num_perm=NUM_PERM, permutations=_permutations(), scheme="affine32")
    sketch.update_batch(s.encode() for s in found)
    return Fingerprint(hashlib.blake2b(normalised.encode(), digest_size=16).digest(), LeanMinHash(sketch))


@dataclass(frozen=True)
class Match:
    member: Hashable  # the indexed member matched
    identical: bool
    similarity: float  # estimated Jaccard similarity (1.0 when identical)


class Index:
    """Members (any hashable key, say a response id) by fingerprint: what a new text is identical or near to.

    Identical texts share one entry in the LSH (and one sketch); the first member still indexed
    with a text stands for it.
    """

    def __init__(self, threshold: float) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"A similarity threshold lies above 0 and at most 1, not {threshold}.")
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=max(threshold - LSH_SLACK, 0.05), num_perm=NUM_PERM)
        self.texts: dict[bytes, list[Hashable]] = {}  # digest -> members, oldest first
        self.sketches: dict[bytes, LeanMinHash] = {}
        self.digests: dict[Hashable, bytes] = {}

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, member: Hashable) -> bool:
        return member in self.digests

    def match(self, print_: Fingerprint) -> Match | None:
        """The member the fingerprint's text is identical to, else the most similar at or above the threshold."""
        if members := self.texts.get(print_.digest):
            return Match(members[0], True, 1.0)
        best: tuple[float, bytes] | None = None
        for digest in self.lsh.query(print_.sketch):
            similarity = print_.sketch.jaccard(self.sketches[digest])
            if similarity >= self.threshold and (best is None or similarity > best[0]):
                best = (similarity, digest)
        return None if best is None else Match(self.texts[best[1]][0], False, best[0])

    def add(self, member: Hashable, print_: Fingerprint) -> None:
        if member in self.digests:
            return
        self.digests[member] = print_.digest
        members = self.texts.setdefault(print_.digest, [])
        members.append(member)
        if len(members) == 1:
            self.sketches[print_.digest] = print_.sketch
            self.lsh.insert(print_.digest, print_.sketch, check_duplication=False)

    def remove(self, members: Iterable[Hashable]) -> None:
        for member in members:
            digest = self.digests.pop(member, None)
            if digest is None:
                continue
            self.texts[digest].remove(member)
            if not self.texts[digest]:
                del self.texts[digest], self.sketches[digest]
                self.lsh.remove(digest)
