"""`sora2 worker` processes sharing PostgreSQL: every job rendered once, a silent runner's
job taken over after its lease, and the money right throughout."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from sora2.bootstrap import Sora2, bootstrap
from sora2.config import Settings
from sora2.domain.videos.video import Video
from tests.conftest import FastHasher
from tests.support.backends import postgres_settings
from tests.support.generators import HOLD, ScriptedGenerator

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    with postgres_settings(tmp_path, VIDEO_JOBS="off", VIDEO_JOB_LEASE_SECONDS="2") as s:
        yield s


def container(settings: Settings, generator: ScriptedGenerator | None = None) -> Sora2:
    return bootstrap(settings, hasher=FastHasher(), generator=generator or ScriptedGenerator())


def wait_until(predicate, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def statuses(api: Sora2, ids: list[UUID]) -> list[str]:
    api.read_models.catch_up()
    return [api.views.video(i).status for i in ids]  # type: ignore[union-attr]


def test_two_workers_render_every_job_exactly_once(settings: Settings) -> None:
    # a lease no heartbeat misses on a loaded machine: what is tested is that a live
    # runner's claim keeps the other away, not how late a beat may come (the next test)
    settings = settings.model_copy(update={"job_lease_seconds": 30})
    api = container(settings)  # VIDEO_JOBS=off: requests only land in the log
    user = api.accounts.register("w@example.com", "wendy", "password123").user
    api.orders.confirm_payment(api.orders.create(user.id, 100, "STRIPE").id, "ref")
    generators = [ScriptedGenerator(steps=2, step_seconds=0.05) for _ in range(2)]
    workers = [container(settings, g) for g in generators]
    try:
        ids = [api.videos.request(user.id, f"clip {i}", 5, "16:9").id for i in range(8)]
        assert api.jobs.running == 0  # the API process renders nothing
        for w in workers:
            w.jobs.sweep_forever(interval=0.1)
        wait_until(lambda: statuses(api, ids) == ["COMPLETED"] * 8)
        rendered = Counter(r.video_id for g in generators for r in g.requests)
        assert rendered == Counter(ids)  # each once, none twice
        runners = {api.log.load(Video, i).worker for i in ids}
        assert runners <= {w.jobs.worker for w in workers}
        assert api.credits.balance(user.id) == 10 + 100 - 8 * 5
    finally:
        for w in workers:
            w.close()
        api.close()


def test_a_silent_runners_job_is_taken_over_after_its_lease(settings: Settings) -> None:
    api = container(settings)
    user = api.accounts.register("s@example.com", "sam", "password123").user
    stuck = ScriptedGenerator()
    first = container(settings, stuck)
    video_id = api.videos.request(user.id, f"{HOLD} forever", 5, "16:9").id
    first.jobs.sweep_forever(interval=0.1)
    stuck.wait_started()
    first.jobs.shutdown(wait=True)  # the runner goes silent, the video stays PROCESSING
    assert api.log.load(Video, video_id).worker == first.jobs.worker

    willing = ScriptedGenerator()
    willing.release.set()  # this runner lets HOLD jobs finish
    second = container(settings, willing)
    try:
        claimed_at = time.monotonic()
        second.jobs.sweep_forever(interval=0.1)
        wait_until(lambda: statuses(api, [video_id]) == ["COMPLETED"])
        assert time.monotonic() - claimed_at >= 1.0  # it waited for the 2 s lease
        assert [r.video_id for r in willing.requests] == [video_id]  # the second rendered it
        kinds = [type(e).__name__ for e in api.log.events.get(video_id)]
        # the take-over happened on the job board: the log holds only what users care about
        assert kinds == ["Requested", "Started", "Completed"]
        api.read_models.catch_up()
        consumes = api.views.credits(user.id, "CONSUME", 1, 10).total
        refunds = api.views.credits(user.id, "REFUND", 1, 10).total
        assert (consumes, refunds) == (1, 0)  # charged once, never refunded
        assert api.credits.balance(user.id) == 5
    finally:
        second.close()
        first.close()
        api.close()
