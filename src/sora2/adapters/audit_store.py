"""The audit's reading of the database: one read-only snapshot, streamed (see
`application/audit/store.py`).

PostgreSQL: a connection of its own in a REPEATABLE READ, READ ONLY transaction; events
come through a named (server-side) cursor in binary, so neither the client nor the server
holds the log in memory and `state` arrives as raw bytes. SQLite: a connection of its own
in one read transaction (WAL keeps writers going), iterated row by row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from sora2.adapters.ledger_chain import CHAIN_TABLE
from sora2.application.audit.store import READ_MODEL_COLUMNS, AuditReading, RawEvent, RawLink
from sora2.application.ledger_chain import ChainLink


class _Reading:
    """Statements with `{p}` (schema prefix) and `{events}`; `?` or `%s` by dialect."""

    def __init__(self, connection: Any, prefix: str, events_table: str, postgres: bool) -> None:
        self.connection = connection
        self.prefix = prefix
        self.events_table = events_table
        self.postgres = postgres
        self._names = count()

    def _sql(self, statement: str) -> str:
        statement = statement.format(p=self.prefix, events=self.events_table, chain=CHAIN_TABLE)
        return statement.replace("?", "%s") if self.postgres else statement

    def _stream(
        self, statement: str, params: tuple = (), batch: int = 5_000
    ) -> Iterator[list[Any]]:
        if self.postgres:
            name = f"audit_{next(self._names)}"
            with self.connection.cursor(name=name, binary=True, row_factory=tuple_row) as c:
                c.itersize = batch
                c.execute(self._sql(statement), params)
                while rows := c.fetchmany(batch):
                    yield rows
                    if len(rows) < batch:  # the last batch: no FETCH more to find the end
                        break
            return
        c = self.connection.execute(self._sql(statement), params)
        try:
            while rows := c.fetchmany(batch):
                yield rows
        finally:
            c.close()

    def _one(self, statement: str, params: tuple = ()) -> Any:
        c = self.connection.cursor()
        try:
            c.execute(self._sql(statement), params)
            row = c.fetchone()
        finally:
            c.close()
        return row[0] if row else None

    def position_of(self, name: str) -> int:
        return int(
            self._one("SELECT position FROM {p}processor_positions WHERE name = ?", (name,)) or 0
        )

    def head(self) -> int:
        column = "notification_id" if self.postgres else "rowid"
        return int(self._one(f"SELECT MAX({column}) FROM {{p}}{{events}}") or 0)

    def events(self, after: int = 0, batch: int = 5_000) -> Iterator[list[RawEvent]]:
        if self.postgres:
            yield from self._stream(
                "SELECT notification_id, uuid_send(originator_id), originator_version, topic,"
                " state FROM {p}{events} WHERE notification_id > ? ORDER BY notification_id",
                (after,),
                batch,
            )
            return
        fromhex = bytes.fromhex
        for rows in self._stream(
            "SELECT rowid, originator_id, originator_version, topic, state FROM {events}"
            " WHERE rowid > ? ORDER BY rowid",
            (after,),
            batch,
        ):
            yield [(p, fromhex(o), v, t, s) for p, o, v, t, s in rows]

    def links(self, batch: int = 5_000) -> Iterator[list[RawLink]]:
        yield from self._stream(
            "SELECT notification_id, previous_id, hash FROM {p}{chain} ORDER BY notification_id",
            (),
            batch,
        )

    def rows(self, table: str, batch: int = 5_000) -> Iterator[list[tuple]]:
        columns = ", ".join(READ_MODEL_COLUMNS[table])
        yield from self._stream(f"SELECT {columns} FROM {{p}}rm_{table}", (), batch)


class SqliteAuditStore:
    def __init__(self, path: Path, recorder: Any) -> None:
        self.path = path
        self.recorder = recorder  # the chained recorder: links the backlog

    @contextmanager
    def reading(self) -> Iterator[AuditReading]:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("BEGIN")  # one read transaction: one snapshot (WAL)
            yield _Reading(connection, "", "stored_events", postgres=False)
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def chain_backlog(self) -> ChainLink | None:
        return self.recorder.chain_backlog()


class PostgresAuditStore:
    def __init__(self, connect_args: dict[str, Any], schema: str, recorder: Any) -> None:
        self.connect_args = connect_args
        self.schema = schema
        self.recorder = recorder

    @contextmanager
    def reading(self) -> Iterator[AuditReading]:
        with psycopg.connect(**self.connect_args, autocommit=False) as connection:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            yield _Reading(
                connection, f'"{self.schema}".', self.recorder.events_table_name, postgres=True
            )
            connection.rollback()

    def chain_backlog(self) -> ChainLink | None:
        return self.recorder.chain_backlog()
