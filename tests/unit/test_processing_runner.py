"""The runner's lanes on a real (SQLite) log: whole saves per batch, a bad event stops only
its own lane and only at itself, and waiting on a lane is bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from sora2.adapters.event_store import sqlite_env
from sora2.application.event_log import EventLog
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.processor import PositionMoved, Processor, Stored
from sora2.application.processing.runner import Lane, ProcessingRunner
from sora2.domain.credits.ledger import CreditLedger

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder(Processor):
    """Remembers what it was handed; refuses events whose reward is `poison`."""

    def __init__(self, name: str = "recorder", poison: int | None = None) -> None:
        self.name = name
        self.poison = poison
        self.batches: list[list[int]] = []
        self._position = 0
        self.lock = threading.Lock()

    def position(self) -> int:
        return self._position

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        for stored in batch:
            if self.poison is not None and getattr(stored.event, "amount", None) == self.poison:
                raise ValueError("cannot apply this one")
        with self.lock:
            self.batches.append([s.position for s in batch])
            self._position = batch[-1].position


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    event_log = EventLog(env=sqlite_env(tmp_path / "log.sqlite"))
    yield event_log
    event_log.close()


def save_ledger(log: EventLog, *rewards: int) -> int:
    """One save: a new ledger and its rewards (1 + len(rewards) events)."""
    ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
    for amount in rewards:
        ledger.reward(amount, "test", NOW)
    return log.commit(ledger)  # type: ignore[return-value]


def test_a_lane_hands_over_everything_up_to_the_head_in_one_batch(log: EventLog) -> None:
    save_ledger(log, 1, 2)
    head = save_ledger(log, 3)
    recorder = Recorder()
    lane = Lane(recorder, LogReader(log))
    assert lane.catch_up() == head
    assert recorder.batches == [list(range(1, head + 1))]  # both saves, one transaction
    assert lane.catch_up() == 0


def test_a_long_backlog_is_applied_in_pages(log: EventLog) -> None:
    for _ in range(10):
        save_ledger(log, 1)
    recorder = Recorder()
    lane = Lane(recorder, LogReader(log), batch_size=6)
    assert lane.catch_up() == 20
    assert [len(b) for b in recorder.batches] == [6, 6, 6, 2]


def test_a_bad_event_stops_its_lane_at_itself_and_no_other(log: EventLog) -> None:
    first = save_ledger(log, 1)
    bad = save_ledger(log, 666)  # the Opened event, then the poisoned reward
    save_ledger(log, 2)
    picky, easy = Recorder("picky", poison=666), Recorder("easy")
    lanes = [Lane(picky, LogReader(log)), Lane(easy, LogReader(log))]
    for lane in lanes:
        lane.catch_up()
    assert picky.position() == bad - 1  # everything before it, including its save's first
    assert lanes[0].stuck is not None and lanes[0].stuck.position == bad
    assert "Rewarded" in lanes[0].stuck.topic and "ValueError" in lanes[0].stuck.error
    assert easy.position() == log.position and lanes[1].stuck is None
    assert first < bad

    picky.poison = None  # fixed (a new release): the next try moves on
    lanes[0].catch_up()
    assert picky.position() == log.position and lanes[0].stuck is None


def test_waiting_is_woken_by_the_lane_and_bounded(log: EventLog) -> None:
    recorder = Recorder()
    lane = Lane(recorder, LogReader(log), poll=5.0)  # only a poke wakes it quickly
    runner = ProcessingRunner(log, [lane])
    runner.start()
    try:
        position = save_ledger(log, 1)  # this process's commit pokes the lane
        started = time.monotonic()
        assert lane.wait_for(position, timeout=10)
        assert time.monotonic() - started < 4
        assert not lane.wait_for(position + 100, timeout=0.2)  # never reached: bounded
    finally:
        runner.stop()


class Watched(LogReader):
    """A reader that tells when it is asked for the page after a position."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(log)
        self.asked: dict[int, threading.Event] = {}

    def asked_after(self, after: int) -> threading.Event:
        return self.asked.setdefault(after, threading.Event())

    def read(self, after: int, limit: int, up_to: int | None = None) -> list[Stored]:
        self.asked_after(after).set()
        return super().read(after, limit, up_to)


class Slow(Recorder):
    """Applies a page only once the next one has been asked for (or gives up waiting)."""

    reads_ahead = True

    def __init__(self, reader: Watched) -> None:
        super().__init__()
        self.reader = reader
        self.overlapped: list[bool] = []

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        self.overlapped.append(self.reader.asked_after(batch[-1].position).wait(timeout=2))
        super().process(after, batch)


def run_to_head(log: EventLog, lane: Lane) -> None:
    """Run the lane on its own thread (the only one that reads ahead) until it is at the head."""
    runner = ProcessingRunner(log, [lane])
    runner.start()
    try:
        assert lane.wait_for(LogReader(log).head(), timeout=30)
    finally:
        runner.stop()


def test_a_lane_reads_the_next_page_of_a_backlog_while_it_applies_this_one(log: EventLog) -> None:
    for _ in range(10):
        save_ledger(log, 1)
    reader = Watched(log)
    slow = Slow(reader)
    lane = Lane(slow, reader, batch_size=6)
    run_to_head(log, lane)
    assert [len(b) for b in slow.batches] == [6, 6, 6, 2]
    assert slow.overlapped[:3] == [True, True, True]  # the short last page is the head


class Overtaken(Recorder):
    """Another process applies events 1..3 while this one is handed 1..6."""

    reads_ahead = True

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        if after == 0:
            self._position = 3
            raise PositionMoved
        super().process(after, batch)


def test_a_page_read_ahead_is_dropped_when_the_lane_goes_on_from_elsewhere(log: EventLog) -> None:
    for _ in range(10):
        save_ledger(log, 1)
    overtaken = Overtaken()
    lane = Lane(overtaken, LogReader(log), batch_size=6)
    run_to_head(log, lane)
    assert overtaken.batches == [[4, 5, 6, 7, 8, 9], list(range(10, 16)), list(range(16, 21))]


class Lingering(Watched):
    """A reader whose read-ahead (any read off the lane's thread) takes a while."""

    def __init__(self, log: EventLog) -> None:
        super().__init__(log)
        self.reading_ahead = 0
        self.read_ahead_done = 0

    def read(self, after: int, limit: int, up_to: int | None = None) -> list[Stored]:
        if threading.current_thread().name == "lane-read-ahead":
            self.reading_ahead += 1
            threading.Event().wait(0.5)  # long enough for stop() to get past a lane's join
            page = super().read(after, limit, up_to)
            self.read_ahead_done += 1
            return page
        return super().read(after, limit, up_to)


def test_stopping_waits_for_a_read_ahead_in_flight(log: EventLog) -> None:
    """A SQLite connection closed under a running statement crashes the process: the store
    closes after `stop()`, so no read may still be running then."""
    for _ in range(10):
        save_ledger(log, 1)
    reader = Lingering(log)
    lane = Lane(Slow(reader), reader, batch_size=6)
    runner = ProcessingRunner(log, [lane])
    runner.start()
    assert reader.asked_after(6).wait(timeout=30)  # the first read ahead has begun
    runner.stop()
    assert reader.reading_ahead >= 1
    assert reader.read_ahead_done == reader.reading_ahead


def test_catching_up_in_the_callers_thread_reads_nothing_ahead(log: EventLog) -> None:
    """Nothing joins a thread started for a caller (a CLI command, a query catching up)."""
    for _ in range(10):
        save_ledger(log, 1)
    reader = Lingering(log)
    lane = Lane(Slow(reader), reader, batch_size=6)
    assert lane.catch_up() == 20
    assert reader.reading_ahead == 0
