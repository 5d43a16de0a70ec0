"""Read models in PostgreSQL, in the event store's schema."""

from typing import Any

import msgspec
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.utils import retry

from sora2.adapters.views.pending import Rows
from sora2.adapters.views.sql import SqlReadModels, encode_params, on_conflict, pyformat

_json = msgspec.json.Encoder()


class PostgresReadModels(SqlReadModels, PostgresTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.prefix = f'"{self.datastore.schema}".'

    def create_table(self) -> None:
        super().create_table()
        self.create_read_model_tables()

    def log_head_expression(self, events_table: str) -> str:
        return f'(SELECT MAX(notification_id) FROM "{self.datastore.schema}"."{events_table}")'

    def log_moved_expression(self, events_table: str) -> str:
        # Each aggregate's last event, found by the primary key's order (one index probe):
        # asked for "any event of u or s past the position", the planner scanned the whole
        # table on a young one (no statistics yet), a cost growing with the log.
        table = f'"{self.datastore.schema}"."{events_table}"'
        last = (
            "(SELECT e.notification_id FROM {table} e WHERE e.originator_id = CAST({id} AS uuid)"
            " ORDER BY e.originator_version DESC LIMIT 1)"
        )
        return (
            f"(GREATEST({last.format(table=table, id=':u')}, {last.format(table=table, id=':s')})"
            " > f.position)"
        )

    def _params(self, statement: str) -> str:
        return pyformat(statement)

    def _write_rows(self, cursor: Any, rows: Rows) -> None:
        """All of `rows` in one statement, as one JSON array read into the table's row type
        (psycopg's executemany would still run a statement per row)."""
        encoded = _json.encode([encode_params(r) for r in rows.rows]).decode()
        cursor.execute(self._row_statement(rows), {"rows": encoded})

    def _row_statement(self, rows: Rows) -> str:
        table, columns = rows.table, rows.columns
        given = f"json_populate_recordset(CAST(NULL AS {{p}}{table}), CAST(:rows AS json))"
        if rows.kind == "update":
            sets = ", ".join(f"{c} = v.{c}" for c in columns)
            return self._text(
                f"UPDATE {{p}}{table} AS t SET {sets} FROM {given} AS v WHERE t.id = v.id"
            )
        if rows.kind == "delete":
            return self._text(
                f"DELETE FROM {{p}}{table} WHERE id IN (SELECT v.id FROM {given} AS v)"
            )
        names = ", ".join(columns)
        return self._text(
            f"INSERT INTO {{p}}{table} ({names}) SELECT {names} FROM {given}" + on_conflict(rows)
        )

    # A pooled connection the server ended a moment ago can look alive until its goodbye
    # arrives (`event_store.check_without_round_trip`): a read is simply asked again on
    # another, as the library's own reads are.
    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.01)
    def _rows(self, statement: str, params: dict[str, Any]) -> list[Any]:
        """One autocommitted statement: one round trip, not BEGIN, SELECT and ROLLBACK."""
        with self.datastore.get_connection() as conn, conn.cursor() as c:
            c.execute(self._text(statement), encode_params(params))
            return list(c.fetchall())
