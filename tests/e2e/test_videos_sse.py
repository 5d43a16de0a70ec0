"""POST /api/videos/generate-stream: a text/event-stream of `status` events over real HTTP.

The first test follows a real render (LocalRenderer); the others pace a ScriptedGenerator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from sora2.adapters.http.controllers.videos import LiveStreams
from sora2.config import Settings
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.generators import DEFAULT_FAILURE, ScriptedGenerator
from tests.support.videos import (
    FINAL,
    STATUS_RANK,
    SseEvent,
    assert_error,
    assert_ledger_consistent,
    balance,
    entry_types,
    mp4_info,
    sse_events,
    wait_for_status,
)

STREAM = "/api/videos/generate-stream"


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator()


@pytest.fixture
def scripted_api(backend_settings: Settings, generator: ScriptedGenerator) -> Iterator[Api]:
    yield from start_api(backend_settings, generator=generator)


def follow(client: httpx.Client, body: dict[str, Any]) -> list[SseEvent]:
    """Request a video through the stream and read every event until the server ends it."""
    with client.stream("POST", STREAM, json=body, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response))


def assert_well_ordered(events: list[SseEvent]) -> list[dict[str, Any]]:
    """Every event is a `status` event about one video; statuses never go back, progress
    never decreases, and exactly one event - the last - is a final state. (The first event
    is the state when the stream starts: PENDING, or PROCESSING if a worker was quicker.)"""
    assert events, "no events"
    assert all(e.event == "status" for e in events), events
    states = [e.json() for e in events]
    assert len({s["id"] for s in states}) == 1, states
    ranks = [STATUS_RANK[s["status"]] for s in states]
    assert ranks == sorted(ranks), states
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress), progress
    assert all(0 <= p <= 100 for p in progress)
    finals = [s for s in states if s["status"] in FINAL]
    assert len(finals) == 1 and states[-1] is finals[0], states
    # every event names its video and a sequence that only grows (what Last-Event-ID resumes)
    prefixes = {e.id.partition(":")[0] if e.id else None for e in events}
    assert prefixes == {states[0]["id"]}, [e.id for e in events]
    numbers = [int(e.id.partition(":")[2]) for e in events if e.id]
    assert numbers == sorted(set(numbers)), numbers
    return states


@pytest.mark.slow
def test_a_real_render_streams_ordered_progress_and_exactly_one_final_event(
    tmp_path: Any,
) -> None:
    for api in start_api(sqlite_settings(tmp_path)):
        _, token = api.register("alice")
        with api.client(token) as client:
            events = follow(client, {"prompt": "a hot-air balloon over hills"})

            states = assert_well_ordered(events)
            final = states[-1]  # the whole Video
            assert (final["status"], final["progress"]) == ("COMPLETED", 100)
            assert final["videoUrl"] and final["thumbnailUrl"] and final["userId"]
            running = [s for s in states if s["status"] == "PROCESSING" and s["progress"] > 0]
            # a real render takes 0.3-0.5 s, so the stream may see one step of it or none
            # (waiting on time would make this flaky); that progress arrives while a job
            # renders is the scripted renders' test below, step by step
            assert all(0 < s["progress"] < 100 for s in running), states
            assert all(isinstance(s.get("estimatedTimeRemaining"), int) for s in running)
            assert len({(s["status"], s["progress"]) for s in states}) == len(states)  # no repeats
            # the stream ends when the video is done: the file is there at once, for anyone
            # holding the link
            with httpx.Client(timeout=30) as bare:
                info = mp4_info(bare.get(final["videoUrl"]).content)
            assert (info.width, info.height) == (1280, 720)
            assert info.duration == pytest.approx(5.0, abs=0.1)
            assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]


def test_a_failed_video_ends_the_stream_with_one_failed_event(
    scripted_api: Api, generator: ScriptedGenerator
) -> None:
    _, token = scripted_api.register("alice")
    with scripted_api.client(token) as client:
        states = assert_well_ordered(follow(client, {"prompt": "FAIL please"}))

        assert states[-1]["status"] == "FAILED"
        assert states[-1]["error"] == DEFAULT_FAILURE
        assert balance(client) == 10
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5), ("REFUND", 5)]


def test_a_video_cancelled_elsewhere_ends_the_stream_cancelled(
    scripted_api: Api, generator: ScriptedGenerator
) -> None:
    _, token = scripted_api.register("alice")
    with scripted_api.client(token) as client, scripted_api.client(token) as other:
        events: list[SseEvent] = []
        with client.stream("POST", STREAM, json={"prompt": "HOLD me"}, timeout=30) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                events.append(event)
                state = event.json()
                if state["status"] == "PROCESSING" and state["progress"] > 0:
                    cancelled = other.post(f"/api/videos/{state['id']}/cancel")
                    assert cancelled.status_code in (200, 409), cancelled.text  # 409: done
        states = assert_well_ordered(events)

        assert states[-1]["status"] == "CANCELLED"
        assert balance(client) == 10
        assert_ledger_consistent(client)


def test_a_video_deleted_while_watched_ends_the_stream(
    scripted_api: Api, generator: ScriptedGenerator
) -> None:
    _, token = scripted_api.register("alice")
    with scripted_api.client(token) as client, scripted_api.client(token) as other:
        events: list[SseEvent] = []
        with client.stream("POST", STREAM, json={"prompt": "HOLD me"}, timeout=30) as response:
            for event in sse_events(response):
                events.append(event)
                state = event.json()
                if state["status"] == "PROCESSING" and state["progress"] > 0:
                    deleted = other.delete(f"/api/videos/{state['id']}")
                    assert deleted.status_code in (204, 404)

        states = assert_well_ordered(events)
        assert states[-1]["status"] == "CANCELLED"
        assert balance(client) == 10


def test_disconnecting_from_the_stream_does_not_cancel_the_job(
    scripted_api: Api, generator: ScriptedGenerator
) -> None:
    generator.steps, generator.step_seconds = 3, 0.1
    _, token = scripted_api.register("alice")
    with scripted_api.client(token) as client:
        with client.stream("POST", STREAM, json={"prompt": "HOLD while I leave"}) as response:
            first = next(sse_events(response)).json()
        # the connection is closed; the job goes on until the generator is let go
        video_id = first["id"]
        wait_for_status(client, video_id, lambda s: s["status"] == "PROCESSING")
        deadline = time.monotonic() + 30
        while LiveStreams.count:  # until the server has noticed that the client left
            assert time.monotonic() < deadline, "the server never noticed the disconnect"
            time.sleep(0.02)
        assert client.get(f"/api/videos/{video_id}/status").json()["status"] == "PROCESSING"
        generator.release.set()

        final = wait_for_status(client, video_id)

        assert final["status"] == "COMPLETED"
        assert generator.cancelled_ids == []
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]
        assert client.get(f"/api/videos/{video_id}/download").status_code == 200


def test_several_clients_follow_their_own_streams_at_once(
    scripted_api: Api, generator: ScriptedGenerator
) -> None:
    generator.steps, generator.step_seconds = 3, 0.1
    users = [scripted_api.register(name) for name in ("ann", "ben", "cat")]
    results: dict[str, list[SseEvent]] = {}

    def watch(name: str, token: str) -> None:
        with scripted_api.client(token) as client:
            results[name] = follow(client, {"prompt": f"{name}'s video"})

    threads = [
        threading.Thread(target=watch, args=(user["username"], token)) for user, token in users
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert set(results) == {"ann", "ben", "cat"}
    ids = set()
    for user, token in users:
        states = assert_well_ordered(results[user["username"]])
        assert states[-1]["status"] == "COMPLETED"
        ids.add(states[-1]["id"])
        with scripted_api.client(token) as client:
            video = client.get(f"/api/videos/{states[-1]['id']}").json()
            assert video["userId"] == user["id"]
    assert len(ids) == 3
    assert {r.video_id for r in generator.requests} == {UUID(i) for i in ids}


def test_stream_errors_are_json_before_any_event(scripted_api: Api) -> None:
    _, token = scripted_api.register("alice")
    with scripted_api.client(token) as client:
        poor = client.post(STREAM, json={"prompt": "too long for my purse", "duration": 20})
        assert_error(poor, 402)
        assert poor.headers["content-type"].startswith("application/json")
        assert_error(client.post(STREAM, json={"prompt": ""}), 400)
        assert balance(client) == 10
        assert client.get("/api/videos").json()["total"] == 0
    with scripted_api.client() as anonymous:
        assert_error(anonymous.post(STREAM, json={"prompt": "x"}), 401)
