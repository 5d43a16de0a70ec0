"""Snapshots: an aggregate whose history grows is loaded from its latest snapshot plus the
events after it, and that is the same aggregate as folding every event.

`EventLog.snapshotting_intervals` is the whole mechanism (the library takes a snapshot when
a save records a version that is a multiple of the interval); these tests prove each
snapshotted aggregate's state survives the JSON transcoder unchanged, on SQLite and on
PostgreSQL, however the events were grouped into saves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sora2.adapters.event_store import drop_schema, postgres_env, sqlite_env
from sora2.application.event_log import EventLog
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import DomainError
from sora2.domain.users.session import Session
from sora2.domain.users.user import User
from sora2.domain.videos.video import Video
from tests.support.backends import POSTGRES_URL

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    """The log on SQLite, or on PostgreSQL in a schema of its own, dropped afterwards."""
    schema = f"t_{uuid4().hex[:16]}" if request.param == "postgres" else None
    try:
        env = postgres_env(POSTGRES_URL, schema) if schema else sqlite_env(tmp_path / "log.db")
        event_log = EventLog(env=env)
        try:
            yield event_log
        finally:
            event_log.close()
    finally:
        if schema:
            drop_schema(postgres_env(POSTGRES_URL, None), schema)


def state(aggregate: Aggregate) -> tuple[type, dict[str, Any]]:
    return type(aggregate), vars(aggregate)


def full_replay(log: EventLog, aggregate_id: UUID) -> Aggregate:
    """The aggregate folded from its first event, no snapshot involved."""
    return project_aggregate(None, log.events.get(aggregate_id))


class Saves:
    """Saves an aggregate's new events in groups of varying size, as commands (an event or
    two) and bulk writes (a save that crosses several snapshot versions) do."""

    GROUPS = (1, 1, 2, 3, 25, 1, 7, 12)

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.groups = itertools.cycle(self.GROUPS)
        self.size = next(self.groups)

    def __call__(self, aggregate: Aggregate) -> None:
        if len(aggregate.pending_events) >= self.size:
            self.log.save(aggregate)
            self.size = next(self.groups)


# --- one history per snapshotted aggregate, each growing the way the product grows it ------


def ledger_history(save: Saves, events: int) -> Aggregate:
    ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
    ledger.reward(100_000, "Signup bonus", NOW)
    n = 0
    while ledger.version < events:
        n += 1
        if n % 7 == 0:
            ledger.recharge(uuid4(), 50, NOW)
        video_id = uuid4()
        ledger.reserve(video_id, 5, NOW)
        if n % 3:  # one in three stays held: a video still rendering
            ledger.settle(video_id, NOW) if n % 2 else ledger.refund(video_id, NOW)
        save(ledger)
    return ledger


def session_history(save: Saves, events: int) -> Aggregate:
    session = Session(id=uuid4(), user_id=uuid4(), token_id=uuid4(), epoch=0, timestamp=NOW)
    at = NOW
    while session.version < events:
        at += timedelta(minutes=15)
        assert session.rotate(session.token_id, uuid4(), at)  # one rotation per refresh
        save(session)
    return session


def user_history(save: Saves, events: int) -> Aggregate:
    user = User.register(uuid4(), "ada@example.com", "ada", "hash-0", NOW)
    n = 0
    while user.version < events:
        n += 1
        at = NOW + timedelta(hours=n)
        kind = n % 4
        if kind == 0:
            user.change_username(f"ada_{n}", at)
        elif kind == 1:
            user.request_password_reset(f"reset-{n}", at + timedelta(hours=1), at)
        elif kind == 2:
            user.change_avatar(f"avatars/{n}.png", at)
        else:
            user.change_password(f"hash-{n}", at)
        save(user)
    return user


def video_history(save: Saves, events: int) -> Aggregate:
    video = Video.request(uuid4(), uuid4(), "a lighthouse at dawn", 5, "16:9", 1, NOW)
    video.start(NOW, "runner-1")
    video.complete("videos/v.mp4", "thumbnails/v.jpg", NOW)
    n = 0
    while video.version < events:
        n += 1
        if video.share_token_hash is None:
            video.share(f"token-{n}", NOW)
        else:
            video.revoke_share(NOW)
        save(video)
    return video


HISTORIES: dict[type[Aggregate], Callable[[Saves, int], Aggregate]] = {
    CreditLedger: ledger_history,
    Session: session_history,
    User: user_history,
    Video: video_history,
}


def test_every_aggregate_that_grows_with_use_is_snapshotted() -> None:
    assert set(EventLog.snapshotting_intervals) == set(HISTORIES)


@pytest.mark.parametrize("cls", list(HISTORIES), ids=lambda cls: cls.__name__)
def test_an_aggregate_loads_from_its_latest_snapshot_as_if_replayed_in_full(
    log: EventLog, cls: type[Aggregate], monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = EventLog.snapshotting_intervals[cls]
    save = Saves(log)
    written = HISTORIES[cls](save, 3 * interval + interval // 2)
    log.save(written)
    version = written.version
    assert version > 3 * interval

    assert log.snapshots is not None
    snapshots = list(log.snapshots.get(written.id))
    expected = list(range(interval, version + 1, interval))
    assert [s.originator_version for s in snapshots] == expected  # one per interval
    assert len(list(log.snapshots.recorder.select_events(written.id))) == len(expected)

    reads: list[int | None] = []
    events_get = log.events.get

    def spy(originator_id: UUID, **kwargs: Any) -> Any:
        reads.append(kwargs.get("gt"))
        return events_get(originator_id, **kwargs)

    monkeypatch.setattr(log.events, "get", spy)
    loaded = log.repository.get(written.id)
    monkeypatch.undo()

    assert reads == [expected[-1]]  # only the events after the latest snapshot were read
    assert loaded.version == version
    assert state(loaded) == state(full_replay(log, written.id)) == state(written)


def test_a_command_reaching_a_multiple_snapshots_what_it_holds_without_reading_the_store(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library reloads an aggregate (snapshot and events) to snapshot it; a command
    whose save ends on the multiple snapshots the aggregate it holds, as committed."""
    ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
    ledger.reward(100, "Signup bonus", NOW)
    log.save(ledger)
    for _ in range(8):  # versions 3..10
        ledger.reserve(uuid4(), 1, NOW)
    reads: list[str] = []
    for store in (log.events, log.snapshots):
        monkeypatch.setattr(store, "get", lambda *a, _=store, **k: reads.append(str(a)) or [])
    log.commit(ledger)
    monkeypatch.undo()

    assert reads == []
    (snapshot,) = log.snapshots.get(ledger.id)
    assert snapshot.originator_version == 10
    assert state(log.repository.get(ledger.id)) == state(full_replay(log, ledger.id))


def test_a_snapshot_is_read_the_same_by_a_log_that_does_not_snapshot(
    log: EventLog,
) -> None:
    """Turning snapshots off (IS_SNAPSHOTTING_ENABLED=n) folds every event again; both agree."""
    written = ledger_history(Saves(log), 45)
    log.save(written)
    plain = EventLog(env={**log.env, "IS_SNAPSHOTTING_ENABLED": "n"})
    try:
        assert plain.snapshots is None
        assert state(plain.repository.get(written.id)) == state(log.repository.get(written.id))
    finally:
        plain.close()


def test_a_ledger_with_a_long_history_has_a_small_snapshot(tmp_path: Path) -> None:
    """Delivered and refunded videos leave nothing behind in the ledger's state, so its
    snapshot (what every load decodes) is as small after 10,000 events as after 10."""
    log = EventLog(env=sqlite_env(tmp_path / "log.db"))
    ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
    ledger.reward(100_000, "Signup bonus", NOW)
    ledger.recharge(uuid4(), 100, NOW)
    ledger.reward(5, "Referral", NOW)
    for n in range(5_000):  # versions 5..10004, a hold and its outcome
        video_id = uuid4()
        ledger.reserve(video_id, 5, NOW)
        ledger.settle(video_id, NOW) if n % 4 else ledger.refund(video_id, NOW)
    log.save(ledger)
    assert log.snapshots is not None
    (latest,) = log.snapshots.get(ledger.id, desc=True, limit=1)
    assert latest.originator_version == 10_000
    assert set(latest.state) == {
        "_created_on",
        "_modified_on",
        "user_id",
        "balance",
        "_holds",
        "_credited_orders",
        "_reversed_orders",
    }
    assert (latest.state["_holds"], len(latest.state["_credited_orders"])) == ({}, 1)
    (stored,) = log.snapshots.recorder.select_events(ledger.id, desc=True, limit=1)
    assert len(stored.state) < 600  # bytes
    log.close()


# --- any run of ledger commands -------------------------------------------------------------

VIDEOS = [UUID(int=n) for n in range(1, 6)]  # few ids, so commands meet the same video often
ORDERS = [UUID(int=n) for n in range(101, 104)]
amounts = st.integers(min_value=-2, max_value=40)
commands = st.one_of(
    st.tuples(st.just("reward"), amounts),
    st.tuples(st.just("recharge"), st.sampled_from(ORDERS), amounts),
    st.tuples(st.just("reserve"), st.sampled_from(VIDEOS), amounts),
    st.tuples(st.just("refund"), st.sampled_from(VIDEOS)),
    st.tuples(st.just("settle"), st.sampled_from(VIDEOS)),
)


def run(ledger: CreditLedger, command: tuple[Any, ...], at: datetime) -> None:
    name, *args = command
    try:
        if name == "reward":
            ledger.reward(*args, "bonus", at)
        else:
            getattr(ledger, name)(*args, at)
    except DomainError:
        pass  # refused: recorded nothing


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run_of=st.lists(commands, max_size=60),
    group=st.integers(min_value=1, max_value=12),
    cut=st.integers(min_value=1, max_value=70),
)
def test_latest_snapshot_plus_later_events_is_the_full_replay(
    run_of: list[tuple[Any, ...]], group: int, cut: int
) -> None:
    log = EventLog(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"})
    try:
        ledger = CreditLedger(user_id=uuid4(), timestamp=NOW)
        for step, command in enumerate(run_of, start=1):
            run(ledger, command, NOW + timedelta(seconds=step))
            if step % group == 0:  # several commands in one save, sometimes across a snapshot
                log.save(ledger)
        log.save(ledger)
        assert log.snapshots is not None

        latest = list(log.snapshots.get(ledger.id, desc=True, limit=1))
        interval = EventLog.snapshotting_intervals[CreditLedger]
        assert [s.originator_version for s in latest] == (
            [ledger.version // interval * interval] if ledger.version >= interval else []
        )
        after = latest[0].originator_version if latest else None
        resumed = project_aggregate(None, [*latest, *log.events.get(ledger.id, gt=after)])
        replayed = full_replay(log, ledger.id)
        assert state(resumed) == state(replayed) == state(ledger)
        assert state(log.repository.get(ledger.id)) == state(replayed)

        # a snapshot at any version, then the rest of the events, reaches the same ledger
        at = min(cut, ledger.version)
        if at % interval:  # the multiples have theirs already
            log.take_snapshot(ledger.id, version=at)
        assert state(log.repository.get(ledger.id)) == state(replayed)
        assert state(log.repository.get(ledger.id, version=at)) == state(
            project_aggregate(None, log.events.get(ledger.id, lte=at))
        )
    finally:
        log.close()


def test_a_cached_aggregate_is_brought_up_to_date_with_another_process_saves(
    log: EventLog, tmp_path: Path
) -> None:
    """The aggregate cache: each load reads the events saved since the cached version,
    so a second process's save is never missed and never overwritten."""
    other = EventLog(env=log.env)  # a second process on the same store
    try:
        user_id = uuid4()
        ledger = CreditLedger(user_id, NOW)
        ledger.reward(100, "signup", NOW)
        log.commit(ledger)
        assert log.load(CreditLedger, ledger.id).balance == 100  # now cached here

        theirs = other.load(CreditLedger, ledger.id)
        theirs.reserve(uuid4(), 30, NOW)
        other.commit(theirs)

        ours = log.load(CreditLedger, ledger.id)
        assert (ours.balance, ours.version) == (70, theirs.version)
        ours.reserve(uuid4(), 70, NOW)
        log.commit(ours)  # no conflict: it was up to date
        assert other.load(CreditLedger, ledger.id).balance == 0
    finally:
        other.close()


def test_a_command_that_fails_after_changing_its_copy_leaves_the_cache_untouched(
    log: EventLog,
) -> None:
    ledger = CreditLedger(uuid4(), NOW)
    ledger.reward(10, "signup", NOW)
    log.commit(ledger)
    copy = log.load(CreditLedger, ledger.id)
    copy.reserve(uuid4(), 10, NOW)  # decided, then the command fails before its save
    with pytest.raises(DomainError):
        copy.reserve(uuid4(), 1, NOW)
    again = log.load(CreditLedger, ledger.id)
    assert (again.balance, again.version) == (10, ledger.version)
