"""Read models in PostgreSQL, in the event store's schema."""

from typing import Any

from eventsourcing.postgres import PostgresTrackingRecorder

from sora2.adapters.views.sql import SqlReadModels, encode_params, pyformat


class PostgresReadModels(SqlReadModels, PostgresTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.prefix = f'"{self.datastore.schema}".'

    def create_table(self) -> None:
        super().create_table()
        self.create_read_model_tables()

    def log_head_expression(self, events_table: str) -> str:
        return f'(SELECT MAX(notification_id) FROM "{self.datastore.schema}"."{events_table}")'

    def _params(self, statement: str) -> str:
        return pyformat(statement)

    def _rows(self, statement: str, params: dict[str, Any]) -> list[Any]:
        """One autocommitted statement: one round trip, not BEGIN, SELECT and ROLLBACK."""
        with self.datastore.get_connection() as conn, conn.cursor() as c:
            c.execute(self._text(statement), encode_params(params))
            return list(c.fetchall())
