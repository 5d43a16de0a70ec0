"""The relay's lane hand-over, with a relay that sends when told: the lane reads the next page
while the one before goes out, and a failure of that one still stops the next page."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from sora2.adapters.nats.relay_processor import RelayProcessor
from sora2.application.processing.processor import PositionMoved, Stored


class GatedRelay:
    """Sends a batch once its gate opens; one batch can be told to fail (as `publish_stored`
    does after an earlier page failed)."""

    name = "gated"
    pipelining = True
    failed = False

    def __init__(self) -> None:
        self.gates: dict[int, threading.Event] = {}
        self.handed: list[int] = []  # the `after` of each batch handed over
        self.sent: list[int] = []
        self.failing: int | None = None

    def gate(self, after: int) -> threading.Event:
        return self.gates.setdefault(after, threading.Event())

    def outgoing_records(self, batch: list[Stored]) -> list[Stored]:
        return batch

    async def publish_stored(self, after: int, batch: list[Any]) -> int:
        self.handed.append(after)
        await asyncio.to_thread(self.gate(after).wait, 5)
        if after == self.failing:
            raise PositionMoved
        self.sent.append(after)
        return len(batch)

    async def settled(self) -> None:
        return None

    async def close(self) -> None:
        return None


def page(after: int) -> list[Stored]:
    return [Stored(after + 1, "topic", None)]


def test_the_lane_reads_on_while_a_batch_goes_out_and_a_failure_stops_the_next() -> None:
    relay = GatedRelay()
    processor = RelayProcessor(relay)  # type: ignore[arg-type]
    try:
        processor.process(0, page(0))
        processor.check()  # returns at once: the batch is still going out
        assert relay.sent == []
        relay.gate(0).set()
        relay.failing = 1
        processor.process(1, page(1))  # waits until the first one is out, hands this one
        assert relay.sent == [0]
        relay.gate(1).set()
        with pytest.raises(PositionMoved):  # found before the next batch is handed over
            processor.process(2, page(2))
        assert relay.handed == [0, 1]
        processor.check()  # nothing left to report
    finally:
        processor.close()


def test_a_finished_hand_over_that_failed_is_reported_before_the_next_read() -> None:
    relay = GatedRelay()
    relay.failing = 0
    relay.gate(0).set()
    processor = RelayProcessor(relay)  # type: ignore[arg-type]
    try:
        processor.process(0, page(0))
        deadline = time.monotonic() + 5
        with pytest.raises(PositionMoved):  # once it is over
            while time.monotonic() < deadline:
                processor.check()
                time.sleep(0.01)
    finally:
        processor.close()
