"""An event consumer's view: with NATS_URL set, what the API does arrives on JetStream."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import nats
import pytest

from tests.conftest import start_api
from tests.support.backends import sqlite_settings

pytestmark = pytest.mark.nats

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


async def read_all(stream: str, prefix: str, expected: int, timeout: float = 15) -> list:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:  # the relay polls the log: wait until the stream holds what we expect
            try:
                info = await js.stream_info(stream)
                if info.state.messages >= expected or time.monotonic() > deadline:
                    break
            except nats.js.errors.NotFoundError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)
        sub = await js.pull_subscribe(f"{prefix}.>", durable=None, stream=stream)
        messages = []
        while len(messages) < expected and time.monotonic() < deadline + timeout:
            try:
                batch = await sub.fetch(100, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either
                continue  # a slow machine: ask again until all arrived or time is up
            for message in batch:
                await message.ack()
                messages.append(message)
        return messages
    finally:
        await nc.close()


async def delete_stream(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await nc.close()


def test_api_actions_are_published_once_in_order(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    stream, prefix = f"E{token}", f"e{token}"
    settings = sqlite_settings(
        tmp_path, NATS_URL=NATS_URL, NATS_STREAM=stream, NATS_SUBJECT_PREFIX=prefix
    )
    api_run = start_api(settings)
    api = next(api_run)
    try:
        user, access = api.register("eve")
        with api.client(access) as c:
            order = c.post("/api/orders/create", json={"credits": 50, "paymentMethod": "STRIPE"})
            assert c.post(f"/api/orders/{order.json()['id']}/pay").status_code == 200
        stored = api.sora2.log.recorder.max_notification_id()
        messages = asyncio.run(read_all(stream, prefix, stored))
    finally:
        api_run.close()
        asyncio.run(delete_stream(stream))

    payloads = [json.loads(m.data) for m in messages]
    assert len(messages) == stored  # every stored event, once
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [p["eventId"] for p in payloads]
    subjects = [m.subject.removeprefix(prefix + ".") for m in messages]
    for expected in (
        "user.registered",
        "credits.rewarded",
        "order.created",
        "order.paid",
        "credits.recharged",
    ):
        assert expected in subjects
    assert subjects.index("order.paid") < subjects.index("credits.recharged")  # one write
    assert subjects.index("order.created") < subjects.index("order.paid")
    registered = payloads[subjects.index("user.registered")]
    assert registered["aggregateId"] == user["id"]
    assert registered["data"]["email"] == "eve@example.com"
    assert all(
        "passwordHash" not in json.dumps(p) and "password_hash" not in json.dumps(p)
        for p in payloads
    )
    recharged = payloads[subjects.index("credits.recharged")]
    assert recharged["data"]["amount"] == 50 and recharged["data"]["balance"] == 60


def test_a_rendered_video_publishes_what_users_care_about_and_no_heartbeats(
    tmp_path: Path,
) -> None:
    from tests.support.generators import ScriptedGenerator
    from tests.support.videos import wait_for_status

    token = uuid.uuid4().hex[:12]
    stream, prefix = f"E{token}", f"e{token}"
    settings = sqlite_settings(
        tmp_path, NATS_URL=NATS_URL, NATS_STREAM=stream, NATS_SUBJECT_PREFIX=prefix
    )
    generator = ScriptedGenerator(steps=6, step_seconds=0.1)  # progress every step
    api_run = start_api(settings, generator=generator)
    api = next(api_run)
    try:
        _, access = api.register("vic")
        with api.client(access) as c:
            video = c.post("/api/videos/generate", json={"prompt": "a kite"}).json()
            seen: list[dict] = []
            assert wait_for_status(c, video["id"], seen=seen)["status"] == "COMPLETED"
            assert any(0 < s["progress"] < 100 for s in seen)  # progress was reported
        stored = api.sora2.log.recorder.max_notification_id()
        messages = asyncio.run(read_all(stream, prefix, stored))
    finally:
        api_run.close()
        asyncio.run(delete_stream(stream))

    assert len(messages) == stored
    about_video = [
        m.subject.removeprefix(prefix + ".")
        for m in messages
        if json.loads(m.data)["aggregateId"] == video["id"]
    ]
    assert about_video == ["video.requested", "video.started", "video.completed"]
