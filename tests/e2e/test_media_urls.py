"""videoUrl and thumbnailUrl as a page uses them: `<img src>` and `<video src>` send no
header, so the links are signed and short-lived (MEDIA_URL_TTL). Fetched here with a bare
client - no token, no cookie - from local storage and from S3 (moto's server), where the
link redirects to a presigned URL of the bucket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.fake_video_provider import fake_mp4
from tests.support.generators import ScriptedGenerator
from tests.support.s3_server import ACCESS_KEY, SECRET_KEY, unique_bucket_name
from tests.support.videos import assert_error, generate, jpeg_size, wait_for_status

S3 = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "local":
        return {}
    endpoint = request.getfixturevalue("s3_endpoint")
    return {**S3, "AWS_S3_BUCKET": unique_bucket_name(), "S3_ENDPOINT": endpoint}


def media_api(tmp_path: Path, storage_env: dict[str, str], **env: str) -> Iterator[Api]:
    settings = sqlite_settings(tmp_path, **storage_env, **env)
    yield from start_api(settings, generator=ScriptedGenerator(steps=1))


@pytest.fixture
def api(tmp_path: Path, storage_env: dict[str, str]) -> Iterator[Api]:
    yield from media_api(tmp_path, storage_env)


def completed_video(api: Api, name: str = "alice") -> tuple[dict[str, Any], str]:
    _, token = api.register(name)
    with api.client(token) as client:
        video = generate(client, "a lantern on a lake")
        wait_for_status(client, video["id"])
        return client.get(f"/api/videos/{video['id']}").json(), token


def bare() -> httpx.Client:
    """What a browser's `<img>` or `<video>` has: no Authorization, no cookie."""
    return httpx.Client(timeout=30, follow_redirects=True, trust_env=False)


def test_the_thumbnail_and_a_range_of_the_video_load_with_no_header(api: Api) -> None:
    video, _ = completed_video(api)

    with bare() as page:
        thumbnail = page.get(video["thumbnailUrl"])
        part = page.get(video["videoUrl"], headers={"Range": "bytes=0-99"})
        whole = page.get(video["videoUrl"])

    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert jpeg_size(thumbnail.content) == (640, 360)
    assert whole.status_code == 200 and whole.content == fake_mp4(1280, 720)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    assert part.content == whole.content[:100]


def test_media_carry_an_etag_and_answer_304_to_if_none_match(api: Api) -> None:
    video, token = completed_video(api)
    with bare() as page, api.client(token) as client:
        for url in (
            video["thumbnailUrl"],
            video["videoUrl"],
            f"/api/videos/{video['id']}/download",
        ):
            get = client.get if url.startswith("/") else page.get
            first = get(url, follow_redirects=True)
            etag = first.headers["etag"]
            assert first.status_code == 200 and etag.strip('"'), url

            again = get(url, headers={"If-None-Match": etag}, follow_redirects=True)
            changed = get(url, headers={"If-None-Match": '"another"'}, follow_redirects=True)

            assert (again.status_code, again.content) == (304, b""), url
            assert again.headers["etag"] == etag
            assert changed.status_code == 200 and changed.content == first.content


def test_a_tampered_link_is_403_in_the_error_shape(api: Api) -> None:
    video, _ = completed_video(api)
    url = video["videoUrl"]
    path, _, query = url.partition("?")
    expires = int(query.split("expires=")[1].split("&")[0])
    signature = query.split("signature=")[1]
    flipped = "1" if signature[-1] == "0" else "0"  # one hex digit other than the real one
    thumbnail_path = video["thumbnailUrl"].partition("?")[0]
    tampered = {
        "signature": f"{path}?expires={expires}&signature={signature[:-1]}{flipped}",
        "expiry": f"{path}?expires={expires + 3600}&signature={signature}",
        "path": f"{thumbnail_path}?expires={expires}&signature={signature}",
        "unsigned": path,
        "half": f"{path}?expires={expires}",
    }
    with bare() as page:
        for name, link in tampered.items():
            body = assert_error(page.get(link), 403)
            assert "sign" in body["message"] or "expired" in body["message"], name
        assert page.get(url).status_code == 200  # the link as given still works


def test_an_expired_link_is_403_and_a_fresh_video_fetch_gives_a_working_one(
    tmp_path: Path, storage_env: dict[str, str]
) -> None:
    for api in media_api(tmp_path, storage_env, MEDIA_URL_TTL="1s"):
        video, token = completed_video(api)
        with bare() as page:
            deadline = time.monotonic() + 30
            while (answer := page.get(video["thumbnailUrl"])).status_code == 200:
                assert time.monotonic() < deadline, "the link never expired"
                time.sleep(0.1)
            assert "expired" in assert_error(answer, 403)["message"]

            with api.client(token) as client:  # the API hands out a fresh link, and Bearer works
                fresh = client.get(f"/api/videos/{video['id']}").json()
                assert client.get(f"/api/videos/{video['id']}/download").status_code in (200, 302)
            assert page.get(fresh["thumbnailUrl"]).status_code == 200
