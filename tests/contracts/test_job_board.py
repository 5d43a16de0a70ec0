"""The job board's contract, on SQLite and on PostgreSQL: claims, take-overs, heartbeats,
progress and the render rate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from sora2.application.ports import JobBoard
from sora2.bootstrap import bootstrap
from sora2.config import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def alive(worker: str) -> bool:
    return False


@pytest.fixture
def board(backend_settings: Settings) -> Iterator[JobBoard]:
    sora2 = bootstrap(backend_settings)
    try:
        yield sora2.board
    finally:
        sora2.close()


def test_a_free_job_goes_to_its_first_claimant_only(board: JobBoard) -> None:
    video = uuid4()
    assert board.claim(video, "host:1:a", T0, LEASE, alive)
    assert not board.claim(video, "host:2:b", T0 + timedelta(seconds=30), LEASE, alive)
    assert board.claim(video, "host:1:a", T0 + timedelta(seconds=30), LEASE, alive)  # a restart
    assert board.states([video])[video].worker == "host:1:a"


def test_a_silent_runner_loses_its_job_after_the_lease(board: JobBoard) -> None:
    video = uuid4()
    board.claim(video, "host:1:a", T0, LEASE, alive)
    assert board.beat(video, "host:1:a", T0 + timedelta(seconds=50))
    assert not board.claim(video, "host:2:b", T0 + timedelta(seconds=100), LEASE, alive)
    assert board.claim(video, "host:2:b", T0 + timedelta(seconds=111), LEASE, alive)
    assert not board.beat(video, "host:1:a", T0 + timedelta(seconds=112))  # it must stop
    assert board.beat(video, "host:2:b", T0 + timedelta(seconds=112))


def test_a_runner_known_to_be_gone_loses_its_job_at_once(board: JobBoard) -> None:
    video = uuid4()
    board.claim(video, "host:1:a", T0, LEASE, alive)
    assert board.claim(video, "host:2:b", T0, LEASE, lambda worker: worker == "host:1:a")


def test_racing_claims_have_one_winner(board: JobBoard) -> None:
    for _ in range(5):
        video, wins = uuid4(), []
        start = threading.Barrier(6)

        def claim(worker: str, video=video, wins=wins, start=start) -> None:
            start.wait()
            if board.claim(video, worker, T0, LEASE, alive):
                wins.append(worker)

        threads = [threading.Thread(target=claim, args=(f"host:{i}:x",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins


def test_progress_is_kept_for_readers_and_outlives_the_release(board: JobBoard) -> None:
    video, other = uuid4(), uuid4()
    board.claim(video, "host:1:a", T0, LEASE, alive)
    assert board.beat(video, "host:1:a", T0, progress=40, seconds_remaining=3)
    state = board.states([video, other])
    assert set(state) == {video}
    assert (state[video].progress, state[video].seconds_remaining) == (40, 3)
    assert board.beat(video, "host:1:a", T0, progress=250)  # clamped: 100 is for COMPLETED
    assert board.states([video])[video].progress == 99
    board.release(video)  # the video ended: its runner's beats fail, the last progress stays
    assert not board.beat(video, "host:1:a", T0)
    assert board.states([video])[video].progress == 99
    assert board.claim(video, "host:2:b", T0, LEASE, alive)  # nobody holds it any more


def test_the_render_rate_is_a_moving_average(board: JobBoard) -> None:
    assert board.render_rate() is None
    board.record_rate(0.5)
    assert board.render_rate() == pytest.approx(0.5)
    board.record_rate(1.5)
    assert 0.5 < board.render_rate() < 1.5


def test_the_board_outlives_the_process(backend_settings: Settings, tmp_path: Path) -> None:
    video = uuid4()
    first = bootstrap(backend_settings)
    first.board.claim(video, "host:1:a", T0, LEASE, alive)
    first.close()
    second = bootstrap(backend_settings)
    try:
        assert not second.board.claim(video, "host:2:b", T0, LEASE, alive)
    finally:
        second.close()
