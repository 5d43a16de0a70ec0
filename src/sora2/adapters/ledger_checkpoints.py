"""Signed checkpoints of the log's hash chain: written to a file and to NATS JetStream.

A checkpoint is `{"checkpoint": {log, position, hash, signedAt, key}, "publicKey",
"signature"}`; the signature is Ed25519 over the checkpoint object as canonical JSON
(sorted keys, no spaces). It is kept where whoever can write the database cannot reach:
a file the operator archives, and a JetStream stream of its own (`<NATS_STREAM>_CHECKPOINTS`,
subject `<prefix>-checkpoints.ledger`), apart from the event stream so the relay's
"last message" stays an event.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sora2.adapters.security.ledger_keys import fingerprint, public_key, raw_public, verifies
from sora2.application.ledger_chain import ChainLink


class CheckpointUnreadable(ValueError):
    """The file is not a checkpoint this release can read; the message says why."""


@dataclass(frozen=True)
class SignedCheckpoint:
    log: str
    position: int
    hash: bytes
    signed_at: str
    key: Ed25519PublicKey  # the key the file names
    signature: bytes
    document: dict[str, Any]

    def signature_valid(self, key: Ed25519PublicKey | None = None) -> bool:
        return verifies(key or self.key, self.signature, canonical(self.document["checkpoint"]))


def canonical(checkpoint: dict[str, Any]) -> bytes:
    return json.dumps(checkpoint, sort_keys=True, separators=(",", ":")).encode()


def sign(head: ChainLink, key: Ed25519PrivateKey, log: str) -> dict[str, Any]:
    public = key.public_key()
    checkpoint = {
        "log": log,
        "position": head.position,
        "hash": head.hash.hex(),
        "signedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "key": fingerprint(public),
    }
    return {
        "checkpoint": checkpoint,
        "publicKey": base64.b64encode(raw_public(public)).decode(),
        "signature": base64.b64encode(key.sign(canonical(checkpoint))).decode(),
    }


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read(path: Path) -> SignedCheckpoint:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = document["checkpoint"]
        return SignedCheckpoint(
            log=str(checkpoint["log"]),
            position=int(checkpoint["position"]),
            hash=bytes.fromhex(checkpoint["hash"]),
            signed_at=str(checkpoint["signedAt"]),
            key=public_key(document["publicKey"]),
            signature=base64.b64decode(document["signature"], validate=True),
            document=document,
        )
    except FileNotFoundError:
        raise CheckpointUnreadable(f"no such file: {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointUnreadable(
            f"{path} is not a ledger checkpoint ({type(error).__name__}: {error})"
        ) from None


def publish(document: dict[str, Any], nats_url: str, stream: str, prefix: str) -> str:
    """Publish to JetStream (the stream is made if missing); the subject it went to."""
    subject = f"{prefix}-checkpoints.ledger"
    asyncio.run(_publish(document, nats_url, f"{stream}_CHECKPOINTS", subject))
    return subject


async def _publish(document: dict[str, Any], nats_url: str, stream: str, subject: str) -> None:
    from nats.aio.client import Client as NATS
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    nc = NATS()
    await nc.connect(nats_url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream(timeout=10)
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
        checkpoint = document["checkpoint"]
        await js.publish(
            subject,
            json.dumps(document).encode(),
            headers={"Nats-Msg-Id": f"{checkpoint['position']}:{checkpoint['hash'][:32]}"},
        )
    finally:
        await nc.close()
