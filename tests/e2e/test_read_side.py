"""The read side as users meet it: commands answer from their own decision, queries see
their writes, a save is never seen half-applied, and one bad event stops nothing else."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import StoredEvent

from sora2.bootstrap import bootstrap
from sora2.config import Settings
from tests.conftest import Api, running_api
from tests.support.backends import cli_env
from tests.support.generators import HOLD, ScriptedGenerator
from tests.support.videos import wait_for_status


def rich_user(api: Api, name: str, credits: int = 1000) -> tuple[dict[str, Any], str]:
    user, token = api.register(name)
    with api.client(token) as c:
        r = c.post("/api/credits/recharge", json={"credits": credits, "paymentMethod": "STRIPE"})
        assert r.status_code in (200, 201), r.text
    return user, token


def test_every_generate_answers_pending_and_the_balance_shows_them_all(
    backend_settings: Settings,
) -> None:
    generator = ScriptedGenerator(steps=1, step_seconds=0.01)
    with running_api(backend_settings, generator=generator) as api:
        _, token = rich_user(api, "alice")

        def generate(i: int) -> Any:
            with api.client(token) as c:
                return c.post("/api/videos/generate", json={"prompt": f"clip {i}"})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(generate, range(32)))
        assert [r.status_code for r in answers] == [201] * 32
        assert {r.json()["status"] for r in answers} == {"PENDING"}
        assert {r.json()["progress"] for r in answers} == {0}
        with api.client(token) as c:  # read your writes: every charge is already listed
            assert c.get("/api/credits/balance").json() == {"balance": 10 + 1000 - 32 * 5}
            consumed = c.get("/api/credits/transactions", params={"type": "CONSUME", "limit": 50})
            assert consumed.json()["total"] == 32
            for r in answers:
                assert wait_for_status(c, r.json()["id"])["status"] == "COMPLETED"


def test_a_cancel_and_its_refund_are_seen_together_from_a_second_process(
    backend_settings: Settings,
) -> None:
    """Another container (its own connections, as another process has) reads the read
    models while videos are cancelled: a CANCELLED video always has its REFUND entry."""
    generator = ScriptedGenerator()
    with running_api(backend_settings, generator=generator) as api:
        user, token = rich_user(api, "bob")
        reader = bootstrap(api.sora2.settings.model_copy())
        seen_cancelled, halves = set(), []
        done = threading.Event()

        def watch() -> None:
            from uuid import UUID

            user_id = UUID(user["id"])
            while not done.is_set():
                videos = reader.views.videos(user_id, None, 1, 100).items
                refunds = {
                    e.reference_id for e in reader.views.credits(user_id, "REFUND", 1, 100).items
                }
                for video in videos:
                    if video.status == "CANCELLED":
                        seen_cancelled.add(video.id)
                        if video.id not in refunds:
                            halves.append(video.id)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with api.client(token) as c:
                ids = [
                    c.post("/api/videos/generate", json={"prompt": f"{HOLD} {i}"}).json()["id"]
                    for i in range(20)
                ]
                with ThreadPoolExecutor(8) as pool:
                    cancels = list(pool.map(lambda v: c.post(f"/api/videos/{v}/cancel"), ids))
                assert {r.json()["status"] for r in cancels} == {"CANCELLED"}
                refunds = c.get("/api/credits/transactions", params={"type": "REFUND"}).json()
                assert refunds["total"] == 20  # this client reads its own writes at once
            deadline = time.monotonic() + 30
            while len(seen_cancelled) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            watcher.join()
            generator.release.set()
            reader.close()
        assert len(seen_cancelled) == 20
        assert halves == []


def plant_undecodable_event(api: Api) -> int:
    """An event no release of ours can decode (a topic that names nothing)."""
    api.sora2.log.recorder.insert_events(
        [StoredEvent(uuid4(), 1, "sora2.domain.gone:Nothing.Happened", b"{}")]
    )
    return api.sora2.log.recorder.max_notification_id()


def stuck_read_models(api: Api) -> dict[str, Any] | None:
    with api.client() as c:
        r = c.get("/ready")
        assert r.status_code == 200, r.text
        body = r.json()
    lanes = {p["name"]: p for p in body["processors"]}
    return lanes["sora2/read-models"].get("stuck") if body["status"] == "degraded" else None


def test_one_bad_event_stops_its_processor_and_nothing_else(
    backend_settings: Settings, tmp_path: Path
) -> None:
    with running_api(backend_settings) as api:
        _, before = api.register("carol")
        position = plant_undecodable_event(api)
        deadline = time.monotonic() + 20
        while (stuck := stuck_read_models(api)) is None:
            assert time.monotonic() < deadline, "the read models never reported the bad event"
            time.sleep(0.05)
        assert stuck["position"] == position
        assert stuck["eventType"] == "Happened" or "Happened" in stuck["eventType"]

        # every command still works, and answers from its own decision
        user, token = api.register("dave")
        with api.client(token) as c:
            assert c.get("/api/users/profile").json()["email"] == "dave@example.com"
            video = c.post("/api/videos/generate", json={"prompt": "a calm lake"})
            assert video.status_code == 201 and video.json()["status"] == "PENDING"
            order = c.post("/api/orders/create", json={"credits": 10, "paymentMethod": "STRIPE"})
            assert order.status_code == 201, order.text
        with api.client(before) as c:
            assert c.get("/api/users/profile").status_code == 200
        settings = api.sora2.settings
    audit = subprocess.run(  # the auditors' replay names the event and goes on
        [str(Path(sys.executable).with_name("sora2")), "ledger", "verify"],
        env=cli_env(settings, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert f"PROBLEM: event {position} (sora2.domain.gone:Nothing.Happened)" in audit.stdout
    assert "Traceback" not in audit.stderr
    rebuild = subprocess.run(  # a rebuild refuses to swap in tables that miss an event
        [str(Path(sys.executable).with_name("sora2")), "views", "rebuild"],
        env=cli_env(settings, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuild.returncode == 1, rebuild.stderr
    assert f"cannot apply event {position}" in rebuild.stderr
    assert "left as they were" in rebuild.stderr and "Traceback" not in rebuild.stderr
    with running_api(settings) as api:  # and the server starts again
        assert stuck_read_models(api)["position"] == position
        with api.client() as c:
            r = c.post(
                "/api/auth/login", json={"email": "dave@example.com", "password": "password123"}
            )
            assert r.status_code == 200, r.text


def test_status_has_whole_seconds_remaining_until_the_video_is_final(
    backend_settings: Settings,
) -> None:
    generator = ScriptedGenerator(steps=3, step_seconds=0.2)
    settings = backend_settings.model_copy(update={"job_concurrency": 1})
    with running_api(settings, generator=generator) as api:
        _, token = rich_user(api, "erin")
        with api.client(token) as c:
            held = c.post("/api/videos/generate", json={"prompt": f"{HOLD} first"}).json()
            waiting = c.post("/api/videos/generate", json={"prompt": "second", "duration": 10})
            waiting = waiting.json()
            generator.wait_started(1)
            pending = c.get(f"/api/videos/{waiting['id']}/status").json()
            assert pending["status"] == "PENDING"
            assert isinstance(pending["estimatedTimeRemaining"], int)
            assert pending["estimatedTimeRemaining"] >= 1
            running = wait_for_status(c, held["id"], lambda s: s["status"] == "PROCESSING")
            assert isinstance(running["estimatedTimeRemaining"], int)
            generator.release.set()
            for video in (held, waiting):
                final = wait_for_status(c, video["id"])
                assert final["status"] == "COMPLETED"
                assert final["estimatedTimeRemaining"] is None
