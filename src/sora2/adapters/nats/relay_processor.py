"""The NATS relay as a processor of the runner: its lane hands it batches to publish.

nats-py is asyncio; the lane is a thread. The relay's connection lives on an event loop of
its own, in a thread of its own, so the client keeps its pings and reconnects between
batches. The lane maps a batch to messages itself, hands it to that loop and goes on to read
the next one as soon as it is sent: the acks come in and the position is tracked meanwhile
(at most the relay's window of pages on the wire). So the lane's position counts events
sent; the tracked position, where a restart resumes, only moves past acknowledged ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from sora2.adapters.nats.relay import RELAY_NAME, NatsRelay
from sora2.application.processing.processor import PositionMoved, Processor, Stored

PUBLISH_TIMEOUT = 60.0


class RelayProcessor(Processor):
    name = RELAY_NAME
    retry_on_poke = False  # NATS away: back off, whatever the traffic
    reads_records = True  # maps the stored JSON itself, without building the events

    def __init__(self, relay: NatsRelay) -> None:
        self.relay = relay
        self.name = relay.name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nats-relay-loop", daemon=True
        )
        self._thread.start()

    async def ping(self, timeout: float) -> None:
        await self.relay.ping(timeout)

    def start(self) -> None:
        """Connect now (else the first batch does)."""
        self._run(self.relay.start())

    def position(self) -> int:
        return self.relay.position

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        messages = [self.relay.outgoing_record(stored) for stored in batch]  # lane's thread
        self._run(self.relay.publish_stored(after, messages))

    def check(self) -> None:
        """A batch handed over earlier failed: the lane reads again from our position."""
        if self.relay.failed:
            self._run(self.relay.resume())
            raise PositionMoved

    def settle(self) -> None:
        """Wait until every batch handed over is acknowledged and tracked (or failed: the
        lane's next step finds out)."""
        self._run(self.relay.settled())

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=PUBLISH_TIMEOUT)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.relay.close(), self._loop).result(
            timeout=PUBLISH_TIMEOUT
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
