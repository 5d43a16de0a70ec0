"""An event consumer's view of operators: every admin action arrives on JetStream naming
who did it (the CLI's role change too, though another process wrote it)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import start_api
from tests.e2e.test_events_on_nats import NATS_URL, delete_stream, read_all
from tests.support.admin_cli import sora2_command, succeeded
from tests.support.backends import sqlite_settings

pytestmark = pytest.mark.nats


def test_admin_actions_are_published_naming_the_admin(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    stream, prefix = f"A{token}", f"a{token}"
    settings = sqlite_settings(
        tmp_path,
        NATS_URL=NATS_URL,
        NATS_STREAM=stream,
        NATS_SUBJECT_PREFIX=prefix,
        VIDEO_JOBS="off",
    )
    api_run = start_api(settings)
    api = next(api_run)
    try:
        root, _ = api.register("root")
        bob, bob_token = api.register("bob")
        succeeded(
            sora2_command(settings, tmp_path, "admin", "grant", "--email", "root@example.com")
        )
        with api.client() as c:
            r = c.post(
                "/api/auth/login", json={"email": "root@example.com", "password": "password123"}
            )
            admin = r.json()["accessToken"]
        with api.client(bob_token) as c:
            video = c.post("/api/videos/generate", json={"prompt": "a kite"}).json()
        with api.client(admin) as c:
            adjusted = c.post(
                f"/api/admin/users/{bob['id']}/credits", json={"amount": -3, "reason": "typo"}
            )
            assert adjusted.status_code == 201, adjusted.text
            assert c.post(f"/api/admin/videos/{video['id']}/cancel").status_code == 200
            suspended = c.post(f"/api/admin/users/{bob['id']}/suspend", json={"reason": "spam"})
            assert suspended.status_code == 200
            assert c.post(f"/api/admin/users/{bob['id']}/unsuspend").status_code == 200
        stored = api.sora2.log.recorder.max_notification_id()
        messages = asyncio.run(read_all(stream, prefix, stored))
    finally:
        api_run.close()
        asyncio.run(delete_stream(stream))

    assert len(messages) == stored
    published = {}
    for message in messages:
        payload = json.loads(message.data)
        published.setdefault(message.subject.removeprefix(prefix + "."), []).append(payload)
    (role,) = published["user.role_changed"]
    assert role["aggregateId"] == root["id"]
    assert role["data"] == {"role": "ADMIN", "by": "cli", "sessionEpoch": 1}
    (credits,) = published["credits.adjusted"]
    assert credits["data"] == {
        "userId": bob["id"],
        "amount": -3,
        "balance": 2,  # 10, less 5 for the video, less 3
        "adminId": root["id"],
        "reason": "typo",
    }
    (cancelled,) = published["video.cancelled"]
    assert cancelled["aggregateId"] == video["id"]
    assert cancelled["data"] == {"adminId": root["id"]}
    refunded = [p for p in published["credits.refunded"] if p["data"]["videoId"] == video["id"]]
    assert [p["data"]["amount"] for p in refunded] == [5]
    (suspension,) = published["user.suspended"]
    assert suspension["data"]["adminId"] == root["id"] and suspension["data"]["reason"] == "spam"
    (lifted,) = published["user.unsuspended"]
    assert lifted["data"] == {"adminId": root["id"]}
