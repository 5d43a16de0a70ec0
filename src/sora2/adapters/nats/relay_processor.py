"""The NATS relay as a processor of the runner: its lane hands it batches to publish.

nats-py is asyncio; the lane is a thread. The relay's connection lives on an event loop of
its own, in a thread of its own, so the client keeps its pings and reconnects between
batches. The lane maps a batch to messages itself (a page at a time, while the next page is
read ahead), hands it to that loop and goes on to map the next one while it is sent; the
acks come in and the position is tracked meanwhile (at most the relay's window of pages on
the wire). So the lane's position counts events sent; the tracked position, where a restart
resumes, only moves past acknowledged ones.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any

from sora2.adapters.nats.relay import RELAY_NAME, NatsRelay
from sora2.application.processing.processor import PositionMoved, Processor, Stored

PUBLISH_TIMEOUT = 60.0

log = logging.getLogger("sora2.nats")


class RelayProcessor(Processor):
    name = RELAY_NAME
    retry_on_poke = False  # NATS away: back off, whatever the traffic
    reads_records = True  # maps the stored JSON itself, without building the events
    reads_ahead = True  # mapping and publishing a page is Python: the next read overlaps it

    def __init__(self, relay: NatsRelay) -> None:
        self.relay = relay
        self.name = relay.name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nats-relay-loop", daemon=True
        )
        self._thread.start()
        self._handing: Future[int] | None = None  # the batch being put on the wire

    async def ping(self, timeout: float) -> None:
        await self.relay.ping(timeout)

    def start(self) -> None:
        """Connect now (else the first batch does)."""
        self._run(self.relay.start())

    def position(self) -> int:
        return self.relay.position

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        messages = self.relay.outgoing_records(batch)  # in the lane's thread
        self._sent()
        handing = asyncio.run_coroutine_threadsafe(
            self.relay.publish_stored(after, messages), self._loop
        )
        if self.relay.pipelining:
            self._handing = handing  # the lane reads the next batch while this one goes out
        else:  # connecting, or one batch at a time after a failure: its errors are its own
            handing.result(timeout=PUBLISH_TIMEOUT)

    def check(self) -> None:
        """A batch handed over earlier failed: the lane reads again from our position.

        A handover still under way is not waited for: the lane reads the next page while it
        goes out, and `process` finds out before handing that page over."""
        if self._handing is not None and self._handing.done():
            self._sent()
        if self.relay.failed:
            self._run(self.relay.resume())
            raise PositionMoved

    def settle(self) -> None:
        """Wait until every batch handed over is acknowledged and tracked (or failed: the
        lane's next step finds out)."""
        try:
            self._sent()
        except PositionMoved:
            pass
        self._run(self.relay.settled())

    def _sent(self) -> None:
        """Wait until the batch handed over before is on the wire. If that failed, the lane
        reads again from our position (the relay goes one batch at a time from then on)."""
        handing, self._handing = self._handing, None
        if handing is None:
            return
        try:
            handing.result(timeout=PUBLISH_TIMEOUT)
        except PositionMoved:
            raise
        except Exception as error:
            handing.cancel()
            log.warning("NATS relay: handing a batch over failed: %s", error)
            raise PositionMoved from error

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=PUBLISH_TIMEOUT)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._sent()
        except PositionMoved:
            pass  # logged; what was acked is tracked, the rest goes out on the next start
        asyncio.run_coroutine_threadsafe(self.relay.close(), self._loop).result(
            timeout=PUBLISH_TIMEOUT
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
