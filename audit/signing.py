"""Signed checkpoints: the tree head in the tlog checkpoint format, in a signed note, under Ed25519.

Formats of C2SP (signed-note, tlog-checkpoint), so that tools made for transparency logs can
read and check them too:

    <origin>                      names the deployment
    <tree size>
    <root hash, base64>
    time <RFC 3339 UTC>           extension lines: when it was taken,
    position <log position>       and the last log position in the tree (0 if none)

    — <key name> <base64(4-byte key hash || Ed25519 signature of the lines above)>

The private key is a file in the data folder, readable by us only, made on first use; it is
never in Redis or the log. Its public key is published as a verifier key,
`<name>+<key hash, hex>+<base64(0x01 || public key)>`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "ledger.ed25519"
ED25519 = b"\x01"  # the signed-note algorithm byte
DASH = "\u2014 "


class Head(NamedTuple):
    """What a checkpoint says."""

    origin: str
    size: int
    root: bytes
    time: datetime
    position: int


def body(head: Head) -> str:
    at = head.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{head.origin}\n{head.size}\n{base64.b64encode(head.root).decode()}\ntime {at}\nposition {head.position}\n"


def parse_body(text: str) -> Head:
    """The head a note's text states; ValueError if it is not a checkpoint of ours."""
    lines = text.split("\n")
    if len(lines) != 6 or lines[5] != "" or not lines[3].startswith("time ") or not lines[4].startswith("position "):
        raise ValueError("not a checkpoint: origin, size, root, time and position lines expected")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32 or not lines[1].isdigit():
        raise ValueError("not a checkpoint: bad size or root hash")
    at = datetime.strptime(lines[3][5:], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return Head(lines[0], int(lines[1]), root, at, int(lines[4][9:]))


def key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


class Verifier(NamedTuple):
    name: str
    public: bytes  # the raw 32-byte Ed25519 key

    @property
    def hash(self) -> bytes:
        return key_hash(self.name, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.hash.hex()}+{base64.b64encode(ED25519 + self.public).decode()}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, _, rest = vkey.strip().partition("+")
        hash_hex, _, key = rest.partition("+")
        raw = base64.b64decode(key, validate=True)
        if not name or raw[:1] != ED25519 or len(raw) != 33:
            raise ValueError("not an Ed25519 verifier key (name+hash+base64 key)")
        verifier = cls(name, raw[1:])
        if verifier.hash.hex() != hash_hex:
            raise ValueError("the verifier key's hash does not match its name and key")
        return verifier

    def open(self, note: str) -> str | None:
        """The text of `note` if it carries a good signature by this key, else None."""
        text, sep, signatures = note.rpartition("\n\n")
        if not sep:
            return None
        for line in signatures.splitlines():
            if not line.startswith(DASH):
                continue
            name, _, sig = line[len(DASH):].partition(" ")
            try:
                raw = base64.b64decode(sig, validate=True)
            except ValueError:
                continue
            if name != self.name or raw[:4] != self.hash:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(self.public).verify(raw[4:], (text + "\n").encode())
            except InvalidSignature:
                return None
            return text + "\n"
        return None


class Signer:
    """Signs notes with the deployment's key, made in `folder` on first use."""

    def __init__(self, folder: Path, name: str) -> None:
        self.key = load_or_make_key(folder / KEY_FILE)
        public = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = Verifier(name, public)

    def sign(self, text: str) -> str:
        assert text.endswith("\n")
        signature = self.key.sign(text.encode())
        return f"{text}\n{DASH}{self.verifier.name} {base64.b64encode(self.verifier.hash + signature).decode()}\n"


def load_or_make_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        # Written whole under another name, then moved into place: never seen half-written.
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(draft, path)  # not replace: a key another process made meanwhile wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key
