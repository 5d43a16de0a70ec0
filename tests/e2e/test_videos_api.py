"""The videos API over real HTTP: generate, follow, download, share, cancel, delete, regenerate.

Real renders (the LocalRenderer, marked `slow`) prove the MP4 and thumbnail; everything else
runs on SQLite and PostgreSQL with a ScriptedGenerator whose jobs the test paces, holds or
fails, so each test takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from sora2.application.ports import BlobNotFound
from sora2.config import Settings
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.generators import DEFAULT_FAILURE, ScriptedGenerator
from tests.support.videos import (
    assert_error,
    assert_ledger_consistent,
    balance,
    entry_types,
    generate,
    jpeg_size,
    mp4_info,
    recharge,
    wait_for_status,
)

SIGNUP = [("REWARD", 10)]


@dataclass
class App:
    api: Api
    generator: ScriptedGenerator

    def user(self, name: str = "alice") -> tuple[dict[str, Any], Any]:
        user, token = self.api.register(name)
        return user, self.api.client(token)


@pytest.fixture
def app(backend_settings: Settings) -> Iterator[App]:
    """The API on SQLite and on PostgreSQL, rendering with a ScriptedGenerator."""
    generator = ScriptedGenerator()
    for api in start_api(backend_settings, generator=generator):
        yield App(api, generator)


@pytest.fixture
def one_worker_app(backend_settings: Settings) -> Iterator[App]:
    """As `app`, but one job renders at a time, so the next one waits PENDING."""
    generator = ScriptedGenerator()
    for api in start_api(
        backend_settings.model_copy(update={"job_concurrency": 1}), generator=generator
    ):
        yield App(api, generator)


def processing(body: dict[str, Any]) -> bool:
    return body["status"] == "PROCESSING" and body["progress"] > 0


def stored(api: Api, video_id: str) -> tuple[str | None, str | None]:
    """The storage keys the video's aggregate holds for its MP4 and thumbnail."""
    from sora2.domain.videos.video import Video

    video = api.sora2.log.load(Video, UUID(video_id))
    return video.video_key, video.thumbnail_key


def exists(api: Api, key: str) -> bool:
    try:
        api.sora2.storage.size(key)
    except BlobNotFound:
        return False
    return True


# --- real renders ---------------------------------------------------------------------------------


@dataclass
class Rendered:
    api: Api
    client: Any
    videos: dict[str, dict[str, Any]]  # aspect ratio -> the COMPLETED video


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """Two videos rendered by the real LocalRenderer (16:9 and 1:1, 5 s each), shared by the
    read-only tests below so the module renders only twice."""
    settings = sqlite_settings(tmp_path_factory.mktemp("rendered"))
    for api in start_api(settings):
        _, token = api.register("renderer")
        with api.client(token) as client:
            requested = {
                ratio: generate(client, f"a lighthouse at dusk {ratio}", aspectRatio=ratio)
                for ratio in ("16:9", "1:1")
            }
            for video in requested.values():
                assert video["status"] == "PENDING" and video["progress"] == 0
                final = wait_for_status(client, video["id"], timeout=60)
                assert final["status"] == "COMPLETED", final
            videos = {
                ratio: client.get(f"/api/videos/{v['id']}").json() for ratio, v in requested.items()
            }
            yield Rendered(api, client, videos)


@pytest.mark.slow
@pytest.mark.parametrize(("ratio", "width", "height"), [("16:9", 1280, 720), ("1:1", 720, 720)])
def test_a_completed_video_downloads_as_a_playable_mp4_of_its_duration_and_size(
    rendered: Rendered, ratio: str, width: int, height: int
) -> None:
    video = rendered.videos[ratio]
    assert video["status"] == "COMPLETED" and video["progress"] == 100
    assert video["videoUrl"].startswith(f"{rendered.api.base}/api/media/videos/")
    status = rendered.client.get(f"/api/videos/{video['id']}/status").json()
    assert status == {
        "id": video["id"],
        "status": "COMPLETED",
        "progress": 100,
        "estimatedTimeRemaining": None,  # null once final
    }

    response = rendered.client.get(f"/api/videos/{video['id']}/download")

    assert response.status_code == 200
    assert rendered.client.get(video["videoUrl"]).content == response.content
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert f"{video['id']}.mp4" in response.headers["content-disposition"]
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content[4:8] == b"ftyp"
    info = mp4_info(response.content)
    assert "mp4" in info.format_names and info.codec == "h264"
    assert (info.width, info.height) == (width, height)
    assert info.duration == pytest.approx(5.0, abs=0.1)
    assert info.frames == 5 * 24


@pytest.mark.slow
@pytest.mark.parametrize(("ratio", "size"), [("16:9", (640, 360)), ("1:1", (360, 360))])
def test_the_thumbnail_is_a_jpeg(rendered: Rendered, ratio: str, size: tuple[int, int]) -> None:
    video = rendered.videos[ratio]
    assert video["thumbnailUrl"].startswith(f"{rendered.api.base}/api/media/thumbnails/")

    response = rendered.client.get(video["thumbnailUrl"])

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert jpeg_size(response.content) == size


@pytest.mark.slow
def test_download_serves_byte_ranges(rendered: Rendered) -> None:
    url = rendered.videos["16:9"]["videoUrl"]
    whole = rendered.client.get(url).content
    size = len(whole)
    assert rendered.client.get(url).headers["accept-ranges"] == "bytes"

    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes={size - 10}-{size + 1000}": (size - 10, size - 1),  # clipped to the end
    }
    for header, (first, last) in cases.items():
        part = rendered.client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert int(part.headers["content-length"]) == last - first + 1
        assert part.content == whole[first : last + 1], header
        assert part.headers["content-type"] == "video/mp4"


@pytest.mark.slow
@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{end}", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416(rendered: Rendered, header: str) -> None:
    url = rendered.videos["16:9"]["videoUrl"]
    size = len(rendered.client.get(url).content)

    response = rendered.client.get(url, headers={"Range": header.format(size=size, end=size + 9)})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert_error(response, 416)


@pytest.mark.slow
def test_a_backwards_range_is_ignored_and_the_whole_file_sent(rendered: Rendered) -> None:
    url = rendered.videos["16:9"]["videoUrl"]
    whole = rendered.client.get(url).content
    response = rendered.client.get(url, headers={"Range": "bytes=9-3"})  # RFC 9110: invalid
    assert response.status_code == 200
    assert response.content == whole
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_rendering_charged_each_video_once(rendered: Rendered) -> None:
    assert entry_types(rendered.client) == [*SIGNUP, ("CONSUME", -5), ("CONSUME", -5)]
    assert_ledger_consistent(rendered.client)
    assert balance(rendered.client) == 0


# --- status and progress --------------------------------------------------------------------------


def test_status_reports_progress_and_time_remaining_until_completed(app: App) -> None:
    app.generator.steps, app.generator.step_seconds = 4, 0.25
    _, client = app.user()
    video = generate(client)
    seen: list[dict[str, Any]] = []

    final = wait_for_status(client, video["id"], seen=seen)

    assert final == {
        "id": video["id"],
        "status": "COMPLETED",
        "progress": 100,
        "estimatedTimeRemaining": None,  # null once final
    }
    running = [s for s in seen if s["status"] == "PROCESSING" and 0 < s["progress"] < 100]
    assert running, seen
    for snapshot in running:
        assert isinstance(snapshot["estimatedTimeRemaining"], int), snapshot
        assert snapshot["estimatedTimeRemaining"] >= 0
    assert all(0 <= s["progress"] <= 100 for s in seen)
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress), progress
    ranks = [("PENDING", "PROCESSING", "COMPLETED").index(s["status"]) for s in seen]
    assert ranks == sorted(ranks), seen


def test_the_detail_is_the_video_model(app: App) -> None:
    user, client = app.user()
    requested = generate(client, "waves on a beach", duration=5, aspectRatio="9:16")
    assert requested["status"] == "PENDING"
    assert "videoUrl" not in requested and "thumbnailUrl" not in requested

    wait_for_status(client, requested["id"])
    detail = client.get(f"/api/videos/{requested['id']}")

    assert detail.status_code == 200
    body = detail.json()
    assert body["id"] == requested["id"] and UUID(body["id"])
    assert body["userId"] == user["id"]
    assert (body["prompt"], body["duration"], body["aspectRatio"]) == (
        "waves on a beach",
        5,
        "9:16",
    )
    assert (body["status"], body["progress"]) == ("COMPLETED", 100)
    media = f"{app.api.base}/api/media"
    assert body["videoUrl"].startswith(f"{media}/videos/{user['id']}/{body['id']}.mp4?expires=")
    assert body["thumbnailUrl"].startswith(f"{media}/thumbnails/{user['id']}/{body['id']}.jpg?")
    assert body["createdAt"] == requested["createdAt"]
    assert body["createdAt"].endswith("Z") and body["updatedAt"] > body["createdAt"]
    assert "error" not in body
    assert app.generator.requests[0].aspect_ratio == "9:16"
    assert mp4_info(client.get(body["videoUrl"]).content).width == 720


def test_files_are_not_served_before_the_video_completes(app: App) -> None:
    _, client = app.user()
    video = generate(client, "HOLD a slow one")
    wait_for_status(client, video["id"], processing)

    for path in ("download", "thumbnail"):
        assert_error(client.get(f"/api/videos/{video['id']}/{path}"), 409)
    assert_error(client.post(f"/api/videos/{video['id']}/share"), 409)


# --- money: insufficient credits, failure, cancel -------------------------------------------------


def test_not_enough_credits_is_402_and_changes_nothing(app: App) -> None:
    _, client = app.user()

    body = assert_error(
        client.post("/api/videos/generate", json={"prompt": "x", "duration": 15}), 402
    )

    assert body["error"] == "Payment Required"
    assert balance(client) == 10
    assert client.get("/api/videos").json()["total"] == 0
    assert entry_types(client) == SIGNUP

    video = generate(client, duration=10)  # exactly the balance is fine
    assert_error(client.post("/api/videos/generate", json={"prompt": "again"}), 402)
    assert balance(client) == 0
    assert [v["id"] for v in client.get("/api/videos").json()["items"]] == [video["id"]]
    assert app.api.sora2.jobs.wait(UUID(video["id"]), 10) is None
    assert_ledger_consistent(client)


def test_a_failed_generation_is_refunded(app: App) -> None:
    _, client = app.user()
    video = generate(client, "FAIL this one")

    final = wait_for_status(client, video["id"])

    assert final["status"] == "FAILED"
    assert final["error"] == DEFAULT_FAILURE
    detail = client.get(f"/api/videos/{video['id']}").json()
    assert (detail["status"], detail["error"]) == ("FAILED", DEFAULT_FAILURE)
    assert "videoUrl" not in detail
    assert balance(client) == 10
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("REFUND", 5)]
    assert_ledger_consistent(client)
    assert_error(client.get(f"/api/videos/{video['id']}/download"), 409)


def test_cancel_during_rendering_stops_the_job_and_refunds(app: App) -> None:
    _, client = app.user()
    video = generate(client, "HOLD until cancelled")
    wait_for_status(client, video["id"], processing)
    assert balance(client) == 5

    response = client.post(f"/api/videos/{video['id']}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    assert response.json()["id"] == video["id"]
    app.api.sora2.jobs.wait(UUID(video["id"]), timeout=10)
    assert app.generator.cancelled_ids == [UUID(video["id"])]
    status = client.get(f"/api/videos/{video['id']}/status").json()
    assert status["status"] == "CANCELLED"
    assert balance(client) == 10
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("REFUND", 5)]
    assert_ledger_consistent(client)
    assert stored(app.api, video["id"]) == (None, None)


def test_cancel_a_pending_video_before_it_renders(one_worker_app: App) -> None:
    app = one_worker_app
    _, client = app.user()
    first = generate(client, "HOLD the only worker")
    wait_for_status(client, first["id"], processing)
    second = generate(client, "waiting in line")
    assert client.get(f"/api/videos/{second['id']}/status").json()["status"] == "PENDING"

    response = client.post(f"/api/videos/{second['id']}/cancel")

    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    app.generator.release.set()
    assert wait_for_status(client, first["id"])["status"] == "COMPLETED"
    app.api.sora2.jobs.wait(UUID(second["id"]), timeout=10)
    assert [r.video_id for r in app.generator.requests] == [UUID(first["id"])]
    assert client.get(f"/api/videos/{second['id']}/status").json()["status"] == "CANCELLED"
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("CONSUME", -5), ("REFUND", 5)]
    assert balance(client) == 5


def test_only_pending_or_processing_videos_can_be_cancelled(app: App) -> None:
    _, client = app.user()
    done = generate(client, "quick")
    failed = generate(client, "FAIL quick")
    wait_for_status(client, done["id"])
    wait_for_status(client, failed["id"])
    before = entry_types(client)

    for video in (done, failed):
        assert_error(client.post(f"/api/videos/{video['id']}/cancel"), 409)

    cancelled = generate(client, "HOLD then cancel")
    assert client.post(f"/api/videos/{cancelled['id']}/cancel").status_code == 200
    assert_error(client.post(f"/api/videos/{cancelled['id']}/cancel"), 409)  # no double refund
    assert entry_types(client) == [*before, ("CONSUME", -5), ("REFUND", 5)]
    statuses = {v["id"]: v["status"] for v in client.get("/api/videos").json()["items"]}
    assert statuses == {
        done["id"]: "COMPLETED",
        failed["id"]: "FAILED",
        cancelled["id"]: "CANCELLED",
    }
    assert_ledger_consistent(client)


# --- list -----------------------------------------------------------------------------------------


def test_the_list_pages_newest_first_with_total_and_filters_by_status(app: App) -> None:
    user, client = app.user()
    recharge(app.api, user, 20)  # 30 credits: six 5-second videos
    prompts = ["one", "two", "FAIL three", "four", "HOLD five", "six"]
    ids = []
    for prompt in prompts:
        ids.append(generate(client, prompt)["id"])
        if "HOLD" in prompt:
            client.post(f"/api/videos/{ids[-1]}/cancel")
    for video_id in ids:
        wait_for_status(client, video_id)
    newest_first = list(reversed(ids))

    first = client.get("/api/videos", params={"page": 1, "limit": 4}).json()
    second = client.get("/api/videos", params={"page": 2, "limit": 4}).json()
    beyond = client.get("/api/videos", params={"page": 3, "limit": 4}).json()

    assert (first["total"], first["page"], first["limit"], first["totalPages"]) == (6, 1, 4, 2)
    assert (second["total"], second["page"], second["limit"]) == (6, 2, 4)
    assert [v["id"] for v in first["items"] + second["items"]] == newest_first
    assert beyond["items"] == [] and beyond["total"] == 6
    created = [v["createdAt"] for v in first["items"] + second["items"]]
    assert created == sorted(created, reverse=True)
    default = client.get("/api/videos").json()
    assert (default["page"], default["limit"], len(default["items"])) == (1, 20, 6)

    by_status = {
        status: client.get("/api/videos", params={"status": status}).json()
        for status in ("COMPLETED", "FAILED", "CANCELLED", "PENDING")
    }
    assert [v["id"] for v in by_status["COMPLETED"]["items"]] == [
        ids[5],
        ids[3],
        ids[1],
        ids[0],
    ]
    assert by_status["COMPLETED"]["total"] == 4
    assert [v["id"] for v in by_status["FAILED"]["items"]] == [ids[2]]
    assert [v["id"] for v in by_status["CANCELLED"]["items"]] == [ids[4]]
    assert by_status["PENDING"] == {
        "items": [],
        "total": 0,
        "page": 1,
        "limit": 20,
        "totalPages": 0,
    }
    paged = client.get("/api/videos", params={"status": "COMPLETED", "limit": 3, "page": 2})
    assert [v["id"] for v in paged.json()["items"]] == [ids[0]]
    assert paged.json()["totalPages"] == 2

    for params in ({"status": "DONE"}, {"page": 0}, {"limit": 0}, {"limit": 101}, {"page": "x"}):
        assert_error(client.get("/api/videos", params=params), 400)


def test_the_list_holds_only_the_users_own_videos(app: App) -> None:
    _, alice = app.user("alice")
    _, bob = app.user("bob")
    mine = generate(alice, "alice's")
    generate(bob, "bob's")

    listed = alice.get("/api/videos").json()

    assert [v["id"] for v in listed["items"]] == [mine["id"]] and listed["total"] == 1


# --- another user's video -------------------------------------------------------------------------


def test_another_users_video_is_404_on_every_route(app: App) -> None:
    _, alice = app.user("alice")
    _, mallory = app.user("mallory")
    video = generate(alice, "private")
    wait_for_status(alice, video["id"])
    running = generate(alice, "HOLD private too")
    wait_for_status(alice, running["id"], processing)

    for target in (video["id"], running["id"]):
        routes = [
            ("GET", ""),
            ("GET", "/status"),
            ("GET", "/download"),
            ("GET", "/thumbnail"),
            ("GET", "/events"),
            ("POST", "/cancel"),
            ("POST", "/regenerate"),
            ("POST", "/share"),
            ("DELETE", "/share"),
            ("DELETE", ""),
        ]
        for method, suffix in routes:
            response = mallory.request(method, f"/api/videos/{target}{suffix}")
            body = assert_error(response, 404)
            assert target not in body["message"], (method, suffix)
        assert mallory.get("/api/videos").json()["total"] == 0

    # nothing happened to alice's videos, and mallory paid nothing
    assert alice.get(f"/api/videos/{video['id']}").json()["status"] == "COMPLETED"
    assert alice.get(f"/api/videos/{running['id']}").json()["status"] == "PROCESSING"
    assert alice.get(f"/api/videos/{video['id']}/download").status_code == 200
    assert balance(mallory) == 10 and entry_types(mallory) == SIGNUP
    assert balance(alice) == 0
    # an id that belongs to nobody answers the same way
    assert_error(mallory.get(f"/api/videos/{UUID(int=7)}"), 404)


# --- delete ---------------------------------------------------------------------------------------


def test_delete_cancels_a_running_job_refunds_and_removes_the_video(app: App) -> None:
    _, client = app.user()
    video = generate(client, "HOLD then delete")
    wait_for_status(client, video["id"], processing)

    response = client.delete(f"/api/videos/{video['id']}")

    assert response.status_code == 204 and response.content == b""
    app.api.sora2.jobs.wait(UUID(video["id"]), timeout=10)
    assert app.generator.cancelled_ids == [UUID(video["id"])]
    assert balance(client) == 10
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("REFUND", 5)]
    assert client.get("/api/videos").json() == {
        "items": [],
        "total": 0,
        "page": 1,
        "limit": 20,
        "totalPages": 0,
    }
    for path in ("", "/status", "/download"):
        assert_error(client.get(f"/api/videos/{video['id']}{path}"), 404)
    assert_error(client.delete(f"/api/videos/{video['id']}"), 404)
    assert_error(client.post(f"/api/videos/{video['id']}/cancel"), 404)
    assert_error(client.post(f"/api/videos/{video['id']}/regenerate"), 404)
    assert balance(client) == 10


def test_delete_a_completed_video_removes_its_files_and_its_share_link(app: App) -> None:
    _, client = app.user()
    keep = generate(client, "keep me")
    video = generate(client, "delete me")
    wait_for_status(client, keep["id"])
    wait_for_status(client, video["id"])
    video_key, thumbnail_key = stored(app.api, video["id"])
    assert video_key and thumbnail_key
    assert exists(app.api, video_key) and exists(app.api, thumbnail_key)
    share = client.post(f"/api/videos/{video['id']}/share").json()

    assert client.delete(f"/api/videos/{video['id']}").status_code == 204

    assert not exists(app.api, video_key) and not exists(app.api, thumbnail_key)
    assert all(exists(app.api, key) for key in stored(app.api, keep["id"]))  # untouched
    with app.api.client() as anonymous:
        assert_error(anonymous.get(share["shareUrl"]), 404)
        assert_error(anonymous.get(f"/api/share/{share['token']}/thumbnail"), 404)
    listed = client.get("/api/videos").json()
    assert [v["id"] for v in listed["items"]] == [keep["id"]] and listed["total"] == 1
    assert client.get("/api/videos", params={"status": "COMPLETED"}).json()["total"] == 1
    assert_error(client.get(f"/api/videos/{video['id']}"), 404)
    assert balance(client) == 0  # a delivered video is not refunded by deleting it
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("CONSUME", -5)]


# --- regenerate -----------------------------------------------------------------------------------


def test_regenerate_makes_a_new_video_with_the_same_settings_and_charges_again(app: App) -> None:
    _, client = app.user()
    original = generate(client, "a paper boat", duration=5, aspectRatio="1:1")
    wait_for_status(client, original["id"])

    response = client.post(f"/api/videos/{original['id']}/regenerate")

    assert response.status_code == 201, response.text
    again = response.json()
    assert again["id"] != original["id"]
    assert again["status"] == "PENDING" and again["progress"] == 0
    assert (again["prompt"], again["duration"], again["aspectRatio"]) == ("a paper boat", 5, "1:1")
    assert wait_for_status(client, again["id"])["status"] == "COMPLETED"
    assert client.get(f"/api/videos/{original['id']}").json()["status"] == "COMPLETED"
    assert balance(client) == 0
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -5), ("CONSUME", -5)]
    assert [r.prompt for r in app.generator.requests] == ["a paper boat"] * 2
    assert [r.aspect_ratio for r in app.generator.requests] == ["1:1"] * 2
    listed = [v["id"] for v in client.get("/api/videos").json()["items"]]
    assert listed == [again["id"], original["id"]]

    assert_error(client.post(f"/api/videos/{original['id']}/regenerate"), 402)
    assert client.get("/api/videos").json()["total"] == 2


def test_a_failed_video_can_be_regenerated(app: App) -> None:
    _, client = app.user()
    failed = generate(client, "FAIL first time", duration=10)
    wait_for_status(client, failed["id"])

    again = client.post(f"/api/videos/{failed['id']}/regenerate")

    assert again.status_code == 201 and again.json()["duration"] == 10
    assert balance(client) == 0
    assert entry_types(client) == [*SIGNUP, ("CONSUME", -10), ("REFUND", 10), ("CONSUME", -10)]


# --- validation -----------------------------------------------------------------------------------


INVALID_BODIES = [
    {"prompt": ""},
    {"prompt": "x" * 2001},
    {"prompt": "fine", "duration": 7},
    {"prompt": "fine", "duration": 0},
    {"prompt": "fine", "aspectRatio": "4:3"},
    {"prompt": "fine", "aspectRatio": ""},
    {"duration": 5},
    {"prompt": None},
    {"prompt": 42},
    ["prompt"],
]


def test_invalid_generate_requests_are_400_and_cost_nothing(app: App) -> None:
    _, client = app.user()
    for body in INVALID_BODIES:
        for path in ("/api/videos/generate", "/api/videos/generate-stream"):
            response = client.post(path, json=body)
            assert response.status_code == 400, (path, body, response.text)
            error = assert_error(response, 400)
            assert error["error"] == "Validation Error", (path, body)
    assert balance(client) == 10
    assert client.get("/api/videos").json()["total"] == 0
    assert app.generator.requests == []


def test_a_blank_prompt_is_rejected(app: App) -> None:
    _, client = app.user()
    body = assert_error(client.post("/api/videos/generate", json={"prompt": "   "}), 400)
    assert "prompt" in body["message"]
    assert_error(client.post("/api/videos/generate", content=b"not json"), 400)
    assert balance(client) == 10


def test_the_longest_prompt_and_every_setting_are_accepted(app: App) -> None:
    user, client = app.user()
    recharge(app.api, user, 50)
    longest = generate(client, "y" * 2000)
    assert (longest["duration"], longest["aspectRatio"]) == (5, "16:9")  # the defaults
    for duration, ratio in ((10, "9:16"), (15, "1:1"), (20, "16:9")):
        video = generate(client, "z", duration=duration, aspectRatio=ratio)
        assert (video["duration"], video["aspectRatio"]) == (duration, ratio)
    assert balance(client) == 60 - 5 - 10 - 15 - 20
    assert len(longest["prompt"]) == 2000


def test_video_routes_need_a_token(app: App) -> None:
    _, client = app.user()
    video = generate(client)
    with app.api.client() as anonymous:
        assert_error(anonymous.post("/api/videos/generate", json={"prompt": "x"}), 401)
        assert_error(anonymous.get("/api/videos"), 401)
        assert_error(anonymous.get(f"/api/videos/{video['id']}"), 401)
        assert_error(anonymous.get(f"/api/videos/{video['id']}/download"), 401)
    with app.api.client("not-a-token") as forged:
        assert_error(forged.get(f"/api/videos/{video['id']}/status"), 401)


# --- share ----------------------------------------------------------------------------------------


def test_a_share_link_plays_without_a_token_until_revoked(app: App) -> None:
    _, client = app.user()
    video = generate(client, "share me")
    wait_for_status(client, video["id"])
    mp4 = client.get(f"/api/videos/{video['id']}/download").content

    shared = client.post(f"/api/videos/{video['id']}/share")

    assert shared.status_code == 200, shared.text
    link = shared.json()
    assert link["shareUrl"] == f"{app.api.base}/api/share/{link['token']}"
    assert len(link["token"]) >= 32
    assert client.post(f"/api/videos/{video['id']}/share").json() == link  # stable until revoked
    with app.api.client() as anonymous:
        played = anonymous.get(link["shareUrl"])
        assert played.status_code == 200
        assert played.headers["content-type"] == "video/mp4"
        assert played.content == mp4
        part = anonymous.get(link["shareUrl"], headers={"Range": "bytes=0-9"})
        assert (part.status_code, part.content) == (206, mp4[:10])
        thumbnail = anonymous.get(f"{link['shareUrl']}/thumbnail")
        assert thumbnail.status_code == 200 and jpeg_size(thumbnail.content)

        assert client.delete(f"/api/videos/{video['id']}/share").status_code == 204

        assert_error(anonymous.get(link["shareUrl"]), 404)
        assert_error(anonymous.get(f"{link['shareUrl']}/thumbnail"), 404)
        assert client.delete(f"/api/videos/{video['id']}/share").status_code == 204  # idempotent

        renewed = client.post(f"/api/videos/{video['id']}/share").json()
        assert renewed["token"] != link["token"]
        assert anonymous.get(renewed["shareUrl"]).content == mp4
        assert_error(anonymous.get(link["shareUrl"]), 404)  # the revoked one stays dead
        assert_error(anonymous.get("/api/share/" + "0" * 40), 404)

        assert client.delete(f"/api/videos/{video['id']}").status_code == 204
        assert_error(anonymous.get(renewed["shareUrl"]), 404)
