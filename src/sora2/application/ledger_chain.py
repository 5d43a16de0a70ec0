"""The hash chain over the event log: what makes an edit of stored history evident.

Every stored event gets a link: the SHA-256 of the previous link's hash followed by the
event exactly as stored (its position, version, originator id, topic and state bytes).
The links are written in the transaction that stores the events, in log order, so the
last link's hash stands for the whole log up to it: changing, inserting or removing any
event before it changes that hash. A signed checkpoint of the head (`sora2 ledger
checkpoint`) kept outside the database is what an auditor later proves the log against;
the database alone cannot prove itself, since whoever can rewrite events can rewrite
links too (docs/ledger.md says what each check proves).

The PostgreSQL adapter computes the same bytes in SQL (`adapters/ledger_chain.py`);
a test holds the two equal.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

GENESIS = bytes(32)  # the "previous hash" of the first event
_pack = struct.Struct(">qq").pack
_sha256 = hashlib.sha256
_NUL = b"\x00"


@dataclass(frozen=True)
class ChainLink:
    position: int  # the event's notification id
    previous: int  # the notification id of the event before it (0 for the first)
    hash: bytes


def link_hash(
    previous: bytes, position: int, originator: bytes, version: int, topic: str, state: bytes
) -> bytes:
    """`previous` ‖ position ‖ version (8 bytes each, big-endian) ‖ the originator's 16
    bytes ‖ the topic in UTF-8 ‖ NUL ‖ the state, hashed with SHA-256."""
    return _sha256(
        b"".join((previous, _pack(position, version), originator, topic.encode(), _NUL, state))
    ).digest()
