"""The verifiable log's public routes: checkpoints, the key that signs them, and proofs.

Anonymous and read-only (docs/audit.md says how to check what they answer by hand). A
respondent proves their response is in the log with their receipt: the receipt is the secret,
so it travels in a POST body, is rate-limited per client (a bucket of its own), and the answer holds only
the leaf, its proof and the checkpoint, nothing about the response.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from api.problems import documented, problem
from audit.ledger import Checkpoint, Ledger, records, unbound
from domain.consultations.service import hash_receipt
from domain.errors import FieldError, InvalidInput
from runtime import System

log = logging.getLogger(__name__)

PUBLIC = {"exclude_from_auth": True}
PAGE = 100


class CheckpointPage(msgspec.Struct):
    checkpoints: list[Checkpoint]  # oldest first; `root` in base64
    next: Annotated[int | None, msgspec.Meta(description="Pass as `?after=` for the next page; null on the last")]


class Key(msgspec.Struct):
    vkey: Annotated[str, msgspec.Meta(description="The verifier key, as signed notes write it: name+key hash+base64(0x01 || key)")]
    name: str
    public_key: Annotated[bytes, msgspec.Meta(description="The raw Ed25519 public key, base64")]
    algorithm: str
    keys: Annotated[list[str], msgspec.Meta(description="Every verifier key that has signed checkpoints, oldest first")]


class ConsistencyProof(msgspec.Struct):
    from_: int = msgspec.field(name="from")
    to: int
    proof: list[bytes]  # base64 hashes, RFC 9162 2.1.4 order


class ReceiptIn(msgspec.Struct, forbid_unknown_fields=True):
    receipt: Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="The receipt given when the response was submitted")]


class InclusionProof(msgspec.Struct):
    leaf_index: int
    leaf_hash: bytes  # base64
    checkpoint: Checkpoint
    proof: list[bytes]  # base64 hashes, RFC 9162 2.1.3 order


def _ledger(system: System) -> Ledger:
    return system.ledger


def _latest(ledger: Ledger) -> Checkpoint:
    latest = ledger.latest()
    if latest is None:
        raise problem(404, "no-checkpoint", "No checkpoint yet", "The log has no signed checkpoint yet; the checkpointer takes one when it starts.")
    return latest


@get(
    "/audit/checkpoints", sync_to_thread=True, opt=PUBLIC,
    responses=documented(400, 409), summary="The signed checkpoints, oldest first",
)
def checkpoints(
    system: NamedDependency[System],
    after: Annotated[int, QueryParameter(ge=0, description="Checkpoints after this sequence number (`next` of the previous page)")] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="At most this many")] = PAGE,
) -> CheckpointPage:
    found = _ledger(system).checkpoints(after, limit + 1)
    return CheckpointPage(found[:limit], found[limit - 1].seq if len(found) > limit else None)


@get(
    "/audit/checkpoints/latest", sync_to_thread=True, opt=PUBLIC,
    responses=documented(400, 404, 409), summary="The latest signed checkpoint",
)
def latest(system: NamedDependency[System]) -> Checkpoint:
    return _latest(_ledger(system))


@get("/audit/key", sync_to_thread=True, opt=PUBLIC, responses=documented(400, 404, 409), summary="The key that signs checkpoints")
def key(system: NamedDependency[System]) -> Key:
    verifiers = _ledger(system).verifiers()
    if not verifiers:
        raise problem(404, "no-checkpoint", "No checkpoint yet", "No key has signed a checkpoint yet; the checkpointer takes one when it starts.")
    current, keys = verifiers[-1], [v.vkey for v in verifiers]
    return Key(current.vkey, current.name, current.public, "Ed25519", keys)


@get(
    "/audit/consistency", sync_to_thread=True, opt=PUBLIC,
    responses=documented(400, 404, 409, 422), summary="A consistency proof between two checkpointed tree sizes",
)
def consistency(
    system: NamedDependency[System],
    old: Annotated[int, QueryParameter(name="from", ge=0, description="The older tree size")],
    new: Annotated[int, QueryParameter(name="to", ge=0, description="The newer tree size, at most the latest checkpoint's")],
) -> ConsistencyProof:
    ledger = _ledger(system)
    size = _latest(ledger).size
    errors = []
    if new > size:
        errors.append(FieldError("to", f"The latest checkpoint's tree has {size} leaves; ask for a size up to that."))
    if old > new:
        errors.append(FieldError("from", "The older size cannot be larger than the newer one."))
    if errors:
        raise InvalidInput(errors)
    return ConsistencyProof(old, new, ledger.consistency(old, new))


@post(
    "/audit/inclusion", status_code=200, sync_to_thread=True, opt={**PUBLIC, "rate_limit": "proofs"},
    responses=documented(400, 404, 409, 413, 422, 429, 503), summary="Prove a response is in the log, by its receipt",
)
def inclusion(data: JSONBody[ReceiptIn], system: NamedDependency[System]) -> InclusionProof:
    ledger = _ledger(system)
    receipt_hash = hash_receipt(data.receipt)
    leaf = ledger.leaf_of(receipt_hash)
    if leaf is None:
        detail = "No response with this receipt is in the ledger. A response just submitted is chained within seconds: try again shortly."
        raise problem(404, "receipt-not-found", "Receipt not found", detail)
    index, position, leaf_hash = leaf
    found = records(system.app.recorder, position - 1, 1)
    why = unbound(found[0] if found and found[0][0] == position else None, position, receipt_hash, leaf_hash)
    if why is not None:
        log.error("audit: leaf %d: %s", index, why)
        detail = f"The ledger or the log was altered: {why}. Keep your receipt; `agora audit verify` names what changed."
        raise problem(409, "ledger-inconsistent", "The ledger does not match the log", detail)
    checkpoint = _latest(ledger)
    if index >= checkpoint.size:
        every = round(system.settings.checkpoint_seconds)
        detail = f"The response is chained but no checkpoint covers it yet; one is signed at least every {every} seconds. Try again then."
        raise problem(503, "not-checkpointed-yet", "Not checkpointed yet", detail, headers={"Retry-After": str(every)})
    return InclusionProof(index, leaf_hash, checkpoint, ledger.inclusion(index, checkpoint.size))


routes = [checkpoints, latest, key, consistency, inclusion]
