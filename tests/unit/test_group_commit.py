"""Group commit on a real (SQLite) log: queued commands share one transaction, a version
race in a group fails only the command that lost it, and every command gets its own ids."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import RecordConflictError

from sora2.adapters.event_store import sqlite_env
from sora2.application.event_log import EventLog
from sora2.application.group_commit import GroupCommit
from sora2.domain.credits.ledger import CreditLedger

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pending_of(*aggregates: object) -> ProcessingEvent:
    pending: ProcessingEvent = ProcessingEvent()
    pending.collect_events(*aggregates)
    return pending


def test_queued_saves_share_a_transaction_and_a_lost_race_fails_alone(tmp_path: Path) -> None:
    log = EventLog(env=sqlite_env(tmp_path / "log.sqlite"))
    try:
        contested = CreditLedger(user_id=uuid4(), timestamp=NOW)
        log.commit(contested)
        rivals = [log.load(CreditLedger, contested.id) for _ in range(2)]
        for rival in rivals:
            rival.reward(5, "race", NOW)  # both write version 2: one must lose

        transactions: list[int] = []
        first_started, release = threading.Event(), threading.Event()

        def record(pending: ProcessingEvent):  # noqa: ANN202
            transactions.append(len(pending.events))
            if len(transactions) == 1:  # hold the first save until the others queue up
                first_started.set()
                release.wait(10)
            return log._record(pending)

        group = GroupCommit(record)
        results: dict[str, object] = {}

        def save(name: str, *aggregates: object) -> None:
            try:
                results[name] = group.save(pending_of(*aggregates))
            except RecordConflictError as error:
                results[name] = error

        first = threading.Thread(
            target=save, args=("first", CreditLedger(user_id=uuid4(), timestamp=NOW))
        )
        first.start()
        assert first_started.wait(10)
        others = [
            threading.Thread(
                target=save, args=(f"new{i}", CreditLedger(user_id=uuid4(), timestamp=NOW))
            )
            for i in range(10)
        ] + [threading.Thread(target=save, args=(f"rival{i}", r)) for i, r in enumerate(rivals)]
        for thread in others:
            thread.start()
        while len(group._queue) < len(others):  # all queued behind the held save
            threading.Event().wait(0.005)
        release.set()
        for thread in [first, *others]:
            thread.join(10)

        outcomes = {name: isinstance(r, RecordConflictError) for name, r in results.items()}
        assert sorted(n for n, lost in outcomes.items() if lost) in (["rival0"], ["rival1"])
        assert len(transactions) <= 4  # 13 commands: the held one, then grouped rounds
        ids = [rec.notification.id for r in results.values() if isinstance(r, list) for rec in r]
        assert len(ids) == len(set(ids)) == 1 + 10 + 1  # each its own, none twice
        assert log.load(CreditLedger, contested.id).balance == 5  # one reward, not two
    finally:
        log.close()


def test_a_lone_command_is_saved_in_its_own_thread(tmp_path: Path) -> None:
    log = EventLog(env=sqlite_env(tmp_path / "log.sqlite"))
    try:
        callers: list[str] = []

        def record(pending: ProcessingEvent):  # noqa: ANN202
            callers.append(threading.current_thread().name)
            return log._record(pending)

        recordings = GroupCommit(record).save(
            pending_of(CreditLedger(user_id=uuid4(), timestamp=NOW))
        )
        assert len(recordings) == 1 and callers == [threading.current_thread().name]
    finally:
        log.close()


def test_a_failed_group_leaves_nothing_half_written(tmp_path: Path) -> None:
    log = EventLog(env=sqlite_env(tmp_path / "log.sqlite"))
    try:
        ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
        log.commit(ledger)
        stale = log.load(CreditLedger, ledger.id)
        fresh = log.load(CreditLedger, ledger.id)
        fresh.reward(1, "first", NOW)
        log.commit(fresh)
        stale.reward(2, "stale", NOW)
        with pytest.raises(RecordConflictError):
            log.commit(stale)
        assert log.load(CreditLedger, ledger.id).balance == 1
    finally:
        log.close()
