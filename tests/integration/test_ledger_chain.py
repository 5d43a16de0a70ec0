"""The hash chain under concurrent writers, on real PostgreSQL and SQLite.

Two containers (two connection pools, like two server processes) write at once from many
threads, through group commit; every event must end up linked, in notification-id order,
each link hashing from the one before, as the auditor's Python recomputes it. A log whose
links are missing (written before the chain) is linked in one go by the backlog step.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from sora2.adapters import ledger_chain
from sora2.application.audit import LedgerAudit
from sora2.application.processing.log_reader import LogReader
from sora2.bootstrap import Sora2, audit_store, bootstrap
from tests.conftest import FastHasher
from tests.support.backends import POSTGRES_URL, postgres_settings, sqlite_settings

WRITERS = 2
THREADS = 8
USERS_PER_THREAD = 3


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Sora2]]:
    def start(settings) -> list[Sora2]:  # noqa: ANN001
        apps = [bootstrap(settings, hasher=FastHasher()) for _ in range(WRITERS)]
        for app in apps:
            app.jobs.shutdown()
        return apps

    if request.param == "sqlite":
        apps = start(sqlite_settings(tmp_path))
        yield apps
    else:
        with postgres_settings(tmp_path) as settings:
            apps = start(settings)
            yield apps
            for app in apps:
                app.close()
            return
    for app in apps:
        app.close()


def write_concurrently(apps: list[Sora2]) -> None:
    barrier = threading.Barrier(WRITERS * THREADS)
    errors: list[BaseException] = []

    def work(app: Sora2, n: int) -> None:
        try:
            barrier.wait()
            for i in range(USERS_PER_THREAD):
                user = app.accounts.register(f"u{n}-{i}@example.com", f"u{n}x{i}", "password123")
                app.videos.request(user.user.id, "a cat", 5, "16:9")
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(app, w * THREADS + t))
        for w, app in enumerate(apps)
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    apps[0].read_models.catch_up()


def test_concurrent_writers_chain_every_event_in_log_order(apps: list[Sora2]) -> None:
    write_concurrently(apps)
    report = LedgerAudit(audit_store(apps[0])).verify()
    assert report.ok, report.problems[:5]
    assert report.users == WRITERS * THREADS * USERS_PER_THREAD
    assert report.chained_up_to == report.log_position == apps[0].log.position


def delete_links(app: Sora2) -> None:
    if app.settings.database_url:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
            db.execute(f'DELETE FROM "{app.settings.postgres_schema}".ledger_chain')
    else:
        with closing(sqlite3.connect(app.settings.sqlite_path)) as db, db:
            db.execute("DELETE FROM ledger_chain")


def test_a_log_without_links_is_reported_then_linked_by_the_backlog(apps: list[Sora2]) -> None:
    write_concurrently(apps)
    delete_links(apps[0])
    audit = LedgerAudit(audit_store(apps[0]))

    report = audit.verify()
    assert [p.kind for p in report.problems] == ["chain"]
    assert f"{report.events} events from 1 to {report.log_position}: not in the chain" in (
        report.problems[0].message
    )

    head = audit.checkpoint_head()
    assert head is not None and head.position == apps[0].log.position
    assert LedgerAudit(audit_store(apps[0])).verify().ok
    apps[1].accounts.register("late@example.com", "late", "password123")  # links go on
    apps[0].read_models.catch_up()
    assert LedgerAudit(audit_store(apps[0])).verify().ok


@pytest.mark.postgres
def test_links_are_written_page_by_page_past_a_backlog_longer_than_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's chain function walks the unlinked events a page at a time (an index
    scan from the head): a backlog of many pages is linked whole, by the backlog step and
    by an insert alike."""
    monkeypatch.setattr(ledger_chain, "CHAIN_PAGE", 7)
    with postgres_settings(tmp_path) as settings:
        app = bootstrap(settings, hasher=FastHasher())
        app.jobs.shutdown()
        try:
            for i in range(6):
                user = app.accounts.register(f"p{i}@example.com", f"page{i}", "password123")
                app.videos.request(user.user.id, "a cat", 5, "16:9")
            assert app.log.position > 3 * 7
            delete_links(app)
            head = LedgerAudit(audit_store(app)).checkpoint_head()
            assert head is not None and head.position == app.log.position
            assert LedgerAudit(audit_store(app)).verify().ok

            delete_links(app)
            app.accounts.register("late@example.com", "late", "password123")
            app.read_models.catch_up()
            report = LedgerAudit(audit_store(app)).verify()
            assert report.ok, report.problems[:3]
            assert report.chained_up_to == report.log_position == app.log.position
        finally:
            app.close()


def test_records_read_for_the_relay_are_the_stored_notifications(apps: list[Sora2]) -> None:
    """The recorder's plain-row read (PostgreSQL) gives what `select_notifications` does,
    page by page; SQLite's recorder has none and the library's read serves."""
    write_concurrently(apps)
    log = apps[0].log
    reader = LogReader(log)
    notifications = log.recorder.select_notifications(start=1, limit=10_000)
    read, after = [], 0
    while page := reader.read_records(after, 7):
        assert [s.position for s in page] == [s.event.id for s in page]
        assert all(s.topic == s.event.topic for s in page)
        read.extend(page)
        after = page[-1].position
    assert [
        (s.event.id, s.event.originator_id, s.event.originator_version, s.event.topic) for s in read
    ] == [(n.id, n.originator_id, n.originator_version, n.topic) for n in notifications]
    assert [bytes(s.event.state) for s in read] == [n.state for n in notifications]
    assert all(type(s.event.state) is bytes for s in read)
    decoded = [log.mapper.to_domain_event(s.event) for s in read[:20]]  # the relay's fallback
    assert decoded == [log.mapper.to_domain_event(n) for n in notifications[:20]]
    assert reader.read_records(after, 7) == []
