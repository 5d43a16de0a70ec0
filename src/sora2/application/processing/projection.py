"""A projection as a processor: a batch of events and the view's position in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from sora2.application.processing.processor import Processor, Stored
from sora2.application.projections.view import ReadModelView


class ProjectionProcessor(Processor):
    def __init__(self, projection: Projection[ReadModelView], name: str | None = None) -> None:
        self.projection = projection
        self.view = projection.view
        self.name = name or projection.name

    def position(self) -> int:
        return self.view.position_of(self.name)

    def process(self, after: int, batch: Sequence[Stored]) -> None:
        with self.view.batch(self.name, after, batch[-1].position):
            for stored in batch:
                self.projection.process_event(stored.event, Tracking(self.name, stored.position))
