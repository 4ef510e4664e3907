"""Governance audit: the verifiable log (Merkle tree, signed checkpoints, proofs, offline verification)."""
