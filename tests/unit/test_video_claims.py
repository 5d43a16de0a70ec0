"""The Video's job claim: who renders it, and when another runner may take over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from sora2.domain.errors import Conflict
from sora2.domain.videos.video import Video

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def started(worker: str = "host:1:a") -> Video:
    video = Video.request(uuid4(), uuid4(), "a prompt", 5, "16:9", 1, T0)
    video.start(T0, worker)
    return video


def test_a_started_video_names_its_runner_and_is_not_abandoned_within_the_lease() -> None:
    video = started()
    assert video.worker == "host:1:a"
    assert not video.is_abandoned(T0 + LEASE, LEASE)
    assert video.is_abandoned(T0 + LEASE + timedelta(seconds=1), LEASE)


def test_progress_is_a_sign_of_life() -> None:
    video = started()
    video.report_progress(10, 5, T0 + timedelta(seconds=50))
    assert not video.is_abandoned(T0 + timedelta(seconds=100), LEASE)
    assert video.is_abandoned(T0 + timedelta(seconds=111), LEASE)


def test_another_runner_resumes_and_owns_it() -> None:
    video = started()
    video.resume("host:2:b", T0 + timedelta(seconds=90))
    assert video.worker == "host:2:b" and video.status == "PROCESSING"
    assert not video.is_abandoned(T0 + timedelta(seconds=120), LEASE)


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_only_a_processing_video_can_be_resumed_or_abandoned(end: str) -> None:
    pending = Video.request(uuid4(), uuid4(), "p", 5, "16:9", 1, T0)
    with pytest.raises(Conflict):
        pending.resume("w", T0)
    assert not pending.is_abandoned(T0 + timedelta(days=1), LEASE)
    video = started()
    {
        "complete": lambda: video.complete("v.mp4", "v.jpg", T0),
        "fail": lambda: video.fail("boom", T0),
        "cancel": lambda: video.cancel(T0),
    }[end]()
    with pytest.raises(Conflict):
        video.resume("w", T0)
    assert not video.is_abandoned(T0 + timedelta(days=1), LEASE)


def test_a_started_event_from_before_runner_ids_still_replays() -> None:
    video = started()
    events = video.collect_events()
    del events[1].__dict__["worker"]  # as stored before `worker` existed
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.status == "PROCESSING" and replayed.worker == ""
