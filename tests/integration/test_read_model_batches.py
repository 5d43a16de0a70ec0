"""A batch of events written at its end, a few statements per table, gives the read models
that the events applied one by one give; a batch that fails leaves nothing behind.

A history where order matters inside one batch (a video requested, started, completed; an
order created then paid; a video requested then deleted; several credits of one user with
a refund; a profile changed; a session ended) is folded into fresh tables twice on the
real projection: once as a single batch through the runner's lane, once an event per
batch. Every table must be equal, and hold what the story says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from sora2.adapters.views.sql import SqlReadModels
from sora2.application.ports import GeneratedVideo
from sora2.application.processing.log_reader import LogReader
from sora2.application.processing.processor import Stored
from sora2.application.processing.projection import ProjectionProcessor
from sora2.application.processing.runner import Lane
from sora2.application.projections.read_models import ReadModels
from sora2.bootstrap import Sora2, bootstrap
from sora2.config import Settings
from sora2.domain.videos.video import Video
from tests.conftest import FastHasher

TABLES = {  # each table's rows in a stable order
    "users": "id",
    "sessions": "id",
    "balances": "user_id",
    "credits": "seq",
    "orders": "id",
    "videos": "id",
}


@dataclass(frozen=True)
class Story:
    user: UUID
    other: UUID
    order: UUID
    completed: UUID
    failed: UUID
    deleted: UUID
    cost: int


@pytest.fixture
def sora2(backend_settings: Settings) -> Iterator[Sora2]:
    app = bootstrap(backend_settings.model_copy(update={"video_jobs": "off"}), hasher=FastHasher())
    try:
        yield app
    finally:
        app.close()


def tell_the_story(sora2: Sora2, folder: Path) -> Story:
    grant = sora2.accounts.register("ada@example.com", "ada", "password123")
    ada = grant.user.id
    other = sora2.accounts.register("bob@example.com", "bob", "password123").user.id
    sora2.accounts.update_profile(ada, "ada_l", None)
    sora2.accounts.logout(grant.session_id)
    order = sora2.orders.create(ada, 100, "STRIPE")
    sora2.orders.confirm_payment(order.id, "ref-1")

    completed = sora2.videos.request(ada, "a lighthouse at dawn", 5, "16:9")
    assert sora2.videos.start_job(completed.id) is not None
    (folder / "v.mp4").write_bytes(b"video")
    (folder / "t.jpg").write_bytes(b"thumbnail")
    assert sora2.videos.complete_job(
        completed.id, GeneratedVideo(folder / "v.mp4", folder / "t.jpg")
    )
    failed = sora2.videos.request(ada, "a storm at sea", 5, "16:9")
    assert sora2.videos.start_job(failed.id) is not None
    assert sora2.videos.fail_job(failed.id, "the provider refused", "provider_error")
    deleted = sora2.videos.request(ada, "a quiet street", 5, "9:16")
    sora2.videos.delete(ada, deleted.id)
    sora2.videos.request(other, "a red kite", 5, "1:1")  # bob's, left pending
    return Story(ada, other, order.id, completed.id, failed.id, deleted.id, completed.cost)


def history(sora2: Sora2) -> list[Stored]:
    return LogReader(sora2.log).read(0, 10_000)


def dump(view: SqlReadModels) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [dict(r) for r in view._rows(f"SELECT * FROM {{p}}rm_{table} ORDER BY {key}", {})]
        for table, key in TABLES.items()
    }


@pytest.fixture
def fresh(sora2: Sora2) -> Iterator[Any]:
    """Empty read-model tables beside the live ones, each with a position of its own."""
    made: list[tuple[SqlReadModels, str]] = []

    def make(projection: type[ReadModels] = ReadModels) -> ProjectionProcessor:
        view = sora2.views.fresh_copy()
        name = f"test/{view.tables}"  # type: ignore[attr-defined]
        made.append((view, name))  # type: ignore[arg-type]
        processor = ProjectionProcessor(projection(view), name)
        assert processor.position() == 0
        return processor

    try:
        yield make
    finally:
        for view, name in made:
            view.drop()
            view.forget_position(name)


def test_one_batch_equals_the_events_one_by_one(sora2: Sora2, fresh: Any, tmp_path: Path) -> None:
    story = tell_the_story(sora2, tmp_path)
    events = history(sora2)

    batched = fresh()
    lane = Lane(batched, LogReader(sora2.log), batch_size=10_000)
    assert lane.step() == len(events)  # the whole history in one transaction
    assert lane.stuck is None and batched.position() == events[-1].position

    one_by_one = fresh()
    after = 0
    for stored in events:
        one_by_one.process(after, [stored])
        after = stored.position

    assert dump(batched.view) == dump(one_by_one.view)  # type: ignore[arg-type]
    sora2.read_models.wait_for(events[-1].position)  # the live lane: batches as they came
    assert dump(sora2.views) == dump(batched.view)  # type: ignore[arg-type]

    view = batched.view
    bonus = sora2.settings.signup_bonus_credits
    assert view.balance_of(story.user) == bonus + 100 - story.cost
    assert view.all_balances() == {
        story.user: bonus + 100 - story.cost,
        story.other: bonus - story.cost,
    }
    entries = list(reversed(view.credits(story.user, None, 1, 100).items))
    assert [e.type for e in entries] == [
        "REWARD",
        "RECHARGE",
        "CONSUME",
        "CONSUME",
        "REFUND",
        "CONSUME",
        "REFUND",
    ]
    assert [e.balance for e in entries][-1] == view.balance_of(story.user)
    done = view.video(story.completed)
    assert (done.status, done.progress, done.seconds_remaining) == ("COMPLETED", 100, 0)
    assert done.video_key and done.thumbnail_key
    assert view.video(story.failed).status == "FAILED"
    assert view.video(story.failed).error_code == "provider_error"
    assert view.video(story.deleted) is None
    assert view.videos(story.user, None, 1, 10).total == 2
    order = view.order(story.order)
    assert order.status == "PAID" and order.paid_at is not None
    assert view.user(story.user).username == "ada_l"
    sessions = {r["user_id"]: r["ended"] for r in dump(view)["sessions"]}  # type: ignore[arg-type]
    assert sessions == {str(story.user): 1, str(story.other): 0}


class FailsMidway(ReadModels):
    """The real projection, failing on the first video started (mid-batch)."""

    def process_event(self, domain_event: Any, tracking: Any) -> None:
        if isinstance(domain_event, Video.Started):
            raise RuntimeError("this event cannot be applied")
        super().process_event(domain_event, tracking)


def test_a_batch_that_fails_midway_writes_nothing(sora2: Sora2, fresh: Any, tmp_path: Path) -> None:
    tell_the_story(sora2, tmp_path)
    events = history(sora2)
    failing = fresh(FailsMidway)

    with pytest.raises(RuntimeError, match="cannot be applied"):
        failing.process(0, events)

    assert failing.position() == 0
    assert all(rows == [] for rows in dump(failing.view).values())  # type: ignore[arg-type]


def test_a_batch_the_database_refuses_writes_nothing(
    sora2: Sora2, fresh: Any, tmp_path: Path
) -> None:
    """A video requested twice in one batch: the second insert is refused at once (the
    first was written before it, in the batch's transaction), and the whole batch goes."""
    tell_the_story(sora2, tmp_path)
    events = history(sora2)
    requested = next(s for s in events if isinstance(s.event, Video.Requested))
    processor = fresh()

    with pytest.raises(Exception) as refused:
        processor.process(0, [*events, requested])
    assert not isinstance(refused.value, RuntimeError)  # the database's own refusal

    assert processor.position() == 0
    assert all(rows == [] for rows in dump(processor.view).values())  # type: ignore[arg-type]
    # nothing of the failed batch is left held in this thread: the next batch is whole
    Lane(processor, LogReader(sora2.log), batch_size=10_000).step()
    assert processor.position() == events[-1].position
    sora2.read_models.wait_for(events[-1].position)
    assert dump(processor.view) == dump(sora2.views)  # type: ignore[arg-type]
