"""Attempt counters in the event log's database (SQLite or PostgreSQL), shared by every
process: failed sign-ins per account, reset mails per recipient.

Fixed windows: a key's row holds when its window started and how many attempts it saw;
the first attempt after the window ends starts a new one. One upsert counts an attempt, so
processes counting at once lose nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sora2.adapters.sql_tables import SqlTables

SCHEMA = """CREATE TABLE IF NOT EXISTS {p}attempt_counters (
    key TEXT PRIMARY KEY, window_start TEXT NOT NULL, attempts INTEGER NOT NULL)"""


class SqlAttemptCounter(SqlTables):
    def __init__(self, datastore: Any, postgres_schema: str | None = None) -> None:
        super().__init__(datastore, postgres_schema, (SCHEMA,))

    def count(self, key: str, window: timedelta, now: datetime) -> tuple[int, datetime]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._q("SELECT window_start, attempts FROM {p}attempt_counters WHERE key = :k"),
                {"k": key},
            )
            row = c.fetchone()
        if row is None or datetime.fromisoformat(row["window_start"]) + window <= now:
            return 0, now + window
        return int(row["attempts"]), datetime.fromisoformat(row["window_start"]) + window

    def add(self, key: str, window: timedelta, now: datetime) -> int:
        params = {"k": key, "now": now.isoformat(), "cutoff": (now - window).isoformat()}
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "INSERT INTO {p}attempt_counters AS t (key, window_start, attempts) "
                    "VALUES (:k, :now, 1) ON CONFLICT (key) DO UPDATE SET "
                    "attempts = CASE WHEN t.window_start <= :cutoff THEN 1 "
                    "ELSE t.attempts + 1 END, "
                    "window_start = CASE WHEN t.window_start <= :cutoff THEN :now "
                    "ELSE t.window_start END"
                ),
                params,
            )
            c.execute(
                self._q("SELECT attempts FROM {p}attempt_counters WHERE key = :k"), {"k": key}
            )
            return int(c.fetchone()["attempts"])

    def clear(self, key: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._q("DELETE FROM {p}attempt_counters WHERE key = :k"), {"k": key})
