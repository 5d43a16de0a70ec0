"""A batch's read-model writes, held in memory and written at its end in a few statements.

A projection's batch of events turns into many small writes (a video inserted, then
started, then completed; an entry and its user's balance per credit). Executed one by one
they cost a statement each; held here they are written when the batch ends, in the batch's
transaction, as one statement per table and kind. What the database would have shown after
the writes one by one is kept: a change to a row inserted in this batch goes into that row,
a removal drops it, later changes of one row win, the balance is the last entry's. Any
other order that matters (a row inserted again, or after it was changed or removed) writes
what is held first, so the database sees the writes in their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["insert", "upsert", "update", "delete"]


@dataclass(frozen=True)
class Rows:
    """One statement's worth: `rows` (dicts of `columns`) for `kind` on `table`; `key`
    names the rows (the upsert's conflict target, the update's and delete's match)."""

    kind: Kind
    table: str
    key: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


@dataclass
class Pending:
    write: Callable[[Pending], None]  # the view writes what is held, in the batch's transaction
    _inserts: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    _upserts: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    _updates: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    _deletes: dict[str, dict[Any, None]] = field(default_factory=dict)
    _columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)  # an upsert's conflict target

    def insert(self, table: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
        row_id = row["id"]
        if any(row_id in held.get(table, ()) for held in (self._inserts, self._updates)) or (
            row_id in self._deletes.get(table, ())
        ):
            self.flush()  # the database decides, as it would have one by one
        self._columns[table] = columns
        self._inserts.setdefault(table, {})[row_id] = row

    def upsert(self, table: str, key: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
        """Insert or replace the row named `row[key]`: the last one of the batch wins."""
        self._columns[table], self._keys[table] = columns, key
        self._upserts.setdefault(table, {})[row[key]] = row

    def update(self, table: str, row_id: Any, changes: dict[str, Any]) -> None:
        if (inserted := self._inserts.get(table, {}).get(row_id)) is not None:
            inserted.update(changes)
        elif row_id in self._deletes.get(table, ()):
            pass  # it changed a removed row: nothing
        else:
            self._updates.setdefault(table, {}).setdefault(row_id, {}).update(changes)

    def delete(self, table: str, row_id: Any) -> None:
        if self._inserts.get(table, {}).pop(row_id, None) is not None:
            return  # never written: nothing to remove
        self._updates.get(table, {}).pop(row_id, None)
        self._deletes.setdefault(table, {})[row_id] = None

    def flush(self) -> None:
        if self._inserts or self._upserts or self._updates or self._deletes:
            self.write(self)
        for held in (self._inserts, self._upserts, self._updates, self._deletes):
            held.clear()

    def statements(self) -> Iterator[Rows]:
        """What is held, one `Rows` per statement: per table inserts, updates (one per set
        of changed columns), then deletes; rows of different tables do not depend on one
        another (no foreign keys)."""
        for table, rows in self._inserts.items():
            if rows:
                yield Rows("insert", table, "id", self._columns[table], list(rows.values()))
        for table, rows in self._upserts.items():
            if rows:
                key = self._keys[table]
                yield Rows("upsert", table, key, self._columns[table], list(rows.values()))
        for table, changed in self._updates.items():
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row_id, changes in changed.items():
                columns = tuple(sorted(changes))
                by_columns.setdefault(columns, []).append({"id": row_id, **changes})
            for columns, rows in by_columns.items():
                yield Rows("update", table, "id", columns, rows)
        for table, ids in self._deletes.items():
            if ids:
                yield Rows("delete", table, "id", ("id",), [{"id": i} for i in ids])
