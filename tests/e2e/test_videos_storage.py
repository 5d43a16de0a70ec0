"""The production adapters wired into the app by configuration alone, over real HTTP:
S3 storage (moto's server) and an external video provider (the fake `/v1/videos` API)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from sora2.adapters.rendering.provider import GENERIC_MESSAGE, POLICY_MESSAGE
from sora2.adapters.storage.s3 import S3BlobStorage
from sora2.application.ports import BlobNotFound
from sora2.domain.videos.video import Video
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.fake_video_provider import FakeVideoProvider, fake_mp4, running_fake_provider
from tests.support.s3_server import ACCESS_KEY, SECRET_KEY, unique_bucket_name
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


def keys_of(api: Api, video_id: str) -> tuple[str, str]:
    video = api.sora2.log.load(Video, UUID(video_id))
    assert video.video_key and video.thumbnail_key
    return video.video_key, video.thumbnail_key


def stored(api: Api, key: str) -> bool:
    try:
        api.sora2.storage.size(key)
    except BlobNotFound:
        return False
    return True


# --- S3 -----------------------------------------------------------------------------------------


@pytest.fixture
def s3_api(tmp_path: Path, s3_endpoint: str) -> Iterator[Api]:
    """The app with nothing but the environment pointing it at S3; the real renderer."""
    settings = sqlite_settings(
        tmp_path,
        AWS_S3_BUCKET=unique_bucket_name(),
        S3_ENDPOINT=s3_endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION="us-east-1",
    )
    yield from start_api(settings)


def follow_redirect(client: httpx.Client, url: str, **headers: str) -> tuple[str, httpx.Response]:
    """GET `url` from the API (expecting a 302), then fetch the Location with a bare client:
    no token, no cookies, no AWS credentials - only what the signed URL itself carries."""
    response = client.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    with httpx.Client(trust_env=False, timeout=30) as bare:
        return location, bare.get(location, headers=headers)


@pytest.mark.s3
@pytest.mark.slow
def test_on_s3_a_video_renders_uploads_and_downloads_through_a_signed_url(
    s3_api: Api, s3_endpoint: str
) -> None:
    assert isinstance(s3_api.sora2.storage, S3BlobStorage)
    bucket = s3_api.sora2.settings.aws_s3_bucket
    _, token = s3_api.register("alice")
    with s3_api.client(token) as client:
        video = generate(client, "a lighthouse in a storm", aspectRatio="9:16")
        assert wait_for_status(client, video["id"], timeout=60)["status"] == "COMPLETED"
        detail = client.get(f"/api/videos/{video['id']}").json()
        video_key, thumbnail_key = keys_of(s3_api, video["id"])

        location, fetched = follow_redirect(client, detail["videoUrl"])

        assert location.startswith(f"{s3_endpoint}/{bucket}/{video_key}?")
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=" in location
        assert fetched.status_code == 200
        mp4 = fetched.content
        assert len(mp4) == s3_api.sora2.storage.size(video_key)
        info = mp4_info(mp4)
        assert (info.codec, info.width, info.height) == ("h264", 720, 1280)
        assert info.duration == pytest.approx(5.0, abs=0.1)

        # the signed URL serves byte ranges itself, for players that seek
        _, part = follow_redirect(client, detail["videoUrl"], Range="bytes=0-99")
        assert (part.status_code, part.content) == (206, mp4[:100])

        thumbnail_location, thumbnail = follow_redirect(client, detail["thumbnailUrl"])
        assert f"/{bucket}/{thumbnail_key}?" in thumbnail_location
        assert thumbnail.status_code == 200 and jpeg_size(thumbnail.content) == (360, 640)

        # a share link redirects anyone to the same bytes
        share = client.post(f"/api/videos/{video['id']}/share").json()
        with s3_api.client() as anonymous:
            _, shared = follow_redirect(anonymous, share["shareUrl"])
            assert shared.content == mp4
            _, shared_thumbnail = follow_redirect(anonymous, f"{share['shareUrl']}/thumbnail")
            assert shared_thumbnail.content == thumbnail.content

        # the signed URL really is the only key: without its signature S3 refuses
        with httpx.Client(trust_env=False) as bare:
            assert bare.get(location.split("?")[0]).status_code == 403

        assert client.delete(f"/api/videos/{video['id']}").status_code == 204

        assert not stored(s3_api, video_key) and not stored(s3_api, thumbnail_key)
        with httpx.Client(trust_env=False) as bare:
            assert bare.get(location).status_code == 404  # the object is gone from the bucket
        with s3_api.client() as anonymous:
            assert_error(anonymous.get(share["shareUrl"]), 404)
        assert client.get("/api/videos").json()["total"] == 0
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -5)]


# --- the external provider -------------------------------------------------------------------


@pytest.fixture
def provider() -> Iterator[FakeVideoProvider]:
    with running_fake_provider(polls_to_complete=1) as fake:
        yield fake


@pytest.fixture
def provider_api(tmp_path: Path, provider: FakeVideoProvider) -> Iterator[Api]:
    """The app with VIDEO_PROVIDER_URL/API_KEY set: ProviderVideoGenerator, chosen by bootstrap."""
    settings = sqlite_settings(
        tmp_path,
        VIDEO_PROVIDER_URL=provider.base_url,
        VIDEO_PROVIDER_API_KEY=provider.api_key,
        VIDEO_JOB_CONCURRENCY="4",
    )
    yield from start_api(settings)


def test_the_configured_provider_generates_the_video(
    provider_api: Api, provider: FakeVideoProvider
) -> None:
    from sora2.adapters.rendering.provider import ProviderVideoGenerator

    assert isinstance(provider_api.sora2.jobs.generator, ProviderVideoGenerator)
    _, token = provider_api.register("alice")
    with provider_api.client(token) as client:
        video = generate(client, "a koi pond", duration=10, aspectRatio="1:1")

        final = wait_for_status(client, video["id"], timeout=30)

        assert final["status"] == "COMPLETED", final
        created = provider.requests_to("POST")
        assert len(created) == 1
        assert created[0].headers["authorization"] == f"Bearer {provider.api_key}"
        sent = created[0].json()
        assert sent == {
            "model": "sora-2",
            "prompt": "a koi pond",
            "seconds": "10",
            "size": "720x720",
        }
        download = client.get(f"/api/videos/{video['id']}/download")
        assert download.status_code == 200
        assert download.content == fake_mp4(720, 720)
        assert mp4_info(download.content).width == 720
        thumbnail = client.get(f"/api/videos/{video['id']}/thumbnail")
        assert jpeg_size(thumbnail.content) == (720, 720)
        assert balance(client) == 0
        assert entry_types(client) == [("REWARD", 10), ("CONSUME", -10)]


def test_provider_failures_end_failed_with_their_message_and_are_refunded(
    provider_api: Api, provider: FakeVideoProvider
) -> None:
    user, token = provider_api.register("alice")
    recharge(provider_api, user, 5)  # 15 credits: three 5-second videos
    cases = {
        "FAIL at render": f"{GENERIC_MESSAGE} {provider.failure_message}",
        "MODERATE at create": POLICY_MESSAGE,
        "UNSAFE_OUTPUT at the end": POLICY_MESSAGE,
    }
    with provider_api.client(token) as client:
        videos = {prompt: generate(client, prompt) for prompt in cases}
        assert balance(client) == 0

        for prompt, video in videos.items():
            final = wait_for_status(client, video["id"], timeout=30)
            assert final["status"] == "FAILED", (prompt, final)
            assert final["error"] == cases[prompt]
            assert client.get(f"/api/videos/{video['id']}").json()["error"] == cases[prompt]
            assert provider.api_key not in final["error"]

        assert balance(client) == 15
        kinds = [kind for kind, _ in entry_types(client)]
        assert kinds.count("CONSUME") == kinds.count("REFUND") == 3
        assert_ledger_consistent(client)


def test_a_wrong_provider_key_fails_the_video_without_leaking_it(tmp_path: Path) -> None:
    with running_fake_provider(polls_to_complete=1) as fake:
        settings = sqlite_settings(
            tmp_path,
            VIDEO_PROVIDER_URL=f"{fake.base_url}/v1",
            VIDEO_PROVIDER_API_KEY="sk-not-the-right-key-000000",
        )
        for api in start_api(settings):
            _, token = api.register("alice")
            with api.client(token) as client:
                video = generate(client, "anything")
                final = wait_for_status(client, video["id"], timeout=30)

                assert final["status"] == "FAILED"
                assert "sk-not-the-right-key" not in final["error"]
                assert balance(client) == 10


def test_cancelling_a_provider_video_stops_the_remote_job(tmp_path: Path) -> None:
    with running_fake_provider(polls_to_complete=None) as fake:  # it would never finish
        settings = sqlite_settings(
            tmp_path, VIDEO_PROVIDER_URL=fake.base_url, VIDEO_PROVIDER_API_KEY=fake.api_key
        )
        for api in start_api(settings):
            _, token = api.register("alice")
            with api.client(token) as client:
                video = generate(client, "a long epic")
                wait_for_status(client, video["id"], lambda s: s["status"] == "PROCESSING")
                deadline = time.monotonic() + 10
                while not fake.jobs and time.monotonic() < deadline:
                    time.sleep(0.02)
                [job] = fake.jobs.values()

                started = time.monotonic()
                assert client.post(f"/api/videos/{video['id']}/cancel").status_code == 200
                api.sora2.jobs.wait(UUID(video["id"]), timeout=10)

                assert time.monotonic() - started < 2.0  # not a whole poll interval
                assert job.deleted  # the abandoned remote job no longer costs money
                assert balance(client) == 10
                assert client.get(f"/api/videos/{video['id']}").json()["status"] == "CANCELLED"
