"""The event log: one eventsourcing Application holding every aggregate.

One log means one notification sequence (what followers track) and atomic saves
across aggregates (a video and its ledger change together or not at all).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError

from sora2.domain.errors import NotFound

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

LOG_NAME = "sora2"


class EventLog(Application[UUID]):
    name = LOG_NAME

    def load(self, cls: type[A], aggregate_id: UUID, what: str = "resource") -> A:
        """The aggregate, or NotFound if it does not exist or is of another kind."""
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} not found") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} not found")
        return aggregate

    def find(self, cls: type[A], aggregate_id: UUID) -> A | None:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None

    def commit(self, *aggregates: Aggregate | None) -> int | None:
        """Save the aggregates' new events atomically; the last notification id, if any."""
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    @property
    def position(self) -> int:
        return self.recorder.max_notification_id() or 0


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
