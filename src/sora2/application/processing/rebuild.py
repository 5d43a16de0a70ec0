"""Rebuilding the read models from the log while the API serves the old ones.

The log is replayed into fresh tables in large batches (their own position, so a rebuild
that stops can be started again from scratch without harm); then, in one transaction, the
last events since are applied, the fresh tables replace the live ones and the live lane's
position becomes theirs. Readers see the old tables until that commit, the new ones after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import Tracking

from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.projection import ProjectionProcessor
from sora2.application.processing.runner import Lane
from sora2.application.projections.read_models import FOLLOWER_NAME, ReadModels
from sora2.application.projections.view import ReadModelView

REBUILD_BATCH = 5000

Progress = Callable[[int, int], None]  # (events done, events in the log)


class RebuildFailed(Exception):
    """An event the fresh tables cannot take; the live ones were not touched."""


@dataclass(frozen=True)
class Rebuilt:
    events: int
    position: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def rebuild_read_models(
    reader: LogReader, live: ReadModelView, on_progress: Progress = lambda done, total: None
) -> Rebuilt:
    began = time.perf_counter()
    fresh = live.fresh_copy()
    name = f"{FOLLOWER_NAME}/rebuild-{fresh.tables.rstrip('_')}"  # type: ignore[attr-defined]
    projection = ReadModels(fresh)
    lane = Lane(ProjectionProcessor(projection, name), reader, batch_size=REBUILD_BATCH)
    try:
        total, done = reader.head(), 0
        on_progress(0, total)
        while (count := lane.step()) > 0:
            done += count
            on_progress(done, max(total, done))
        if lane.stuck is not None:
            raise RebuildFailed(
                f"the rebuild cannot apply event {lane.stuck.position}: {lane.stuck.error}"
            )
        filled = lane.position

        def finish() -> int:
            position, rest = filled, 0
            while batch := reader.read(position, REBUILD_BATCH, reader.head()):
                for stored in batch:
                    projection.process_event(stored.event, Tracking(name, stored.position))
                position, rest = batch[-1].position, rest + len(batch)
            nonlocal done
            done += rest
            return position

        position = live.swap_in(fresh, FOLLOWER_NAME, finish)
        on_progress(done, done)
    except BaseException:
        fresh.drop()
        raise
    finally:
        fresh.forget_position(name)  # type: ignore[attr-defined]
    return Rebuilt(done, position, time.perf_counter() - began)
