"""A page of publishes as HPUB frames, handed to the NATS connection in one write.

`nc.publish` frames each message in Python (every header key matched against a pattern,
every value translated for CR/LF) and queues it on its own: half of the relay's publishing
CPU. The relay's headers are its own (event ids and positions, no CR or LF possible) and its
subjects are checked once each, so it frames a page itself and queues it as one command,
through the client's own outgoing buffer with `publish`'s checks: what `publish` ends in
(`_send_command`, then a kick of the flusher; nats-py 2.16).
"""

from __future__ import annotations

import re

from nats.aio.client import Client as NATS
from nats.errors import ConnectionClosedError, ConnectionDrainingError, OutboundBufferLimitError

_NOT_IN_A_SUBJECT = re.compile(r"\s")  # nats-py refuses a space, tab, CR or LF


def check_subject(subject: str) -> str:
    """The subject, if a frame may carry it: a space or line break would end the frame's
    first line early (and let a subject inject protocol commands)."""
    if not subject or _NOT_IN_A_SUBJECT.search(subject):
        raise ValueError(f"not a subject to publish on: {subject!r}")
    return subject


def hpub(subject: str, reply: str, headers: str, payload: bytes) -> bytes:
    """One message's frame: `headers` is its header lines (`Name: value\\r\\n` each, ASCII)."""
    block = f"NATS/1.0\r\n{headers}\r\n"
    size = len(block)
    if reply:
        line = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n"
    else:
        line = f"HPUB {subject} {size} {size + len(payload)}\r\n"
    return b"".join(((line + block).encode(), payload, b"\r\n"))


async def write(nc: NATS, frames: list[bytes], payload_bytes: int) -> None:
    """Queue the frames on the connection as one command, as `nc.publish` queues one; raises
    as it does (closed, draining, or disconnected with the reconnect buffer full)."""
    if nc.is_closed:
        raise ConnectionClosedError
    if nc.is_draining_pubs:
        raise ConnectionDrainingError
    command = b"".join(frames)
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or len(command) + nc._pending_data_size > nc._max_pending_size
    ):
        raise OutboundBufferLimitError
    nc.stats["out_msgs"] += len(frames)
    nc.stats["out_bytes"] += payload_bytes
    await nc._send_command(command)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()
