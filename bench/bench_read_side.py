"""The read side: `sora2 views rebuild` against projecting one event per transaction (what
the follower of earlier releases did), on the same log in the same run, SQLite and
PostgreSQL."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import FastHasher  # noqa: E402
from tests.support.backends import postgres_settings, sqlite_settings  # noqa: E402
from tests.support.history import make_history  # noqa: E402

from sora2.application.processing.log_reader import LogReader  # noqa: E402
from sora2.application.processing.projection import ProjectionProcessor  # noqa: E402
from sora2.application.processing.rebuild import rebuild_read_models  # noqa: E402
from sora2.application.processing.runner import Lane  # noqa: E402
from sora2.application.projections.read_models import ReadModels  # noqa: E402
from sora2.bootstrap import bootstrap  # noqa: E402

USERS = 400  # about 9 events each beyond the signup's 6


def one_event_per_transaction(sora2, limit: int) -> float:  # noqa: ANN001
    """Events/s of the old shape: each event its own transaction with its position."""
    fresh = sora2.views.fresh_copy()
    lane = Lane(ProjectionProcessor(ReadModels(fresh), "bench/one-by-one"), LogReader(sora2.log))
    lane.batch_size = 1
    began, done = time.perf_counter(), 0
    while done < limit and lane.step():
        done += 1
    seconds = time.perf_counter() - began
    fresh.drop()
    fresh.forget_position("bench/one-by-one")
    return done / seconds


def measure(label: str, settings) -> None:  # noqa: ANN001
    sora2 = bootstrap(settings, hasher=FastHasher())
    try:
        sora2.read_models.catch_up()
        position = make_history(sora2, USERS)
        baseline = one_event_per_transaction(sora2, limit=3000)
        result = rebuild_read_models(LogReader(sora2.log), sora2.views)
        print(
            f"views rebuild, {label}, {position:,} events: {result.events_per_second:,.0f} "
            f"events/s; one event per transaction {baseline:,.0f} events/s "
            f"({result.events_per_second / baseline:.1f}x; the issue's figure for the old "
            f"follower: 446 events/s, {result.events_per_second / 446:.0f}x)"
        )
    finally:
        sora2.close()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    measure("SQLite", sqlite_settings(folder / "sqlite"))
    with postgres_settings(folder / "pg") as settings:
        measure("PostgreSQL", settings)


if __name__ == "__main__":
    main()
