"""A command's cost against the user's history, each figure against a baseline measured in
the same run.

The command is what `Videos.request` does through the event log: create the video, load
the user's ledger, reserve the credits, save both in one write. Its p50 for a user whose
ledger holds 10,000 events is compared with a new user's (goal: at most 1.5x), and with the
same user loaded with snapshots off, i.e. folding every event as the log did before
`EventLog.snapshotting_intervals`. SQLite, then PostgreSQL if it answers.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.backends import POSTGRES_URL  # noqa: E402

from sora2.adapters.event_store import drop_schema, ping, postgres_env, sqlite_env  # noqa: E402
from sora2.application.event_log import EventLog, retry_on_conflict  # noqa: E402
from sora2.domain.credits.ledger import CreditLedger  # noqa: E402
from sora2.domain.videos.video import Video  # noqa: E402

HISTORY = 10_000  # ledger events of the long-standing user
SAMPLES = 300
GOAL = 1.5
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sora2-bench-"))
    measure_http(folder / "http")
    measure("SQLite", sqlite_env(folder / "log.db"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        ping(postgres_env(POSTGRES_URL, None))
    except Exception as error:  # noqa: BLE001
        print(f"PostgreSQL: skipped ({type(error).__name__}: not reachable)")
        return
    try:
        measure("PostgreSQL", postgres_env(POSTGRES_URL, schema))
    finally:
        drop_schema(postgres_env(POSTGRES_URL, None), schema)


def measure(backend: str, env: dict[str, str]) -> None:
    log = EventLog(env=env)
    started = time.perf_counter()
    veteran = long_history(log, HISTORY)
    built = time.perf_counter() - started

    for _ in range(20):  # warm the connections and caches
        reserve(log, new_user(log))
        reserve(log, veteran)
        deliver(log, veteran)

    fresh, long_standing = [], []
    for _ in range(SAMPLES):  # interleaved, so drift in the machine touches both alike
        user_id = new_user(log)
        fresh.append(timed(reserve, log, user_id))
        long_standing.append(timed(reserve, log, veteran))
        deliver(log, veteran)  # as a finished render does: the user's holds stay few

    plain = EventLog(env={**env, "IS_SNAPSHOTTING_ENABLED": "n"})
    replayed = [timed(reserve, plain, veteran) for _ in range(5)]
    plain.close()
    log.close()

    new_p50, old_p50, replay_p50 = (statistics.median(t) for t in (fresh, long_standing, replayed))
    interval = EventLog.snapshotting_intervals[CreditLedger]
    verdict = "goal met" if old_p50 / new_p50 <= GOAL else "GOAL MISSED"
    print(
        f"reserve command (load ledger + reserve + save video and ledger), {backend}, "
        f"p50 of {SAMPLES}; a {HISTORY:,}-event history built in {built:.1f} s\n"
        f"  new user                          {new_p50 * 1000:8.2f} ms\n"
        f"  user with {HISTORY:,} ledger events     {old_p50 * 1000:8.2f} ms"
        f"  = {old_p50 / new_p50:.2f}x the new user (goal <= {GOAL}x: {verdict}; "
        f"a snapshot every {interval} events)\n"
        f"  same user, snapshots off          {replay_p50 * 1000:8.2f} ms"
        f"  = {replay_p50 / new_p50:.0f}x (p50 of 5: every event folded, the log before "
        f"snapshots)",
        flush=True,
    )


def measure_http(folder: Path) -> None:
    """POST /api/videos/generate over HTTP on embedded defaults: a registered user whose
    ledger holds 10,000 events against new users, interleaved."""
    from tests.conftest import FastHasher
    from tests.support.backends import sqlite_settings
    from tests.support.server import client, serving

    from sora2.adapters.http.app import create_app
    from sora2.bootstrap import bootstrap

    sora2 = bootstrap(sqlite_settings(folder, VIDEO_JOBS="off"), hasher=FastHasher())
    with serving(create_app(sora2)) as base:

        def register(name: str) -> tuple[str, uuid.UUID]:
            with client(base) as c:
                body = c.post(
                    "/api/auth/register",
                    json={
                        "email": f"{name}@example.com",
                        "password": "password123",
                        "username": name,
                    },
                ).json()
            return body["accessToken"], uuid.UUID(body["user"]["id"])

        veteran_token, veteran = register("veteran")
        ledger = sora2.log.load(CreditLedger, CreditLedger.create_id(veteran))
        ledger.reward(10_000_000, "bench", NOW)
        while ledger.version < HISTORY:
            video_id = uuid.uuid4()
            ledger.reserve(video_id, 5, NOW)
            ledger.settle(video_id, NOW) if ledger.version % 5 else ledger.refund(video_id, NOW)
            if len(ledger.pending_events) >= 1_000:
                sora2.log.commit(ledger)
        sora2.log.commit(ledger)
        sora2.read_models.wait_for(sora2.log.position, timeout=120)
        newcomers = [register(f"new{i}")[0] for i in range(60)]

        def generate(token: str) -> float:
            with client(base, token) as c:
                started = time.perf_counter()
                r = c.post("/api/videos/generate", json={"prompt": "a lighthouse at dawn"})
                elapsed = time.perf_counter() - started
            assert r.status_code == 201, r.text
            return elapsed

        fresh, long_standing = [], []
        for i in range(120):
            fresh.append(generate(newcomers[i % len(newcomers)]))  # at most 2 videos each
            long_standing.append(generate(veteran_token))
    sora2.close()
    new_p50, old_p50 = statistics.median(fresh[20:]), statistics.median(long_standing[20:])
    verdict = "goal met" if old_p50 / new_p50 <= GOAL else "GOAL MISSED"
    print(
        f"POST /api/videos/generate over HTTP, embedded defaults, p50 of 100: new user "
        f"{new_p50 * 1000:.2f} ms, user with {HISTORY:,} ledger events {old_p50 * 1000:.2f} ms"
        f" = {old_p50 / new_p50:.2f}x (goal <= {GOAL}x: {verdict})",
        flush=True,
    )


def long_history(log: EventLog, events: int) -> uuid.UUID:
    """A user whose ledger has `events` events: videos reserved, then most delivered and
    some refunded; saved a thousand events per save, so it builds in seconds."""
    user_id = uuid.uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    ledger.reward(10_000_000, "Signup bonus", NOW)
    n = 0
    while ledger.version < events:
        n += 1
        video_id = uuid.uuid4()
        ledger.reserve(video_id, 5, NOW)
        ledger.settle(video_id, NOW) if n % 5 else ledger.refund(video_id, NOW)
        if len(ledger.pending_events) >= 1_000:
            log.save(ledger)
    log.save(ledger)
    return user_id


def new_user(log: EventLog) -> uuid.UUID:
    user_id = uuid.uuid4()
    ledger = CreditLedger(user_id=user_id, timestamp=NOW)
    ledger.reward(100, "Signup bonus", NOW)
    log.save(ledger)
    return user_id


def reserve(log: EventLog, user_id: uuid.UUID) -> None:
    """`Videos.request` without the read side: one video and its reservation, one write."""
    video_id = uuid.uuid4()

    def decide() -> int | None:
        video = Video.request(video_id, user_id, "a lighthouse at dawn", 5, "16:9", 1, NOW)
        ledger = log.load(CreditLedger, CreditLedger.create_id(user_id), "ledger")
        ledger.reserve(video.id, video.cost, NOW)
        return log.commit(video, ledger)

    retry_on_conflict(decide)


def deliver(log: EventLog, user_id: uuid.UUID) -> None:
    ledger = log.load(CreditLedger, CreditLedger.create_id(user_id), "ledger")
    for video_id in ledger.held:
        ledger.settle(video_id, NOW)
    log.commit(ledger)


def timed(
    command: Callable[[EventLog, uuid.UUID], None], log: EventLog, user_id: uuid.UUID
) -> float:
    started = time.perf_counter()
    command(log, user_id)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
