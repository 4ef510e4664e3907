"""The tree against RFC 9162's shape: known vectors (the RFC 6962 test tree of transparency-dev/merkle),
every proof for every size up to 40 built from subtrees and checked, and corrupted proofs refused."""

from __future__ import annotations

import uuid

import pytest

from audit.merkle import (
    EMPTY_ROOT, Frontier, canonical, consistency_ranges, fold, inclusion_ranges, leaf_hash, root, subtrees,
    verify_consistency, verify_inclusion,
)

INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
LEAVES = [leaf_hash(d) for d in INPUTS]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
h = bytes.fromhex
INCLUSION = [  # (leaf index, tree size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def proof_of(ranges: list[tuple[int, int]], leaves: list[bytes]) -> list[bytes]:
    return [root(leaves[lo:hi]) for lo, hi in ranges]


def test_roots_of_the_reference_tree_at_every_size() -> None:
    assert EMPTY_ROOT == ROOTS[0] == root([])
    frontier = Frontier()
    for size in range(1, 9):
        assert root(LEAVES[:size]) == ROOTS[size]
        frontier.append(LEAVES[size - 1])
        assert frontier.root() == ROOTS[size]
    assert Frontier(8, [ROOTS[8]]).root() == ROOTS[8]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_reference(index: int, size: int, proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert proof_of(inclusion_ranges(index, size), LEAVES) == expected
    assert verify_inclusion(index, size, LEAVES[index], expected, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(old: int, new: int, proof: list[str]) -> None:
    expected = [h(p) for p in proof]
    assert proof_of(consistency_ranges(old, new), LEAVES) == expected
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], expected)


def test_every_proof_up_to_forty_leaves_verifies_and_its_corruptions_do_not() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(40)]
    roots = [root(leaves[:n]) for n in range(41)]
    frontier = Frontier()
    for size in range(1, 41):
        frontier.append(leaves[size - 1])
        assert frontier.root() == roots[size]
        for index in range(size):
            proof = proof_of(inclusion_ranges(index, size), leaves)
            assert verify_inclusion(index, size, leaves[index], proof, roots[size])
            assert not verify_inclusion(index, size, leaves[(index + 1) % 40], proof, roots[size])
            if size < 40:
                assert not verify_inclusion(index, size + 1, leaves[index], proof, roots[size + 1])
            if proof:
                assert not verify_inclusion(index, size, leaves[index], proof[:-1], roots[size])
                assert not verify_inclusion(index, size, leaves[index], [*proof, roots[size]], roots[size])
                flipped = [bytes([proof[0][0] ^ 8]) + proof[0][1:], *proof[1:]]
                assert not verify_inclusion(index, size, leaves[index], flipped, roots[size])
        for old in range(0, size + 1):
            proof = proof_of(consistency_ranges(old, size), leaves)
            assert verify_consistency(old, size, roots[old], roots[size], proof)
            if 0 < old < size:
                assert not verify_consistency(old, size, roots[old], roots[size - 1], proof)
                assert not verify_consistency(old, size, roots[size], roots[old], proof)
                assert not verify_consistency(old, size, roots[old], roots[size], proof[:-1])
                assert not verify_consistency(old, size, roots[old], roots[size], [*proof, roots[old]])
                assert not verify_consistency(size, old, roots[size], roots[old], proof)


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_ranges(3, 3)
    with pytest.raises(ValueError):
        consistency_ranges(4, 3)
    assert not verify_inclusion(0, 0, LEAVES[0], [], ROOTS[0])
    assert not verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])
    assert not verify_consistency(1, 1, ROOTS[1], ROOTS[2], [])


def test_a_range_is_its_complete_subtrees_folded() -> None:
    assert subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtrees(4, 7) == [(1, 2), (0, 6)]
    nodes = {(lvl, i): root(LEAVES[i << lvl:(i + 1) << lvl]) for lvl in range(4) for i in range(8 >> lvl)}
    for lo, hi in [(0, 7), (4, 7), (6, 8), (0, 8), (2, 3)]:
        assert fold([nodes[n] for n in subtrees(lo, hi)]) == root(LEAVES[lo:hi])


def test_the_canonical_record_is_length_prefixed_so_fields_cannot_shift() -> None:
    oid = uuid.UUID(int=1)
    a = canonical(7, oid.bytes, 1, "domain.x:X.Y", b"{}")
    assert a == (7).to_bytes(8, "big") + oid.bytes + (1).to_bytes(8, "big") + (12).to_bytes(4, "big") + b"domain.x:X.Y" + (2).to_bytes(4, "big") + b"{}"
    assert canonical(7, oid.bytes, 1, "domain.x:X.Y{", b"}") != a
    assert canonical(8, oid.bytes, 1, "domain.x:X.Y", b"{}") != a
