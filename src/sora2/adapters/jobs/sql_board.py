"""The job board in the event log's database (SQLite or PostgreSQL): one row per running job.

Claims are compare-and-set: a free job is taken by inserting its row (one insert wins); a
job is taken over by an update that names the runner and heartbeat it read (one update
wins). Heartbeats and progress are single-row updates, so the log keeps only what users and
auditors care about.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sora2.adapters.sql_tables import SqlTables
from sora2.adapters.views.sql import rowcount
from sora2.application.ports import JobState

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {p}video_jobs (
    video_id TEXT PRIMARY KEY, worker TEXT NOT NULL, progress INTEGER NOT NULL,
    seconds_remaining INTEGER, heartbeat_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {p}render_rate (
    id INTEGER PRIMARY KEY, seconds_per_second DOUBLE PRECISION NOT NULL)""",
)
RATE_WEIGHT = 0.3  # how much the latest render moves the average
RELEASED = "(released)"  # the worker of a job nobody runs any more: never a runner id
KEEP_RELEASED = timedelta(hours=1)


class SqlJobBoard(SqlTables):
    def __init__(self, datastore: Any, postgres_schema: str | None = None) -> None:
        super().__init__(datastore, postgres_schema, SCHEMA)

    def claim(
        self,
        video_id: UUID,
        worker: str,
        now: datetime,
        lease: timedelta,
        runner_is_gone: Callable[[str], bool],
    ) -> bool:
        params = {"v": str(video_id), "w": worker, "at": now.isoformat()}
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}video_jobs (video_id, worker, progress, heartbeat_at) "
                    "VALUES (:v, :w, 0, :at) ON CONFLICT (video_id) DO NOTHING"
                ),
                params,
            )
            if rowcount(c) == 1:
                return True
        current = self._row(video_id)
        if current is None:  # released between our insert and our read: try once more
            return self.claim(video_id, worker, now, lease, runner_is_gone)
        if not (
            current.worker in (worker, RELEASED)
            or runner_is_gone(current.worker)
            or now - current.heartbeat_at > lease
        ):
            return False  # its runner is alive
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "UPDATE {p}video_jobs SET worker = :w, heartbeat_at = :at "
                    "WHERE video_id = :v AND worker = :old AND heartbeat_at = :old_at"
                ),
                {**params, "old": current.worker, "old_at": current.heartbeat_at.isoformat()},
            )
            return rowcount(c) == 1

    def beat(
        self,
        video_id: UUID,
        worker: str,
        now: datetime,
        progress: int | None = None,
        seconds_remaining: int | None = None,
    ) -> bool:
        sets = "heartbeat_at = :at"
        params: dict[str, Any] = {"v": str(video_id), "w": worker, "at": now.isoformat()}
        if progress is not None:
            sets += ", progress = :progress, seconds_remaining = :eta"
            params.update(progress=min(99, max(0, progress)), eta=seconds_remaining)
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(f"UPDATE {{p}}video_jobs SET {sets} WHERE video_id = :v AND worker = :w"),
                params,
            )
            return rowcount(c) == 1

    def release(self, video_id: UUID) -> None:
        """No runner owns it any more (its heartbeats fail, so it stops); its last progress
        stays readable while the read models catch up, and old released rows are swept."""
        now = datetime.now(UTC)  # when it was released, for the sweep
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "UPDATE {p}video_jobs SET worker = :released, heartbeat_at = :at "
                    "WHERE video_id = :v"
                ),
                {"v": str(video_id), "released": RELEASED, "at": now.isoformat()},
            )
            cutoff = (now - KEEP_RELEASED).isoformat()
            c.execute(
                self._q(
                    "DELETE FROM {p}video_jobs WHERE worker = :released AND heartbeat_at < :cutoff"
                ),
                {"released": RELEASED, "cutoff": cutoff},
            )

    def states(self, video_ids: list[UUID]) -> dict[UUID, JobState]:
        if not video_ids:
            return {}
        names = {f"v{i}": str(v) for i, v in enumerate(video_ids)}
        marks = ", ".join(f":{n}" for n in names)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._q(
                    "SELECT video_id, worker, progress, seconds_remaining, heartbeat_at "
                    f"FROM {{p}}video_jobs WHERE video_id IN ({marks})"
                ),
                names,
            )
            rows = list(c.fetchall())
        return {UUID(r["video_id"]): _state(r) for r in rows}

    def record_rate(self, seconds_per_video_second: float) -> None:
        x = max(0.0, float(seconds_per_video_second))
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}render_rate (id, seconds_per_second) VALUES (1, :x) "
                    "ON CONFLICT (id) DO UPDATE SET seconds_per_second = "
                    f"{1 - RATE_WEIGHT} * {{p}}render_rate.seconds_per_second + {RATE_WEIGHT} * :x"
                ),
                {"x": x},
            )

    def render_rate(self) -> float | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._q("SELECT seconds_per_second FROM {p}render_rate WHERE id = 1"), {})
            row = c.fetchone()
        return float(row["seconds_per_second"]) if row else None

    def _row(self, video_id: UUID) -> JobState | None:
        return self.states([video_id]).get(video_id)


def _state(row: Any) -> JobState:
    return JobState(
        UUID(row["video_id"]),
        row["worker"],
        int(row["progress"]),
        row["seconds_remaining"],
        datetime.fromisoformat(row["heartbeat_at"]),
    )
