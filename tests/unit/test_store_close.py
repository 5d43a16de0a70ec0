"""Closing the log's store while another thread runs a statement: the library's SQLite pool
closes connections in use too, and a SQLite connection closed under a statement crashes the
process (CI died of it). The container waits for statements in flight first."""

from __future__ import annotations

import threading
from pathlib import Path

from sora2.adapters.event_store import sqlite_env, wait_for_connections_in_use
from sora2.application.event_log import EventLog


def test_the_store_waits_for_a_statement_in_another_thread_before_it_closes(
    tmp_path: Path,
) -> None:
    log = EventLog(env=sqlite_env(tmp_path / "log.sqlite"))
    datastore = log.factory.datastore  # type: ignore[attr-defined]
    holding = threading.Event()
    answers: list[object] = []

    def read_slowly() -> None:
        with datastore.transaction(commit=False) as cursor:
            holding.set()
            threading.Event().wait(0.5)  # the statement is still to run when close is asked
            cursor.execute("SELECT count(*) FROM sqlite_master")
            answers.append(cursor.fetchall())

    reader = threading.Thread(target=read_slowly)
    reader.start()
    assert holding.wait(timeout=30)
    wait_for_connections_in_use(datastore, timeout=30)
    assert answers  # the reader's statement ran, and its connection came back, first
    log.close()
    reader.join(timeout=30)
