"""Telling identical and near-identical texts apart from the rest: normalising, shingling, MinHash and LSH.

Two responses are identical when their free text reads the same once normalised (NFKC, case
folded, whitespace collapsed), and near-duplicates when the similarity of their shingles (pairs
of adjacent words) reaches a threshold. The similarity is Jaccard's (shared shingles over all),
except that the shingles only the longer text has count half:

    shared / (shared + only in the shorter + only in the longer / 2)

so a template with a greeting, a signature or a paragraph of one's own added stays alike (a
60-word letter with 20 words added: 0.86, where Jaccard gives 0.75), while two texts that each
replace part of a common one do not gain (a quarter of a template rewritten: 0.67), nor does a
text that quotes part of another amid more of its own. Texts alike at 0.8 have a Jaccard
similarity of at least 2/3. Candidates are found by MinHash and locality-sensitive hashing
(`datasketch`'s MinHash, banded here), and each is then compared exactly on the hashes of its
shingles. Scripts written without spaces between words (Chinese, Japanese, Thai...) are shingled
by characters instead; marks (Devanagari's vowel signs, Arabic's harakat) stay part of their word.
A text shorter than `MIN_WORDS` never matches anything, so that short answers ("I agree") never
cluster by accident.

Fingerprints (digests and shingle hashes) live only in this process's memory: they are recomputed
from the sealed text whenever the index is rebuilt, and never stored.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
import zlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

SHINGLE = 2  # tokens per shingle: pairs still tell texts apart, and one changed word costs only two
MIN_WORDS = 10  # a character of a script written without spaces counts as half a word
# LSH: texts that agree on all the MinHash values of one of BANDS bands (of at most MAX_ROWS each)
# are candidates, each then compared exactly. An index takes the most rows per band that still make
# a pair as unlike as a match can be a candidate with a probability of at least CANDIDATE: at 0.8,
# four (a pair at Jaccard 2/3 is one with a probability of 0.89, at Jaccard 0.8 of 0.98), and a
# member of a campaign needs only one of its many members found.
BANDS, MAX_ROWS, CANDIDATE = 10, 4, 0.85

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
def _minhash() -> Any:
    """datasketch's MinHash, imported once first needed: the package imports scipy, a second's start-up
    that every API process and CLI command would pay, though only the clusterer sketches texts."""
    from datasketch import MinHash

    return MinHash


@functools.cache
def _permutations() -> tuple[object, object]:
    return _minhash()(num_perm=BANDS * MAX_ROWS, scheme="affine32").permutations  # made once: making them per text is most of the cost


def _signature(hashes: np.ndarray) -> np.ndarray:
    sketch = _minhash()(num_perm=BANDS * MAX_ROWS, hashfunc=int, permutations=_permutations(), scheme="affine32")
    sketch.update_batch(hashes.tolist())
    return sketch.hashvalues


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Shared shingles over themselves plus the shorter text's other shingles and half the longer's (see the module)."""
    shared = len(np.intersect1d(a, b, assume_unique=True))
    short, long = sorted((len(a) - shared, len(b) - shared))
    return shared / (shared + short + long / 2)


@dataclass(frozen=True)
class Fingerprint:
    digest: bytes  # of the normalised text: identical texts share it
    shingles: np.ndarray  # the distinct hashes (CRC-32) of its shingles, sorted
    signature: np.ndarray  # their MinHash


def fingerprint(text: str) -> Fingerprint | None:
    """A text's fingerprint, or None if it is too short to cluster."""
    normalised = normalise(text)
    found = shingles(normalised)
    if found is None:
        return None
    hashes = np.unique(np.fromiter((zlib.crc32(s.encode()) for s in found), np.uint32, len(found)))
    return Fingerprint(hashlib.blake2b(normalised.encode(), digest_size=16).digest(), hashes, _signature(hashes))


@dataclass(frozen=True)
class Match:
    member: Hashable  # the indexed member matched
    identical: bool
    similarity: float  # 1.0 when identical


class Index:
    """Members (any hashable key, say a response id) by fingerprint: what a new text is identical or near to.

    Identical texts share one entry (their shingles, once, and a place in the LSH buckets); the
    first member still indexed with a text stands for it. A bucket holds a digest, or a list of
    them once several texts share it: most buckets hold one text, and a list each would double the
    index's memory.
    """

    def __init__(self, threshold: float) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"A similarity threshold lies above 0 and at most 1, not {threshold}.")
        self.threshold = threshold
        lowest = threshold / (2 - threshold)  # the Jaccard similarity of a text and another that adds to it, alike at the threshold
        self.rows = max((r for r in range(1, MAX_ROWS + 1) if 1 - (1 - lowest**r) ** BANDS >= CANDIDATE), default=1)
        self.buckets: dict[int, bytes | list[bytes]] = {}  # LSH key -> digests
        self.shingles: dict[bytes, bytes] = {}  # digest -> its shingles (their array's bytes: a third of an array's overhead)
        self.texts: dict[bytes, list[Hashable]] = {}  # digest -> members, oldest first
        self.digests: dict[Hashable, bytes] = {}

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, member: Hashable) -> bool:
        return member in self.digests

    def match(self, print_: Fingerprint) -> Match | None:
        """The member the fingerprint's text is identical to, else the most similar at or above the threshold."""
        if members := self.texts.get(print_.digest):
            return Match(members[0], True, 1.0)
        candidates: set[bytes] = set()
        for key in self._keys(print_.signature):
            found = self.buckets.get(key)
            if isinstance(found, list):
                candidates.update(found)
            elif found is not None:
                candidates.add(found)
        best: tuple[float, bytes] | None = None
        for digest in candidates:
            alike = similarity(print_.shingles, np.frombuffer(self.shingles[digest], np.uint32))
            if alike >= self.threshold and (best is None or alike > best[0]):
                best = (alike, digest)
        return None if best is None else Match(self.texts[best[1]][0], False, best[0])

    def add(self, member: Hashable, print_: Fingerprint) -> None:
        if member in self.digests:
            return
        self.digests[member] = print_.digest
        members = self.texts.setdefault(print_.digest, [])
        members.append(member)
        if len(members) > 1:
            return
        self.shingles[print_.digest] = print_.shingles.tobytes()
        for key in self._keys(print_.signature):
            found = self.buckets.setdefault(key, print_.digest)
            if isinstance(found, list):
                found.append(print_.digest)
            elif found != print_.digest:
                self.buckets[key] = [found, print_.digest]

    def _keys(self, signature: np.ndarray) -> list[int]:
        """A text's LSH keys: each band of its signature, hashed with the band's number (a key two bands
        share by chance only adds a candidate, which the exact comparison turns down)."""
        return [zlib.crc32(signature[band * self.rows : (band + 1) * self.rows].tobytes(), band) for band in range(BANDS)]

    def remove(self, members: Iterable[Hashable]) -> None:
        for member in members:
            digest = self.digests.pop(member, None)
            if digest is None:
                continue
            self.texts[digest].remove(member)
            if self.texts[digest]:
                continue
            del self.texts[digest]
            for key in self._keys(_signature(np.frombuffer(self.shingles.pop(digest), np.uint32))):
                found = self.buckets[key]
                if isinstance(found, list) and len(found) > 2:
                    found.remove(digest)
                elif isinstance(found, list):
                    self.buckets[key] = found[0] if found[1] == digest else found[1]
                else:
                    del self.buckets[key]
