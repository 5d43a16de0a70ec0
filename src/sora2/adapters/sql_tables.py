"""Small tables of our own beside the event log (SQLite or PostgreSQL): one way to write
their statements once, with `:name` parameters and a `{p}` schema prefix."""

from __future__ import annotations

from typing import Any

from sora2.adapters.views.sql import pyformat


class SqlTables:
    def __init__(self, datastore: Any, postgres_schema: str | None, schema: tuple[str, ...]):
        self.datastore = datastore
        self.postgres = postgres_schema is not None
        self.prefix = f'"{postgres_schema}".' if postgres_schema else ""
        with self.datastore.transaction(commit=True) as c:
            for statement in schema:
                c.execute(statement.format(p=self.prefix))

    def _q(self, statement: str) -> str:
        statement = statement.format(p=self.prefix)
        return pyformat(statement) if self.postgres else statement
