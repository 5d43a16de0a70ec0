"""Idempotency keys in the same database as the event log (SQLite or PostgreSQL).

A key is claimed by inserting its row before the request runs; a racing duplicate fails
on the primary key and reads the row instead. The answer is stored when the request ends.

While the request runs, its process holds a lease on the key (a row of its own in
`idempotency_leases`, renewed by `beat`). A key whose owner died mid-request (its process
on this host is gone, or it has been silent longer than the lease) is taken over by the
next request with the same key and body, which runs the command again: keyed commands name
what they create after the key (`application/command_ids.py`), so a command that had
committed is found and answered, and one that had not now runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.persistence import IntegrityError

from sora2.adapters.sql_tables import SqlTables
from sora2.adapters.views.sql import rowcount

KEEP_FOR = timedelta(hours=24)
LEASE = timedelta(seconds=30)  # the owner beats every third of it

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {p}idempotency_keys (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER,
    content_type TEXT, body TEXT, created_at TEXT NOT NULL, PRIMARY KEY (scope, key))""",
    """CREATE TABLE IF NOT EXISTS {p}idempotency_leases (
    scope TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL, beat_at TEXT NOT NULL,
    PRIMARY KEY (scope, key))""",
)


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int | None  # None: the first request is still running
    content_type: str | None
    body: str | None


class SqlIdempotencyStore(SqlTables):
    def __init__(
        self,
        datastore: Any,
        postgres_schema: str | None = None,
        owner: str = "",
        owner_is_gone: Callable[[str], bool] = lambda owner: False,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(datastore, postgres_schema, SCHEMA)
        self.owner = owner  # this process's runner id (`host:pid:token`)
        self.owner_is_gone = owner_is_gone
        self.lease = lease

    def claim(self, scope: str, key: str, fingerprint: str, now: datetime) -> StoredAnswer | None:
        """None if this request now owns the key (new, or taken over from a dead owner);
        otherwise what is stored for it."""
        params = {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "created_at": now.isoformat(),
            "expired": (now - KEEP_FOR).isoformat(),
            "owner": self.owner,
        }
        try:
            with self.datastore.transaction(commit=True) as c:
                for table in ("idempotency_leases", "idempotency_keys"):  # keys last
                    c.execute(
                        self._q(
                            f"DELETE FROM {{p}}{table} WHERE scope = :scope AND key = :key AND "
                            "(SELECT created_at FROM {p}idempotency_keys WHERE scope = :scope "
                            "AND key = :key) < :expired"
                        ),
                        params,
                    )
                c.execute(
                    self._q(
                        "INSERT INTO {p}idempotency_keys (scope, key, fingerprint, "
                        "created_at) VALUES (:scope, :key, :fingerprint, :created_at)"
                    ),
                    params,
                )
                c.execute(
                    self._q(
                        "INSERT INTO {p}idempotency_leases (scope, key, owner, beat_at) "
                        "VALUES (:scope, :key, :owner, :created_at)"
                    ),
                    params,
                )
            return None
        except IntegrityError:
            pass
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self._q(
                    "SELECT k.fingerprint, k.status, k.content_type, k.body, k.created_at, "
                    "l.owner, l.beat_at FROM {p}idempotency_keys k LEFT JOIN "
                    "{p}idempotency_leases l ON l.scope = k.scope AND l.key = k.key "
                    "WHERE k.scope = :scope AND k.key = :key"
                ),
                params,
            )
            row = c.fetchone()
        if row is None:  # released between our insert and read: treat as in progress
            return StoredAnswer(fingerprint, None, None, None)
        stored = StoredAnswer(row["fingerprint"], row["status"], row["content_type"], row["body"])
        if stored.status is None and stored.fingerprint == fingerprint:
            if self._take_over(scope, key, row, now):
                return None
        return stored

    def beat(self, scope: str, key: str, now: datetime) -> None:
        """The owner is alive: renew its lease."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._q(
                    "UPDATE {p}idempotency_leases SET beat_at = :at "
                    "WHERE scope = :scope AND key = :key AND owner = :owner"
                ),
                {"scope": scope, "key": key, "owner": self.owner, "at": now.isoformat()},
            )

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
            c.execute(
                self._q("DELETE FROM {p}idempotency_leases WHERE scope = :scope AND key = :key"),
                {"scope": scope, "key": key},
            )

    def release(self, scope: str, key: str) -> None:
        """Forget the key: the request committed nothing (a 503), so a retry runs anew."""
        with self.datastore.transaction(commit=True) as c:
            for table in ("idempotency_keys", "idempotency_leases"):
                c.execute(
                    self._q(f"DELETE FROM {{p}}{table} WHERE scope = :scope AND key = :key"),
                    {"scope": scope, "key": key},
                )

    def _take_over(self, scope: str, key: str, row: Any, now: datetime) -> bool:
        """Own the key if its owner died; one of two racing takers wins."""
        params = {"scope": scope, "key": key, "owner": self.owner, "at": now.isoformat()}
        if row["owner"] is None:  # a key claimed before leases existed: its age decides
            if now - datetime.fromisoformat(row["created_at"]) <= self.lease:
                return False
            statement = (
                "INSERT INTO {p}idempotency_leases (scope, key, owner, beat_at) "
                "VALUES (:scope, :key, :owner, :at) ON CONFLICT (scope, key) DO NOTHING"
            )
        else:
            silent = now - datetime.fromisoformat(row["beat_at"]) > self.lease
            if row["owner"] == self.owner or not (silent or self.owner_is_gone(row["owner"])):
                return False  # alive (or this very process, still running it)
            statement = (
                "UPDATE {p}idempotency_leases SET owner = :owner, beat_at = :at WHERE "
                "scope = :scope AND key = :key AND owner = :old AND beat_at = :old_at"
            )
            params.update(old=row["owner"], old_at=row["beat_at"])
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._q(statement), params)
            return rowcount(c) == 1
