"""Which eventsourcing persistence module holds the log: SQLite by default, or PostgreSQL.

Either way the log's recorder is ours (`ledger_chain.py`): the library's, plus the hash
chain written in each insert's transaction."""

from __future__ import annotations

import fcntl
import hashlib
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
from psycopg import sql


def sqlite_env(path: Path) -> dict[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "sora2.adapters.ledger_chain:ChainedSQLiteRecorder",
    }


def postgres_env(database_url: str, schema: str | None) -> dict[str, str]:
    """eventsourcing's POSTGRES_* settings from a `postgresql://user:pass@host:port/db` URL."""
    url = urlparse(database_url)
    if url.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": url.hostname or "localhost",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": "8",  # the handler threads and the runner's lanes share it
        "POSTGRES_MAX_OVERFLOW": "32",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        # a pooled connection is checked before each use: one the server ended (a restart,
        # a failover, pg_terminate_backend) is replaced instead of failing a request; see
        # `check_without_round_trip` for how the check costs nothing
        "POSTGRES_PRE_PING": "y",
        "APPLICATION_RECORDER_TOPIC": "sora2.adapters.ledger_chain:ChainedPostgresRecorder",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
        ensure_schema(env, schema)
    return env


def check_without_round_trip(datastore: Any) -> None:
    """Make the pool's check before each use free: instead of the library's pre-ping (an
    empty query, a round trip before every statement: a third of a read's cost), look at
    the idle connection's socket. Nothing arrives on a pooled connection unasked, so bytes
    or EOF waiting there are the server's goodbye (terminated, restarted): closed, and the
    pool hands out another. Where the pool is not psycopg_pool's, its own check stays."""
    pool = getattr(datastore, "pool", None)
    if pool is not None and getattr(pool, "_check", None) is not None:
        pool._check = _unbroken


def _unbroken(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and not conn.broken:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        if not readable:
            return
    conn.close()  # so the pool discards it rather than keep it
    raise psycopg.OperationalError("the server ended this pooled connection")


def wait_for_connections_in_use(datastore: Any, timeout: float) -> None:
    """Before the store closes: let statements running in other threads end (up to `timeout`
    seconds in all). The library's SQLite pool closes connections in use too, and a SQLite
    connection closed under a running statement crashes the process (a segfault in CI).
    psycopg's pool ends a statement's connection with an error instead, so it is left as it is.
    """
    pool = getattr(datastore, "pool", None)
    in_use = getattr(pool, "_in_use", None)
    if not isinstance(in_use, dict):
        return
    deadline = time.monotonic() + timeout
    for conn in list(in_use.values()):
        lock = getattr(conn, "in_use", None)
        if lock is not None and lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            lock.release()


def ensure_schema(env: dict[str, str], schema: str) -> None:
    # two processes creating one schema at once: the second would fail on pg_namespace
    with psycopg.connect(**_connect_args(env)) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_setup_lock_key(schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


@contextmanager
def schema_setup(env: dict[str, str]) -> Iterator[None]:
    """Create tables and functions one process at a time.

    eventsourcing re-creates its tables and functions at each start (`CREATE OR REPLACE
    FUNCTION`), and PostgreSQL fails one of two such statements racing on one function
    ("tuple concurrently updated"): processes started together take turns on a session
    advisory lock, held on a connection of its own for the whole set-up. On SQLite two
    processes creating a fresh file's tables both record its migration (one fails): they
    take turns on a lock of the file beside it.
    """
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        with _file_lock(env.get("SQLITE_DBNAME", "")):
            yield
        return
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    key = _setup_lock_key(env.get("POSTGRES_SCHEMA") or "public")
    with psycopg.connect(**_connect_args(env), autocommit=True) as conn:
        # polled, not awaited in one call: a blocking wait holds the GIL, and uvicorn's
        # supervisor kills a child that cannot answer its health check for 5 s
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            time.sleep(0.05)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextmanager
def _file_lock(dbname: str) -> Iterator[None]:
    """An exclusive lock on `<dbname>.setup-lock` (none for an in-memory database), polled
    like the advisory lock above."""
    if not dbname or dbname == ":memory:" or dbname.startswith("file:"):
        yield
        return
    path = Path(f"{dbname}.setup-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _setup_lock_key(schema: str) -> int:
    """A signed 64-bit advisory-lock key of this schema's set-up."""
    digest = hashlib.sha256(f"sora2 schema set-up {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def drop_schema(env: dict[str, str], schema: str) -> None:
    with psycopg.connect(**_connect_args(env), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def ping(env: dict[str, str]) -> None:
    """Raise unless the database answers (readiness)."""
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        with psycopg.connect(**_connect_args(env), connect_timeout=3) as conn:
            conn.execute("SELECT 1")


def connect_args(env: dict[str, str]) -> dict[str, str]:
    """psycopg's connection arguments for these settings (the auditors' own connection)."""
    return _connect_args(env)


def _connect_args(env: dict[str, str]) -> dict[str, str]:
    return {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"],
    }
