"""The Merkle tree of the log, shaped and hashed as RFC 9162 (section 2.1) says: hashes, proofs, checks.

Pure functions, no storage. A complete subtree is addressed as node (level, index): it covers
leaves [index * 2**level, (index + 1) * 2**level). Every subtree hash a proof needs covers a
range [lo, hi) whose start is aligned to a power of two at least as large as the range, so it is
a fold of at most log2(n) complete subtrees: the ledger stores those, and a proof costs
O(log n) lookups, never a rebuild.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256
_HEAD = struct.Struct(">Q16sQI")
_LENGTH = struct.Struct(">I")


def canonical(position: int, originator_id: bytes, version: int, topic: str, state: bytes) -> bytes:
    """The bytes a leaf hashes: a stored record exactly as the log holds it (docs/audit.md).

    position (8 bytes, big-endian) | originator id (16: the UUID's bytes) | version (8) | topic length (4) | topic (UTF-8)
    | state length (4) | state (the stored bytes: ciphertext where a value is sealed).
    """
    t = topic.encode()
    return _HEAD.pack(position, originator_id, version, len(t)) + t + _LENGTH.pack(len(state)) + state


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The complete subtrees, largest first, whose leaves make up [lo, hi)."""
    nodes = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        assert lo % (1 << level) == 0, (lo, hi)  # proofs only ask for aligned ranges
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: list[bytes]) -> bytes:
    """The hash of a range from the hashes of its complete subtrees, largest first."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def root(leaves: list[bytes]) -> bytes:
    """The tree hash of a list of leaf hashes, straight from the definition (for tests and small trees)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make the inclusion proof of leaf `index` in a tree of `size` (RFC 9162 2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    return path[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make the consistency proof from size `old` to size `new` (RFC 9162 2.1.4.1)."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    if old in (0, new):
        return []
    proof = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            proof.append((lo + k, hi))
            hi = lo + k
        else:
            proof.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    if not whole:
        proof.append((lo, hi))
    return proof[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes | None:
    """The root a proof leads to from `leaf` (RFC 9162 2.1.3.2), or None if the proof cannot fit the tree."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root_hash: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root_hash


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """Whether the tree of size `new` extends the one of size `old` (RFC 9162 2.1.4.2)."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    if old & (old - 1) == 0:  # a power of two: the old root is a node of the new tree
        proof = [old_root, *proof]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


class Frontier:
    """The right edge of a growing tree: the hashes of its complete subtrees, largest first.

    Appending a leaf makes the subtrees it completes (amortised one); `root()` folds the edge.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        assert len(self.hashes) == size.bit_count(), (size, len(self.hashes))

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; the (level, index, hash) of each subtree above the leaves it completes."""
        hashes = self.hashes
        hashes.append(leaf)
        i, level, made = self.size, 0, []
        self.size += 1
        while i & 1:
            right = hashes.pop()
            h = node_hash(hashes.pop(), right)
            hashes.append(h)
            i >>= 1
            level += 1
            made.append((level, i, h))
        return made

    def root(self) -> bytes:
        return fold(self.hashes)
