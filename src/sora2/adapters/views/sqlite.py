"""Read models in the embedded SQLite file, beside the event log."""

from eventsourcing.sqlite import SQLiteTrackingRecorder

from sora2.adapters.views.sql import SqlReadModels


class SQLiteReadModels(SqlReadModels, SQLiteTrackingRecorder):
    def create_table(self) -> None:
        super().create_table()
        self.create_read_model_tables()

    def log_head_expression(self, events_table: str) -> str:
        return f"(SELECT MAX(rowid) FROM {events_table})"

    def log_moved_expression(self, events_table: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM {events_table} e "
            "WHERE e.originator_id IN (:u, :s) AND e.rowid > f.position)"
        )
