"""The event log: one eventsourcing Application holding every aggregate.

One log means one notification sequence (what followers track) and atomic saves
across aggregates (a video and its ledger change together or not at all).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError, Recording

from sora2.application.group_commit import GroupCommit
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import NotFound
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

LOG_NAME = "sora2"
log = logging.getLogger("sora2.log")


class EventLog(Application[UUID]):
    name = LOG_NAME
    # Histories that grow with use (a ledger entry per video, a rotation per refresh) load
    # from their latest snapshot plus at most 9 events (~25 us each on this machine kind),
    # so a command costs the same for a user with 10k entries as for a new one
    # (bench/bench_history.py; at 100 it would cost 3x). A snapshot is one small row.
    snapshotting_intervals = {CreditLedger: 10, Session: 10, User: 10, Video: 10}

    # Aggregates stay in memory between commands: a load then reads only the events saved
    # since (the library's fast-forward, one query, by any process), not the snapshot and
    # the events after it. Loads are deep copies, so a command that fails leaves no trace.
    CACHE = {"AGGREGATE_CACHE_MAXSIZE": "20000", "AGGREGATE_CACHE_FASTFORWARD": "y"}

    def __init__(self, env: Any = None) -> None:
        super().__init__({**self.CACHE, **(env or {})})
        self._on_commit: list[Callable[[int], None]] = []
        self._group = GroupCommit(self._record)

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(last notification id)` after each save of this process (the
        processing runner wakes at once instead of waiting for its next look at the head)."""
        self._on_commit.append(listener)

    def load(self, cls: type[A], aggregate_id: UUID, what: str = "resource") -> A:
        """The aggregate, or NotFound if it does not exist or is of another kind."""
        try:
            aggregate = self.repository.get(aggregate_id, projector_func=replay)
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} not found")
        return aggregate

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            aggregate = self.repository.get(aggregate_id, projector_func=replay)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def commit(self, *aggregates: Aggregate | None) -> int | None:
        """Save the aggregates' new events atomically; the last notification id, if any."""
        pending: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:  # `pending.collect_events` without its two isinstance
            if aggregate is not None:  # checks against runtime Protocols per aggregate
                pending.events.extend(aggregate.collect_events())
                pending.aggregates[aggregate.id] = aggregate
        if not pending.events:
            return None
        recordings = self._group.save(pending)
        self._after_commit(pending, recordings)
        position = recordings[-1].notification.id
        for listener in self._on_commit:
            listener(position)
        return position

    def _after_commit(
        self, pending: ProcessingEvent[UUID], recordings: list[Recording[UUID]]
    ) -> None:
        """What `Application.save` does after recording, in the command's own thread, out of
        the group's transaction: snapshots are a cache of the log, so one that fails is
        only logged (the command has committed)."""
        try:
            self._take_snapshots(pending)
        except Exception:
            log.warning("a snapshot could not be taken; the log is whole", exc_info=True)
        self._notify(recordings)

    def _take_snapshots(self, pending: ProcessingEvent[UUID]) -> None:
        """The library's snapshots (one at each multiple of an aggregate's interval), the
        common one taken from the aggregate in hand: `take_snapshot` first loads the
        aggregate again from the store (its latest snapshot and the events after it, two
        queries). A save whose multiple is not its aggregate's last event (a bulk save
        across several) takes that one the library's way."""
        if not (self.snapshots and self.snapshotting_intervals):
            return
        in_hand = []
        for event in pending.events:
            aggregate = pending.aggregates.get(event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is None or event.originator_version % interval:
                continue
            if event.originator_version == aggregate.version:
                kind = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
                in_hand.append(kind.take(aggregate))
            else:
                self.take_snapshot(aggregate.id, version=event.originator_version)
        if in_hand:
            self.snapshots.put(in_hand)

    @property
    def position(self) -> int:
        return self.recorder.max_notification_id() or 0


def replay(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its per-event `isinstance` against a
    runtime-checkable Protocol, which cost more than applying the event itself."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def event_id(domain_event: Any) -> UUID:
    """A stable id for an event (message id on NATS, entry id in read models)."""
    return uuid5(domain_event.originator_id, str(domain_event.originator_version))


def retry_on_conflict(decide: Callable[[], R], attempts: int = 50) -> R:
    """Run load-decide-save again when another writer saved the same aggregate first.

    Optimistic concurrency: no locks are held, a lost race simply re-reads and re-decides.
    """
    for attempt in range(attempts):
        try:
            return decide()
        except RecordConflictError:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise AssertionError("unreachable")
