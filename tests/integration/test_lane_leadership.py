"""Several processes on one PostgreSQL log (`serve --workers N`, workers beside the API): one
leads each shared lane, the others read nothing of the log yet read their own writes as
the leader's announcements arrive, hear where it is stuck, and one takes over when the
leader stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, running_api
from tests.e2e.test_read_side import plant_undecodable_event, rich_user
from tests.support.backends import postgres_settings

pytestmark = pytest.mark.postgres

READ_MODELS = "sora2/read-models"


def read_models_status(api: Api) -> dict[str, Any]:
    with api.client() as c:
        r = c.get("/ready")
        assert r.status_code == 200, r.text
    return {p["name"]: p for p in r.json()["processors"]}[READ_MODELS]


def wait_until(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def counted(api: Api) -> list[int]:
    """The sizes of the batches this process's read-model processor applies from now on."""
    processor = api.sora2.read_models.processor
    applied: list[int] = []
    process = processor.process

    def counting(after: int, batch: Any) -> None:
        process(after, batch)
        applied.append(len(batch))

    processor.process = counting  # type: ignore[method-assign]
    return applied


def test_one_process_applies_the_read_models_and_another_reads_its_writes(
    tmp_path: Path,
) -> None:
    with postgres_settings(tmp_path) as settings, ExitStack() as stack:
        apis = [stack.enter_context(running_api(settings, shared_processes=True)) for _ in "ab"]

        def roles() -> tuple[Api, Api] | None:
            leading = [read_models_status(api)["leading"] for api in apis]
            if sorted(leading) != [False, True]:
                return None
            return (apis[0], apis[1]) if leading[0] else (apis[1], apis[0])

        leader, follower = wait_until(roles, "never exactly one leader of the read models")
        led, followed = counted(leader), counted(follower)

        _, token = rich_user(follower, "fiona", credits=100)
        with follower.client(token) as c:
            before = c.get("/api/credits/balance").json()["balance"]
            for i in range(3):
                video = c.post("/api/videos/generate", json={"prompt": f"clip {i}"})
                assert video.status_code == 201, video.text
            # its own writes, applied by the other process and announced to this one
            assert c.get("/api/credits/balance").json() == {"balance": before - 3 * 5}
            assert c.get("/api/videos").json()["total"] == 3
        assert followed == [] and sum(led) > 0
        status = read_models_status(follower)
        assert status["leading"] is False and status["position"] >= sum(led)

        # the leader cannot apply an event: the follower says so too (it heard it)
        position = plant_undecodable_event(leader)
        stuck = wait_until(
            lambda: read_models_status(follower).get("stuck"), "the follower never heard"
        )
        assert stuck["position"] == position


def test_when_the_leader_stops_another_process_takes_over(tmp_path: Path) -> None:
    with postgres_settings(tmp_path) as settings, ExitStack() as stack:
        first = stack.enter_context(running_api(settings, shared_processes=True))
        wait_until(lambda: read_models_status(first)["leading"], "the first never led")
        with running_api(settings, shared_processes=True) as second:
            assert read_models_status(second)["leading"] is False
            _, token = rich_user(second, "gwen", credits=100)
            with second.client(token) as c:
                before = c.get("/api/credits/balance").json()["balance"]
            stack.close()  # the leader's process ends: its hold ends with it
            wait_until(lambda: read_models_status(second)["leading"], "nobody took over")
            taken = counted(second)
            with second.client(token) as c:
                video = c.post("/api/videos/generate", json={"prompt": "after the handover"})
                assert video.status_code == 201, video.text
                assert c.get("/api/videos").json()["total"] == 1
                assert c.get("/api/credits/balance").json() == {"balance": before - 5}
            assert sum(taken) > 0
