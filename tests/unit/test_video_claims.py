"""The Video's start: which runner took it first, and that old logs still replay."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from sora2.domain.errors import Conflict
from sora2.domain.videos.video import Video

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def started(worker: str = "host:1:a") -> Video:
    video = Video.request(uuid4(), uuid4(), "a prompt", 5, "16:9", 1, T0)
    video.start(T0, worker)
    return video


def test_a_started_video_names_its_first_runner() -> None:
    video = started()
    assert video.worker == "host:1:a" and video.status == "PROCESSING"


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_only_a_pending_video_starts(end: str) -> None:
    video = started()
    with pytest.raises(Conflict):
        video.start(T0, "host:2:b")
    {
        "complete": lambda: video.complete("v.mp4", "v.jpg", T0),
        "fail": lambda: video.fail("boom", T0),
        "cancel": lambda: video.cancel(T0),
    }[end]()
    with pytest.raises(Conflict):
        video.start(T0, "host:2:b")


def test_a_started_event_from_before_runner_ids_still_replays() -> None:
    video = started()
    events = video.collect_events()
    del events[1].__dict__["worker"]  # as stored before `worker` existed
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.status == "PROCESSING" and replayed.worker == ""


def test_progress_and_takeover_events_of_older_logs_still_replay() -> None:
    video = started()
    video._progress_reported(40, 3, T0)  # written by releases that kept progress in the log
    video._resumed("host:2:b", T0)
    replayed = None
    for e in video.collect_events():
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.progress == 40 and replayed.worker == "host:2:b"
