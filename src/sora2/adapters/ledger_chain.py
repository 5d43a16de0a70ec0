"""The event log's recorders, with the hash chain written in each insert's own transaction.

Each transaction that stores events also links every event after the chain's head
(`application/ledger_chain.py`), so a committed event is never unchained and the chain
follows notification-id order however many processes write: the events table is already
locked for each insert (PostgreSQL's `LOCK TABLE … IN EXCLUSIVE MODE`, SQLite's one
writer), so links are computed by one writer at a time, after its own events.

- PostgreSQL: one statement per insert (`SELECT <schema>.sora2_chain_v1()`), sent in the
  recorder's pipeline after the INSERT, so it adds no round trip: a plpgsql function walks
  the events after the head and inserts their links in one statement.
- SQLite: in-process, so the links are computed in Python on the insert's cursor.

Events stored before the chain existed are linked by the first insert after it (or by
`sora2 ledger checkpoint`), in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from sora2.application.ledger_chain import GENESIS, ChainLink, link_hash
from sora2.application.processing.processor import Record, Stored

CHAIN_TABLE = "ledger_chain"
CHAIN_FUNCTION = "sora2_chain_v2"  # a new body gets a new name: processes of either release agree

SQLITE_CHAIN_TABLE = f"""CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (
    notification_id INTEGER PRIMARY KEY, previous_id INTEGER NOT NULL, hash BLOB NOT NULL)"""


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), SQLITE_CHAIN_TABLE]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        chain_sqlite(c, self.events_table_name)
        return ids

    def chain_backlog(self) -> ChainLink | None:
        """Link whatever is unlinked (a log written before the chain); the head link."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"DELETE FROM {CHAIN_TABLE} WHERE 0")  # the write lock first, as an insert
            return chain_sqlite(c, self.events_table_name)


def chain_sqlite(c: SQLiteCursor, events_table: str) -> ChainLink | None:
    c.execute(
        f"SELECT notification_id, previous_id, hash FROM {CHAIN_TABLE} "
        "ORDER BY notification_id DESC LIMIT 1"
    )
    head = c.fetchone()
    last_id, before, last_hash = (head[0], head[1], bytes(head[2])) if head else (0, 0, GENESIS)
    c.execute(
        "SELECT rowid, originator_id, originator_version, topic, state "
        f"FROM {events_table} WHERE rowid > ? ORDER BY rowid",
        (last_id,),
    )
    links = []
    for position, originator, version, topic, state in c.fetchall():
        last_hash = link_hash(last_hash, position, bytes.fromhex(originator), version, topic, state)
        links.append((position, last_id, last_hash))
        last_id = position
    if links:
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} (notification_id, previous_id, hash) VALUES (?, ?, ?)",
            links,
        )
    if links:
        before = links[-1][1]
    return ChainLink(last_id, before, last_hash) if last_id else None


POSTGRES_CHAIN_TABLE = """CREATE TABLE IF NOT EXISTS {schema}.{chain} (
    notification_id BIGINT PRIMARY KEY, previous_id BIGINT NOT NULL, hash BYTEA NOT NULL)"""
POSTGRES_CHAIN_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS void LANGUAGE plpgsql AS $chain$
DECLARE
    last_id bigint;
    last_hash bytea;
    ids bigint[];
    previous bigint[];
    hashes bytea[];
    e record;
BEGIN
    SELECT c.notification_id, c.hash INTO last_id, last_hash
        FROM {schema}.{chain} c ORDER BY c.notification_id DESC LIMIT 1;
    IF NOT FOUND THEN
        last_id := 0;
        last_hash := decode(repeat('00', 32), 'hex');
    END IF;
    LOOP
        ids := '{{}}';
        previous := '{{}}';
        hashes := '{{}}';
        FOR e IN SELECT s.notification_id, s.originator_version, s.originator_id, s.topic, s.state
                FROM {schema}.{events} s WHERE s.notification_id > last_id
                ORDER BY s.notification_id LIMIT {page} LOOP
            last_hash := sha256(last_hash || int8send(e.notification_id)
                || int8send(e.originator_version) || uuid_send(e.originator_id)
                || convert_to(e.topic, 'UTF8') || decode('00', 'hex') || e.state);
            ids := ids || e.notification_id;
            previous := previous || last_id;
            hashes := hashes || last_hash;
            last_id := e.notification_id;
        END LOOP;
        INSERT INTO {schema}.{chain} (notification_id, previous_id, hash)
            SELECT * FROM unnest(ids, previous, hashes);
        EXIT WHEN cardinality(ids) < {page};
    END LOOP;
END
$chain$
"""
# The walk reads pages in notification-id order with a LIMIT: so the plan plpgsql keeps
# for it is an index scan from the head, whatever the table's statistics. Without one,
# on a table not yet analyzed (a young log, or one growing fast), the plan was a bitmap
# scan and a sort sized for the whole table: the costliest statement of every insert.
CHAIN_PAGE = 1000


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    def create_table(self) -> None:
        super().create_table()
        names = {
            "schema": Identifier(self.datastore.schema),
            "chain": Identifier(CHAIN_TABLE),
            "function": Identifier(CHAIN_FUNCTION),
            "events": Identifier(self.events_table_name),
            "page": SQL(str(CHAIN_PAGE)),
        }
        with self.datastore.transaction(commit=True) as curs:
            # processes starting together would race on the catalog: one at a time
            curs.execute("SELECT pg_advisory_xact_lock(hashtext('sora2 ledger chain schema'))")
            for statement in (POSTGRES_CHAIN_TABLE, POSTGRES_CHAIN_FUNCTION):
                curs.execute(SQL(statement).format(**names))  # type: ignore[arg-type]
        self._chain = SQL("SELECT {schema}.{function}()").format(**names)
        self._head = SQL(
            "SELECT notification_id, previous_id, hash FROM {schema}.{chain} "
            "ORDER BY notification_id DESC LIMIT 1"
        ).format(**names)
        self._records = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(**names)
        self._events_after_version = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
        ).format(**names)
        self._freeze_statements()

    def _freeze_statements(self) -> None:
        """Every statement an insert or a read sends, rendered to bytes once: psycopg renders
        a composed statement again for each execution (docs/performance.md: 2,663 → 2,430
        Python calls a generate). The identifiers are plain names, so rendering without a
        connection (psycopg's own quoting) gives the same bytes."""
        self.insert_events_statement = self.insert_events_statement.as_bytes(None)
        self.lock_table_statements = [_bytes(s) for s in self.lock_table_statements]
        self.max_notification_id_statement = self.max_notification_id_statement.as_bytes(None)
        self._notify = SQL("NOTIFY {0}").format(Identifier(self.channel_name)).as_bytes(None)
        for name in ("_chain", "_head", "_records", "_events_after_version"):
            setattr(self, name, getattr(self, name).as_bytes(None))

    def _notify_channel(self, curs: Any) -> None:
        curs.execute(self._notify)

    def select_events(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The library's query, with the one every load makes (an aggregate's events after
        a version: a cached one's fast-forward, or the events after its snapshot) composed
        once: the library composes its statement anew for each call."""
        if lte is not None or desc or limit is not None:
            return super().select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return self._events_after(originator_id, 0 if gt is None else gt)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _events_after(self, originator_id: Any, version: int) -> list[StoredEvent]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._events_after_version, (originator_id, version), prepare=True)
            return [StoredEvent(o, v, t, bytes(s)) for o, v, t, s in curs.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_records(self, after: int, limit: int) -> list[Stored]:
        """`select_notifications(start=after + 1, limit=limit)` as `Stored` records, read as
        plain rows (no dict per row, no dataclass per record): the relay reads thousands of
        events a second, and this is a third of the cost."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._records, (after, limit), prepare=True)
            return [Stored(r.id, r.topic, r) for r in map(Record._make, curs.fetchall())]

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        curs.execute(self._chain, prepare=True)  # pipelined: goes out with the COMMIT
        return ids

    def chain_backlog(self) -> ChainLink | None:
        """Link whatever is unlinked (a log written before the chain); the head link."""
        with self.datastore.transaction(commit=True) as curs:
            for lock in self.lock_table_statements:  # as an insert does: writers wait
                curs.execute(lock)
            curs.execute(self._chain)
            curs.execute(self._head)
            row = curs.fetchone()
        if row is None:
            return None
        return ChainLink(row["notification_id"], row["previous_id"], bytes(row["hash"]))


def _bytes(statement: Any) -> Any:
    return statement.as_bytes(None) if hasattr(statement, "as_bytes") else statement
