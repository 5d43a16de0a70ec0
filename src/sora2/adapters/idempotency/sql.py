"""Idempotency keys in the same database as the event log (SQLite or PostgreSQL).

A key is claimed by inserting its row before the request runs; a racing duplicate fails
on the primary key and reads the row instead. The answer is stored when the request ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.persistence import IntegrityError

from sora2.adapters.sql_tables import SqlTables

KEEP_FOR = timedelta(hours=24)

SCHEMA = """CREATE TABLE IF NOT EXISTS {p}idempotency_keys (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER,
    content_type TEXT, body TEXT, created_at TEXT NOT NULL, PRIMARY KEY (scope, key))"""


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int | None  # None: the first request is still running
    content_type: str | None
    body: str | None


class SqlIdempotencyStore(SqlTables):
    def __init__(self, datastore: Any, postgres_schema: str | None = None) -> None:
        super().__init__(datastore, postgres_schema, (SCHEMA,))

    def claim(self, scope: str, key: str, fingerprint: str, now: datetime) -> StoredAnswer | None:
        """None if this request now owns the key; otherwise what is stored for it."""
        params = {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "created_at": now.isoformat(),
            "expired": (now - KEEP_FOR).isoformat(),
        }
        try:
            with self.datastore.transaction(commit=True) as c:
                c.execute(
                    self._q(
                        "DELETE FROM {p}idempotency_keys WHERE scope = :scope AND "
                        "key = :key AND created_at < :expired"
                    ),
                    params,
                )
                c.execute(
                    self._q(
                        "INSERT INTO {p}idempotency_keys (scope, key, fingerprint, "
                        "created_at) VALUES (:scope, :key, :fingerprint, "
                        ":created_at)"
                    ),
                    params,
                )
            return None
        except IntegrityError:
            pass
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._q(
                    "SELECT fingerprint, status, content_type, body FROM "
                    "{p}idempotency_keys WHERE scope = :scope AND key = :key"
                ),
                params,
            )
            row = c.fetchone()
        if row is None:  # released between our insert and read: treat as in progress
            return StoredAnswer(fingerprint, None, None, None)
        return StoredAnswer(row["fingerprint"], row["status"], row["content_type"], row["body"])

    def complete(self, scope: str, key: str, status: int, content_type: str, body: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "UPDATE {p}idempotency_keys SET status = :status, content_type = "
                    ":content_type, body = :body WHERE scope = :scope AND key = :key"
                ),
                {
                    "scope": scope,
                    "key": key,
                    "status": status,
                    "content_type": content_type,
                    "body": body,
                },
            )
