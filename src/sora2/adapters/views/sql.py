"""The read models in SQL, one implementation for SQLite and PostgreSQL.

Statements are written once with `:name` parameters; the dialect adapts placeholders and
types. Rows are written only inside a `batch`, whose transaction also moves the processor's
position, so they and the position commit together; the batch's writes are held until its
end and written in a few statements (`pending.py`).
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from sora2.adapters.views.pending import Pending, Rows
from sora2.application.processing.processor import PositionMoved
from sora2.application.projections.rows import (
    Access,
    AccessAtHead,
    CreditRow,
    OrderRow,
    Page,
    UserBalance,
    UserRow,
    VideoRow,
)
from sora2.application.projections.view import ReadModelView

USER_COLUMNS = (
    "id",
    "email",
    "username",
    "avatar_key",
    "role",
    "created_at",
    "updated_at",
    "session_epoch",
    "suspended",
)
CREDIT_COLUMNS = (
    "id",
    "user_id",
    "amount",
    "balance",
    "type",
    "description",
    "reference_id",
    "created_at",
)
ORDER_COLUMNS = (
    "id",
    "user_id",
    "amount",
    "credits",
    "status",
    "payment_method",
    "created_at",
    "paid_at",
)
VIDEO_COLUMNS = (
    "id",
    "user_id",
    "prompt",
    "status",
    "progress",
    "seconds_remaining",
    "video_key",
    "thumbnail_key",
    "duration",
    "aspect_ratio",
    "cost",
    "error",
    "share_token_hash",
    "created_at",
    "updated_at",
    "error_code",
)
SESSION_COLUMNS = ("id", "user_id", "ended")
BALANCE_COLUMNS = ("user_id", "balance")
UUID_COLUMNS = {"id", "user_id", "reference_id"}
TIME_COLUMNS = {"created_at", "updated_at", "paid_at"}
BOOL_COLUMNS = {"suspended"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}rm_users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL, username TEXT NOT NULL, avatar_key TEXT,
    role TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    session_epoch INTEGER NOT NULL DEFAULT 0, suspended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS {p}rm_sessions (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, ended INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS {p}rm_balances (
    user_id TEXT PRIMARY KEY, balance BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {p}rm_credits (
    seq BIGINT PRIMARY KEY, id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    amount BIGINT NOT NULL, balance BIGINT NOT NULL, type TEXT NOT NULL,
    description TEXT NOT NULL, reference_id TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {p}rm_orders (
    seq BIGINT NOT NULL, id TEXT PRIMARY KEY, user_id TEXT NOT NULL, amount TEXT NOT NULL,
    credits BIGINT NOT NULL, status TEXT NOT NULL, payment_method TEXT NOT NULL,
    created_at TEXT NOT NULL, paid_at TEXT);
CREATE TABLE IF NOT EXISTS {p}rm_videos (
    seq BIGINT NOT NULL, id TEXT PRIMARY KEY, user_id TEXT NOT NULL, prompt TEXT NOT NULL,
    status TEXT NOT NULL, progress INTEGER NOT NULL, seconds_remaining INTEGER,
    video_key TEXT, thumbnail_key TEXT, duration INTEGER NOT NULL, aspect_ratio TEXT NOT NULL,
    cost BIGINT NOT NULL, error TEXT, share_token_hash TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, error_code TEXT);
"""
# Built after the tables are filled when a rebuild swaps them in (cheaper than row by row).
INDEXES = """
CREATE INDEX IF NOT EXISTS rm_credits_by_user ON {p}rm_credits (user_id, seq);
CREATE INDEX IF NOT EXISTS rm_orders_by_user ON {p}rm_orders (user_id, seq);
CREATE INDEX IF NOT EXISTS rm_orders_by_status ON {p}rm_orders (status);
CREATE INDEX IF NOT EXISTS rm_videos_by_user ON {p}rm_videos (user_id, seq);
CREATE INDEX IF NOT EXISTS rm_videos_by_share ON {p}rm_videos (share_token_hash);
CREATE INDEX IF NOT EXISTS rm_videos_by_status ON {p}rm_videos (status);
"""
TABLES = ("users", "sessions", "balances", "credits", "orders", "videos")
# Columns added after tables of an earlier release may exist: added where missing.
ADDED_COLUMNS = (
    ("rm_users", "suspended", "INTEGER NOT NULL DEFAULT 0"),
    ("rm_videos", "error_code", "TEXT"),
)
POSITIONS = """CREATE TABLE IF NOT EXISTS {p}processor_positions (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL)"""


class SqlReadModels(ReadModelView):
    """Mixed with eventsourcing's SQLite or PostgreSQL tracking recorder (see dialects)."""

    prefix = ""  # a schema-qualified prefix on PostgreSQL
    tables = "rm_"  # a rebuild fills tables of another name, then swaps them in

    def _sql(self, statement: str) -> str:
        statement = statement.format(p=self.prefix)
        return statement if self.tables == "rm_" else statement.replace("rm_", self.tables)

    def _transaction(self, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)  # type: ignore[attr-defined]

    def create_read_model_tables(self, indexes: bool = True) -> None:
        self.__dict__.setdefault("_thread_state", threading.local())  # before any lane thread
        with self._transaction(commit=True) as c:
            for statement in self._statements(SCHEMA + (INDEXES if indexes else "") + ";"):
                c.execute(statement)
            c.execute(POSITIONS.format(p=self.prefix))
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        for table, column, kind in ADDED_COLUMNS:
            with self._transaction(commit=False) as c:
                c.execute(self._sql(f"SELECT * FROM {{p}}{table} LIMIT 0"))
                present = {d[0] for d in getattr(c, "sqlite_cursor", c).description}
            if column not in present:
                with self._transaction(commit=True) as c:
                    c.execute(self._sql(f"ALTER TABLE {{p}}{table} ADD COLUMN {column} {kind}"))

    def _statements(self, script: str) -> list[str]:
        return [s for s in self._sql(script).split(";") if s.strip()]

    # --- the processor's position, moved in the same transaction as the rows -------------

    @property
    def _local(self) -> threading.local:
        """The batch cursor of this thread (per view: a rebuild's view is another one)."""
        return self.__dict__.setdefault("_thread_state", threading.local())

    def position_of(self, name: str) -> int:
        rows = self._rows(
            "SELECT position FROM {p}processor_positions WHERE name = :name", {"name": name}
        )
        if rows:
            return int(rows[0]["position"])
        # first start on this store: begin where the tracking table of older releases was
        start = self.max_tracking_id(name) or 0  # type: ignore[attr-defined]
        with self._transaction(commit=True) as c:
            c.execute(
                self._text(
                    "INSERT INTO {p}processor_positions (name, position) "
                    "VALUES (:name, :position) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "position": start},
            )
        return self.position_of(name)

    @contextmanager
    def batch(self, name: str, after: int, last: int) -> Iterator[None]:
        with self._transaction(commit=True) as c:
            # first, so the row lock (PostgreSQL) or the write lock (SQLite) is ours at once
            c.execute(
                self._text(
                    "UPDATE {p}processor_positions SET position = :last "
                    "WHERE name = :name AND position = :after"
                ),
                {"name": name, "after": after, "last": last},
            )
            if rowcount(c) != 1:
                raise PositionMoved(name)
            with _pipelined(c), self._collecting(c):
                yield

    @contextmanager
    def _collecting(self, cursor: Any) -> Iterator[None]:
        """The writes made in this thread are held (`Pending`) and written through `cursor`
        when the block ends without error; on an error they are dropped with the rest of
        the transaction."""
        self._local.cursor = cursor
        self._local.pending = pending = Pending(self._write_pending)
        try:
            yield
            pending.flush()
        finally:
            self._local.cursor = self._local.pending = None

    # --- rebuilding ---------------------------------------------------------------------------

    def fresh_copy(self) -> SqlReadModels:
        fresh = copy.copy(self)  # the same store and statements; other tables
        for own in ("_thread_state", "_texts"):  # per view: its cursor, its table names
            fresh.__dict__.pop(own, None)
        fresh.tables = f"rb{secrets.token_hex(4)}_"
        fresh.create_read_model_tables(indexes=False)
        return fresh

    def swap_in(self, fresh: ReadModelView, name: str, finish: Callable[[], int]) -> int:
        assert isinstance(fresh, SqlReadModels)
        with self._transaction(commit=True) as c:
            # hold the live position first: the live lane's next batch waits, then finds
            # its position moved and carries on from ours
            c.execute(
                self._text(
                    "UPDATE {p}processor_positions SET position = position WHERE name = :name"
                ),
                {"name": name},
            )
            with fresh._collecting(c):
                position = finish()
            for table in TABLES:
                c.execute(f"DROP TABLE IF EXISTS {self.prefix}{self.tables}{table}")
                c.execute(
                    f"ALTER TABLE {self.prefix}{fresh.tables}{table} RENAME TO {self.tables}{table}"
                )
            for statement in self._statements(INDEXES):
                c.execute(statement)
            c.execute(
                self._text(
                    "UPDATE {p}processor_positions SET position = :position WHERE name = :name"
                ),
                {"name": name, "position": position},
            )
        return position

    def drop(self) -> None:
        with self._transaction(commit=True) as c:
            for table in TABLES:
                c.execute(f"DROP TABLE IF EXISTS {self.prefix}{self.tables}{table}")

    def forget_position(self, name: str) -> None:
        with self._transaction(commit=True) as c:
            c.execute(
                self._text("DELETE FROM {p}processor_positions WHERE name = :name"),
                {"name": name},
            )

    def _pending(self) -> Pending:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            raise RuntimeError("read models are written inside a batch, with their position")
        return pending

    def _write_pending(self, pending: Pending) -> None:
        cursor = self._local.cursor
        for rows in pending.statements():
            self._write_rows(cursor, rows)

    def _write_rows(self, cursor: Any, rows: Rows) -> None:
        """One statement for all of `rows` (SQLite: one prepared statement, run per row,
        in-process)."""
        cursor.executemany(self._row_statement(rows), [encode_params(r) for r in rows.rows])

    def _row_statement(self, rows: Rows) -> str:
        table, columns = rows.table, rows.columns
        if rows.kind == "update":
            sets = ", ".join(f"{c} = :{c}" for c in columns)
            return self._text(f"UPDATE {{p}}{table} SET {sets} WHERE id = :id")
        if rows.kind == "delete":
            return self._text(f"DELETE FROM {{p}}{table} WHERE id = :id")
        names, marks = ", ".join(columns), ", ".join(f":{c}" for c in columns)
        return self._text(
            f"INSERT INTO {{p}}{table} ({names}) VALUES ({marks})" + on_conflict(rows)
        )

    def _params(self, statement: str) -> str:
        return statement  # SQLite takes :name as written

    def _rows(self, statement: str, params: dict[str, Any]) -> list[Any]:
        with self._transaction(commit=False) as c:
            c.execute(self._text(statement), encode_params(params))
            return list(c.fetchall())

    def _text(self, statement: str) -> str:
        """The statement as this view's database takes it (made once per statement)."""
        texts = self.__dict__.setdefault("_texts", {})
        if (text := texts.get(statement)) is None:
            text = texts[statement] = self._sql(self._params(statement))
        return text

    # --- writes ---------------------------------------------------------------------------

    def add_user(self, row: UserRow, tracking: Tracking) -> None:
        self._pending().insert("rm_users", USER_COLUMNS, dict(row.__dict__))

    def update_user(
        self, user_id: UUID, changes: dict[str, Any], at: datetime, tracking: Tracking
    ) -> None:
        self._pending().update("rm_users", user_id, {**changes, "updated_at": at})

    def add_session(self, session_id: UUID, user_id: UUID, tracking: Tracking) -> None:
        row = {"id": session_id, "user_id": user_id, "ended": 0}
        self._pending().insert("rm_sessions", SESSION_COLUMNS, row)

    def end_session(self, session_id: UUID, tracking: Tracking) -> None:
        self._pending().update("rm_sessions", session_id, {"ended": 1})

    def add_credit(self, row: CreditRow, tracking: Tracking) -> None:
        pending = self._pending()
        entry = {"seq": tracking.notification_id, **row.__dict__}
        pending.insert("rm_credits", ("seq", *CREDIT_COLUMNS), entry)
        # the entry carries the running balance: the batch's last one per user is the balance
        balance = {"user_id": row.user_id, "balance": row.balance}
        pending.upsert("rm_balances", "user_id", BALANCE_COLUMNS, balance)

    def add_order(self, row: OrderRow, tracking: Tracking) -> None:
        entry = {"seq": tracking.notification_id, **row.__dict__}
        self._pending().insert("rm_orders", ("seq", *ORDER_COLUMNS), entry)

    def update_order(
        self, order_id: UUID, status: str, paid_at: datetime | None, tracking: Tracking
    ) -> None:
        changes: dict[str, Any] = {"status": status}
        if paid_at is not None:
            changes["paid_at"] = paid_at
        self._pending().update("rm_orders", order_id, changes)

    def add_video(self, row: VideoRow, tracking: Tracking) -> None:
        entry = {"seq": tracking.notification_id, **row.__dict__}
        self._pending().insert("rm_videos", ("seq", *VIDEO_COLUMNS), entry)

    def update_video(
        self, video_id: UUID, changes: dict[str, Any], at: datetime, tracking: Tracking
    ) -> None:
        self._pending().update("rm_videos", video_id, {**changes, "updated_at": at})

    def remove_video(self, video_id: UUID, tracking: Tracking) -> None:
        self._pending().delete("rm_videos", video_id)

    # --- reads ----------------------------------------------------------------------------

    def user(self, user_id: UUID) -> UserRow | None:
        rows = self._rows(_select("rm_users", USER_COLUMNS) + " WHERE id = :id", {"id": user_id})
        return UserRow(**_decode(rows[0], USER_COLUMNS)) if rows else None

    def access(self, user_id: UUID, session_id: UUID) -> Access | None:
        columns = ", ".join(f"u.{c} AS {c}" for c in USER_COLUMNS)
        rows = self._rows(
            f"SELECT {columns}, s.ended AS session_ended, s.user_id AS session_user "
            "FROM {p}rm_users u LEFT JOIN {p}rm_sessions s ON s.id = :s WHERE u.id = :u",
            {"u": user_id, "s": session_id},
        )
        return _access(rows[0]) if rows else None

    def follow_log(self, events_table: str, position_name: str) -> None:
        """Let `access_at_head` read the head of the log in `events_table` and the position
        of `position_name` (the read-model lane) with the row, and whether the log holds an
        event of that user or session past the position (the row is then not current)."""
        self._at_head = (
            "SELECT f.head AS head, f.position AS position, "
            f"{self.log_moved_expression(events_table)} AS moved, "
            + ", ".join(f"u.{c} AS {c}" for c in USER_COLUMNS)
            + ", s.ended AS session_ended, s.user_id AS session_user FROM (SELECT "
            f"{self.log_head_expression(events_table)} AS head, (SELECT position FROM "
            "{p}processor_positions WHERE name = :name) AS position) f "
            "LEFT JOIN {p}rm_users u ON u.id = :u LEFT JOIN {p}rm_sessions s ON s.id = :s"
        )
        self._position_name = position_name

    def log_head_expression(self, events_table: str) -> str:
        """A subquery giving the log's last position (the database's own spelling)."""
        raise NotImplementedError

    def log_moved_expression(self, events_table: str) -> str:
        """True if the log holds an event of aggregate :u or :s after f.position (NULL: no
        position yet), in the database's own spelling."""
        raise NotImplementedError

    def access_at_head(self, user_id: UUID, session_id: UUID) -> AccessAtHead:
        row = self._rows(
            self._at_head, {"u": user_id, "s": session_id, "name": self._position_name}
        )[0]
        position = None if row["position"] is None else int(row["position"])
        return AccessAtHead(
            _access(row) if row["id"] else None,
            int(row["head"] or 0),
            position,
            position is None or bool(row["moved"]),
        )

    def balance_of(self, user_id: UUID) -> int:
        rows = self._rows("SELECT balance FROM {p}rm_balances WHERE user_id = :u", {"u": user_id})
        return int(rows[0]["balance"]) if rows else 0

    def all_balances(self) -> dict[UUID, int]:
        rows = self._rows("SELECT user_id, balance FROM {p}rm_balances", {})
        return {UUID(r["user_id"]): int(r["balance"]) for r in rows}

    def credits(self, user_id: UUID, type: str | None, page: int, limit: int) -> Page[CreditRow]:
        return self._page(
            "rm_credits", CREDIT_COLUMNS, CreditRow, user_id, "type", type, page, limit
        )

    def orders(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[OrderRow]:
        return self._page(
            "rm_orders", ORDER_COLUMNS, OrderRow, user_id, "status", status, page, limit
        )

    def order(self, order_id: UUID) -> OrderRow | None:
        rows = self._rows(_select("rm_orders", ORDER_COLUMNS) + " WHERE id = :id", {"id": order_id})
        return OrderRow(**_decode(rows[0], ORDER_COLUMNS)) if rows else None

    def pending_orders(self, created_before: datetime) -> list[UUID]:
        rows = self._rows(
            "SELECT id, created_at FROM {p}rm_orders WHERE status = 'PENDING' ORDER BY seq", {}
        )
        # compared as instants, not as text: stored offsets and precision may differ
        return [
            UUID(r["id"]) for r in rows if datetime.fromisoformat(r["created_at"]) < created_before
        ]

    def videos(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        return self._page(
            "rm_videos", VIDEO_COLUMNS, VideoRow, user_id, "status", status, page, limit
        )

    def video(self, video_id: UUID) -> VideoRow | None:
        return self._video_where("id = :v", {"v": video_id})

    def video_by_share(self, token_hash: str) -> VideoRow | None:
        return self._video_where("share_token_hash = :v", {"v": token_hash})

    def search_users(self, query: str | None, page: int, limit: int) -> Page[UserBalance]:
        where, params = "", {"limit": limit, "offset": (page - 1) * limit}
        if query:
            where = (
                " WHERE LOWER(u.email) LIKE :q ESCAPE '!' OR LOWER(u.username) LIKE :q ESCAPE '!'"
            )
            escaped = query.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params["q"] = f"%{escaped}%"
        total = self._rows(f"SELECT COUNT(*) AS n FROM {{p}}rm_users u{where}", params)[0]["n"]
        columns = ", ".join(f"u.{c} AS {c}" for c in USER_COLUMNS)
        rows = self._rows(
            f"SELECT {columns}, COALESCE(b.balance, 0) AS balance FROM {{p}}rm_users u "
            "LEFT JOIN {p}rm_balances b ON b.user_id = u.id"
            f"{where} ORDER BY u.created_at DESC, u.id LIMIT :limit OFFSET :offset",
            params,
        )
        items = [UserBalance(UserRow(**_decode(r, USER_COLUMNS)), int(r["balance"])) for r in rows]
        return Page(items, int(total), page, limit)

    def all_videos(self, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        return self._page("rm_videos", VIDEO_COLUMNS, VideoRow, None, "status", status, page, limit)

    def unfinished_videos(self) -> list[UUID]:
        rows = self._rows(
            "SELECT id FROM {p}rm_videos WHERE status IN ('PENDING', 'PROCESSING') ORDER BY seq",
            {},
        )
        return [UUID(r["id"]) for r in rows]

    def _video_where(self, condition: str, params: dict[str, Any]) -> VideoRow | None:
        rows = self._rows(_select("rm_videos", VIDEO_COLUMNS) + f" WHERE {condition}", params)
        return VideoRow(**_decode(rows[0], VIDEO_COLUMNS)) if rows else None

    def _page(
        self,
        table: str,
        columns: tuple[str, ...],
        row_type: Any,
        user_id: UUID | None,
        filter_column: str,
        filter_value: str | None,
        page: int,
        limit: int,
    ) -> Page[Any]:
        """One page, newest first: the user's rows, or everyone's (`user_id` None)."""
        conditions = [] if user_id is None else ["user_id = :u"]
        params: dict[str, Any] = {"u": user_id, "limit": limit, "offset": (page - 1) * limit}
        if filter_value is not None:
            conditions.append(f"{filter_column} = :f")
            params["f"] = filter_value
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        total = self._rows(f"SELECT COUNT(*) AS n FROM {{p}}{table}{where}", params)[0]["n"]
        rows = self._rows(
            _select(table, columns) + where + " ORDER BY seq DESC LIMIT :limit OFFSET :offset",
            params,
        )
        items = [row_type(**_decode(r, columns)) for r in rows]
        return Page(items, int(total), page, limit)


def on_conflict(rows: Rows) -> str:
    """An upsert's clause: the row named by its key is replaced."""
    if rows.kind != "upsert":
        return ""
    sets = ", ".join(f"{c} = excluded.{c}" for c in rows.columns if c != rows.key)
    return f" ON CONFLICT ({rows.key}) DO UPDATE SET {sets}"


def _select(table: str, columns: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(columns)} FROM {{p}}{table}"


def encode_params(params: dict[str, Any]) -> dict[str, Any]:
    def encode(value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:  # PostgreSQL text cannot hold NUL
            return value.replace("\x00", "\ufffd")
        if isinstance(value, bool):  # stored as 0/1 in both databases
            return int(value)
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return {k: encode(v) for k, v in params.items()}


def _access(row: Any) -> Access:
    ended, owner = row["session_ended"], row["session_user"]
    return Access(
        UserRow(**_decode(row, USER_COLUMNS)),
        None if ended is None else bool(ended),
        UUID(owner) if owner else None,
    )


def _decode(row: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in columns:
        value = row[column]
        if value is not None and column in UUID_COLUMNS:
            value = UUID(value)
        elif value is not None and column in TIME_COLUMNS:
            value = datetime.fromisoformat(value)
        elif column in BOOL_COLUMNS:
            value = bool(value)
        values[column] = value
    return values


@contextmanager
def _pipelined(cursor: Any) -> Iterator[None]:
    """psycopg's pipeline mode: a batch's statements go out without a round trip each
    (projections only write, so nothing waits for a result). SQLite runs in-process."""
    pipeline = getattr(getattr(cursor, "connection", None), "pipeline", None)
    if pipeline is None:
        yield
        return
    with pipeline():
        yield


def rowcount(cursor: Any) -> int:
    """Rows the last statement changed (eventsourcing wraps SQLite's cursor)."""
    inner = getattr(cursor, "sqlite_cursor", cursor)
    return int(inner.rowcount)


_NAMED = re.compile(r"(?<!:):(\w+)")


def pyformat(statement: str) -> str:
    """`:name` → `%(name)s` for psycopg."""
    return _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))
