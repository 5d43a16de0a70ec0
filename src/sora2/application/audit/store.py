"""The audit port: one consistent reading of the whole database, streamed.

An audit must compare the log with the read models as they stood at one instant, while
servers keep writing. The adapter opens one read-only snapshot (PostgreSQL REPEATABLE
READ, SQLite's read transaction in WAL mode) and streams, from it, the stored events
through a server-side cursor, the chain's links and each read-model table in one scan.
Rows come as plain tuples, undecoded: the audit decodes only what it reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from sora2.application.ledger_chain import ChainLink

# (position, originator id as 16 bytes, version, topic, state bytes)
RawEvent = tuple[int, bytes, int, str, bytes]

# (position, the position before it, hash): a link of the chain
RawLink = tuple[int, int, bytes]

# The read-model tables and the columns an audit reads from each, in this order. Values
# come as the tables hold them: ids and instants as text, amounts as integers.
READ_MODEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "id",
        "email",
        "username",
        "avatar_key",
        "role",
        "created_at",
        "session_epoch",
        "suspended",
    ),
    "sessions": ("id", "user_id", "ended"),
    "balances": ("user_id", "balance"),
    "credits": ("seq", "id", "user_id", "amount", "balance", "type", "reference_id", "created_at"),
    "orders": ("id", "user_id", "amount", "credits", "status", "created_at", "paid_at"),
    "videos": (
        "id",
        "user_id",
        "status",
        "cost",
        "duration",
        "video_key",
        "thumbnail_key",
        "created_at",
    ),
}


class AuditReading(Protocol):
    def position_of(self, name: str) -> int:
        """The position a processor's effects are committed at, in this snapshot."""

    def head(self) -> int:
        """The last event's position in this snapshot (0: empty)."""

    def events(self, after: int = 0, batch: int = 5_000) -> Iterator[list[RawEvent]]:
        """Every stored event after `after`, in log order, in batches."""

    def links(self, batch: int = 5_000) -> Iterator[list[RawLink]]:
        """Every link of the chain, in position order, in batches."""

    def rows(self, table: str, batch: int = 5_000) -> Iterator[list[tuple]]:
        """Every row of a read-model table (`READ_MODEL_COLUMNS[table]`), in batches."""


class AuditStore(Protocol):
    def reading(self) -> AbstractContextManager[AuditReading]:
        """One read-only snapshot of the log, its chain and the read models."""

    def chain_backlog(self) -> ChainLink | None:
        """Link any event not yet linked (a log older than the chain); the head link."""
