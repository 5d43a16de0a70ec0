"""Ed25519 keys for ledger checkpoints: the signing key lives outside the database.

`LEDGER_SIGNING_KEY` is either a PEM private key (`openssl genpkey -algorithm ed25519`,
PKCS#8; `\\n` may stand for line breaks in a one-line variable) or the base64 of the raw
32-byte seed. `LEDGER_PUBLIC_KEY` (PEM, or base64 of the raw 32 bytes) is what an auditor
who must not hold the signing key trusts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class LedgerKeyError(ValueError):
    """The key text is not an Ed25519 key; the message says which form was expected."""


def _text(value: str) -> bytes:
    return value.strip().replace("\\n", "\n").encode()


def signing_key(value: str) -> Ed25519PrivateKey:
    text = _text(value)
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as error:
            raise LedgerKeyError(f"LEDGER_SIGNING_KEY is not a readable PEM key: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerKeyError("LEDGER_SIGNING_KEY is a PEM key, but not an Ed25519 one")
        return key
    seed = _base64(text, "LEDGER_SIGNING_KEY")
    if len(seed) != 32:
        raise LedgerKeyError("LEDGER_SIGNING_KEY in base64 must hold the 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key(value: str) -> Ed25519PublicKey:
    text = _text(value)
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, TypeError) as error:
            raise LedgerKeyError(f"not a readable PEM public key: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise LedgerKeyError("the PEM public key is not an Ed25519 one")
        return key
    raw = _base64(text, "the public key")
    if len(raw) != 32:
        raise LedgerKeyError("an Ed25519 public key in base64 holds 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """`ed25519:` and the first 16 hex digits of the SHA-256 of the raw public key."""
    return "ed25519:" + hashlib.sha256(raw_public(key)).hexdigest()[:16]


def verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _base64(text: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LedgerKeyError(f"{what} is neither PEM nor base64") from None
