"""The NATS relay as a processor of the runner: its lane hands it batches to publish.

nats-py is asyncio; the lane is a thread. The relay's connection lives on an event loop of
its own, in a thread of its own, so the client keeps its pings and reconnects between
batches; the lane waits for each publish to finish there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from sora2.adapters.nats.relay import RELAY_NAME, NatsRelay
from sora2.application.processing.processor import Processor, Stored

PUBLISH_TIMEOUT = 60.0


class RelayProcessor(Processor):
    name = RELAY_NAME
    retry_on_poke = False  # NATS away: back off, whatever the traffic

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

    def position(self) -> int:
        return self.relay.position

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self.relay.publish_stored(list(batch)), self._loop
        )
        future.result(timeout=PUBLISH_TIMEOUT)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.relay.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
