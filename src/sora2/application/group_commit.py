"""Group commit: the saves of concurrent commands go to the database in one transaction.

The PostgreSQL recorder locks the events table for each save, so saves queue one behind
the other however many threads wait, each paying its own round trips and its own commit.
Here the first command to arrive saves; commands that arrive meanwhile queue up, and the
next of them saves everything queued in one insert (the library saves many aggregates'
events atomically). When a batch fails — one member lost a version race, say — its
members are saved one by one, so one conflict never fails its neighbours. Every command
returns only once its own events are committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Recording

MAX_BATCH = 100  # commands per transaction

Record = Callable[[ProcessingEvent[Any]], list[Recording[Any]]]


@dataclass(eq=False)
class _Slot:
    pending: ProcessingEvent[Any]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    recordings: list[Recording[Any]] | None = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, record: Record, max_batch: int = MAX_BATCH) -> None:
        self.record = record  # saves one ProcessingEvent in one transaction
        self.max_batch = max_batch
        self._queue: list[_Slot] = []
        self._saving = False
        self._lock = threading.Lock()

    def save(self, pending: ProcessingEvent[Any]) -> list[Recording[Any]]:
        """Commit the events (with any queued beside them); their recordings."""
        slot = _Slot(pending)
        with self._lock:
            self._queue.append(slot)
            lead = not self._saving
            self._saving = True
        if not lead:
            slot.wake.wait()  # saved by another thread, or our turn to save
        if not slot.done:
            self._save_next_batch()
        if slot.error is not None:
            raise slot.error
        assert slot.recordings is not None
        return slot.recordings

    def _save_next_batch(self) -> None:
        with self._lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        try:
            self._save(batch)
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].wake.set()  # the next in line saves the next batch
                else:
                    self._saving = False
            for slot in batch:
                slot.done = True
                slot.wake.set()

    def _save(self, batch: Sequence[_Slot]) -> None:
        """Commands that save the same aggregate cannot share a transaction (only one of
        them can win its version): each round takes those that touch distinct aggregates."""
        rest = list(batch)
        while rest:
            group, later, taken = [], [], set()
            for slot in rest:
                keys = slot.pending.aggregates.keys()
                if taken & keys:
                    later.append(slot)
                else:
                    group.append(slot)
                    taken |= keys
            self._save_group(group)
            rest = later

    def _save_group(self, group: Sequence[_Slot]) -> None:
        if len(group) > 1:
            merged: ProcessingEvent[Any] = ProcessingEvent()
            for slot in group:
                merged.aggregates.update(slot.pending.aggregates)
                merged.events.extend(slot.pending.events)
            try:
                recordings = self.record(merged)
            except Exception:
                pass  # a member lost a version race (or a fault): each on its own below
            else:
                start = 0
                for slot in group:
                    end = start + len(slot.pending.events)
                    slot.recordings = recordings[start:end]
                    start = end
                return
        for slot in group:
            try:
                slot.recordings = self.record(slot.pending)
            except BaseException as error:
                slot.error = error
