"""Live progress as a browser gets it: a real EventSource (npm `eventsource` 4 under node)
against the API over HTTP, reconnecting whenever the server ends a stream, as EventSource
does. It must follow one video to its end, be charged once, and stop at the 204.

The streams here are cut by the server every second (SSE_STREAM_MAX_SECONDS=1) while a
ScriptedGenerator takes a few seconds, so every run reconnects mid-render at least once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.eventsource import EventSourceClient, EventSourceRun
from tests.support.generators import ScriptedGenerator
from tests.support.videos import (
    FINAL,
    assert_error,
    balance,
    entry_types,
    jpeg_size,
    sse_events,
    wait_for_status,
)

STREAM = "/api/videos/generate-stream"
FINAL_SEQUENCE = 102


@pytest.fixture
def generator() -> ScriptedGenerator:
    return ScriptedGenerator(steps=8, step_seconds=0.4)  # about 3 s of progress


@pytest.fixture
def live_api(tmp_path: Any, generator: ScriptedGenerator) -> Iterator[Api]:
    settings = sqlite_settings(
        tmp_path, SSE_STREAM_MAX_SECONDS="1", SSE_RETRY_MS="100", SSE_HEARTBEAT_SECONDS="1"
    )
    yield from start_api(settings, generator=generator)


def sequence_of(event_id: str) -> int:
    return int(event_id.rpartition(":")[2])


def assert_followed_one_video_to_its_end(run: EventSourceRun) -> dict[str, Any]:
    """One video; event ids only grow across reconnections; the last event is the whole
    final Video; the EventSource closed itself on a 204 after it."""
    events = run.events
    assert events, run.records
    video_ids = {e["id"].partition(":")[0] for e in events}
    assert len(video_ids) == 1 and {e["data"]["id"] for e in events} == video_ids, events
    numbers = [sequence_of(e["id"]) for e in events]
    assert numbers == sorted(set(numbers)), numbers  # nothing repeated, nothing back
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress), progress
    final = events[-1]["data"]
    assert final["status"] == "COMPLETED" and final["videoUrl"] and final["thumbnailUrl"]
    assert [e for e in events if e["data"]["status"] in FINAL] == [events[-1]]
    assert run.statuses[-1] == 204 and run.statuses[:-1] == [200] * (len(run.statuses) - 1)
    assert run.of("error")[-1]["code"] == 204
    requests = run.of("request")
    assert requests[0]["lastEventId"] is None
    assert requests[-1]["lastEventId"] == events[-1]["id"]  # "I have the final event": 204
    return final


@pytest.mark.parametrize("idempotency_key", [None, "stream-once-1"])
def test_an_eventsource_reconnecting_to_generate_stream_follows_one_video_charged_once(
    live_api: Api, eventsource: EventSourceClient, idempotency_key: str | None
) -> None:
    _, token = live_api.register("alice")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key

    run = eventsource.run(
        live_api.base + STREAM, method="POST", headers=headers, body={"prompt": "a paper boat"}
    )

    final = assert_followed_one_video_to_its_end(run)
    mid_render = [r for r in run.of("request")[1:-1] if sequence_of(r["lastEventId"]) < 102]
    assert mid_render, run.records  # the server cut the stream while it rendered
    with live_api.client(token) as client:
        videos = client.get("/api/videos").json()
        assert videos["total"] == 1 and videos["items"][0]["id"] == final["id"]
        assert balance(client) == 5
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]
    with httpx.Client(timeout=30) as bare:  # the final event's links work without a header
        assert jpeg_size(bare.get(final["thumbnailUrl"]).content) == (640, 360)


def test_an_eventsource_follows_an_existing_video_through_its_signed_events_url(
    live_api: Api, eventsource: EventSourceClient
) -> None:
    _, token = live_api.register("alice")
    with live_api.client(token) as client:
        video = client.post("/api/videos/generate", json={"prompt": "a slow sunrise"}).json()
        assert "token" not in video["eventsUrl"] and "signature=" in video["eventsUrl"]

        run = eventsource.run(video["eventsUrl"])  # no header at all, as `new EventSource(url)`

        final = assert_followed_one_video_to_its_end(run)
        assert final["id"] == video["id"]
        assert client.get("/api/videos").json()["total"] == 1
        assert balance(client) == 5


def test_a_reconnect_by_idempotency_key_alone_follows_the_video_to_its_final_state(
    live_api: Api, generator: ScriptedGenerator
) -> None:
    """A plain client (no Last-Event-ID) retrying with its key: the same video, to its end."""
    _, token = live_api.register("alice")
    body, key = {"prompt": "HOLD a kite"}, {"Idempotency-Key": "kite-1"}
    with live_api.client(token) as client:
        with client.stream("POST", STREAM, json=body, headers=key) as response:
            first = next(sse_events(response))
        video_id = first.json()["id"]
        generator.release.set()

        events: list[Any] = []
        deadline = time.monotonic() + 60
        while not events or events[-1].json()["status"] not in FINAL:  # cut every second
            assert time.monotonic() < deadline, events
            with client.stream("POST", STREAM, json=body, headers=key) as again:
                assert again.status_code == 200
                assert again.headers["idempotent-replayed"] == "true"
                events += list(sse_events(again))

        assert {e.json()["id"] for e in events} == {video_id}
        assert events[-1].json()["videoUrl"]
        assert all(sequence_of(e.id) > sequence_of(first.id) for e in events)
        assert_error(client.post(STREAM, json={"prompt": "another"}, headers=key), 409)
        assert client.get("/api/videos").json()["total"] == 1
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]


def test_events_resume_after_last_event_id_and_answer_204_after_the_final_one(
    live_api: Api, generator: ScriptedGenerator
) -> None:
    _, token = live_api.register("alice")
    with live_api.client(token) as client:
        video = client.post("/api/videos/generate", json={"prompt": "HOLD a river"}).json()
        wait_for_status(client, video["id"], lambda s: s["progress"] >= 50)
        url = f"/api/videos/{video['id']}/events"

        with client.stream("GET", url, headers={"Last-Event-ID": f"{video['id']}:40"}) as r:
            assert r.status_code == 200
            resumed = next(sse_events(r))
        assert sequence_of(resumed.id) > 40 and resumed.json()["progress"] > 39

        generator.release.set()
        wait_for_status(client, video["id"])
        with client.stream("GET", url, headers={"Last-Event-ID": f"{video['id']}:1"}) as r:
            [final] = list(sse_events(r))  # nothing between: only what is new, the end
        assert final.id == f"{video['id']}:{FINAL_SEQUENCE}"
        assert final.json()["videoUrl"]
        done = client.get(url, headers={"Last-Event-ID": final.id})
        assert (done.status_code, done.content) == (204, b"")
        stream_done = client.post(STREAM, json={"prompt": "x"}, headers={"Last-Event-ID": final.id})
        assert stream_done.status_code == 204
        assert client.get("/api/videos").json()["total"] == 1  # a reconnect never creates one


def test_a_quiet_stream_opens_with_retry_and_sends_heartbeats(tmp_path: Any) -> None:
    """A video nobody renders yet (VIDEO_JOBS=off: it waits PENDING for a worker) is the
    longest silence a stream has: heartbeats keep proxies and clients from giving up."""
    settings = sqlite_settings(
        tmp_path, VIDEO_JOBS="off", SSE_HEARTBEAT_SECONDS="1", SSE_RETRY_MS="2500"
    )
    for api in start_api(settings):
        _, token = api.register("alice")
        with api.client(token) as client:
            video = client.post("/api/videos/generate", json={"prompt": "a quiet one"}).json()
            lines: list[str] = []
            with client.stream("GET", f"/api/videos/{video['id']}/events") as response:
                for line in response.iter_lines():
                    lines.append(line)
                    if lines.count(": heartbeat") == 2:
                        break

        assert lines[0] == "retry: 2500"  # before anything else
        events = [x for x in lines if x.startswith("id:")]
        assert events == [f"id: {video['id']}:0"]  # PENDING, and nothing new since


def test_bad_links_and_other_users_videos_are_refused(live_api: Api) -> None:
    _, alice = live_api.register("alice")
    _, bob = live_api.register("bob")
    with live_api.client(alice) as client, live_api.client(bob) as other:
        video = client.post("/api/videos/generate", json={"prompt": "a secret"}).json()
        url = video["eventsUrl"]
        with httpx.Client(timeout=30) as bare:
            assert_error(bare.get(url.replace("signature=", "signature=0")), 403)
            expires = int(url.split("expires=")[1].split("&")[0])
            assert_error(bare.get(url.replace(f"expires={expires}", f"expires={expires + 1}")), 403)
            assert_error(bare.get(url.split("?")[0]), 401)  # neither Bearer nor a signed link
            someone_else = url.replace(video["id"], str(UUID(int=1)))
            assert_error(bare.get(someone_else), 403)  # a link is for its own path only
        assert_error(other.get(f"/api/videos/{video['id']}/events"), 404)
        assert_error(
            client.get(f"/api/videos/{video['id']}/events", headers={"Last-Event-ID": "nope"}),
            400,
        )
        assert_error(
            other.post(STREAM, json={"prompt": "x"}, headers={"Last-Event-ID": f"{video['id']}:3"}),
            404,
        )
        assert other.get("/api/videos").json()["total"] == 0
