"""Moderation as users meet it: a prompt with a term of the operator's MODERATION_BLOCKLIST
is refused before anything is charged, on every way of asking for a video; a prompt the
provider's content policy refuses ends FAILED with a code saying so, and is refunded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sora2.adapters.rendering.provider import ProviderVideoGenerator
from tests.conftest import Api, start_api
from tests.support.backends import sqlite_settings
from tests.support.errors import assert_error
from tests.support.fake_video_provider import DEFAULT_API_KEY, FakeVideoProvider


@pytest.fixture
def blocklist(tmp_path: Path) -> Path:
    path = tmp_path / "blocklist.txt"
    path.write_text("# one term per line\nForbidden Thing\n\n  badword  \n# dog\n")
    return path


@pytest.fixture
def moderated_api(tmp_path: Path, blocklist: Path) -> Iterator[Api]:
    settings = sqlite_settings(tmp_path, MODERATION_BLOCKLIST=str(blocklist), VIDEO_JOBS="off")
    yield from start_api(settings)


def money(api: Api, token: str) -> tuple[int, int]:
    """(balance, number of credit entries)."""
    with api.client(token) as c:
        balance = c.get("/api/credits/balance").json()["balance"]
        entries = c.get("/api/credits/transactions").json()["total"]
    return balance, entries


def test_a_blocked_term_is_refused_on_every_way_of_asking_and_nothing_is_charged(
    moderated_api: Api, blocklist: Path
) -> None:
    api = moderated_api
    _, token = api.register("mona")
    before = money(api, token)
    with api.client(token) as c:
        for prompt in ("a FORBIDDEN thing at dawn", "BadWord", "clouds, then a badwords"):
            for path in ("/api/videos/generate", "/api/videos/generate-stream"):
                body = assert_error(c.post(path, json={"prompt": prompt}), 400, "Moderation")
                assert "badword" not in body["message"].lower()
        assert c.get("/api/videos").json()["total"] == 0
        allowed = c.post("/api/videos/generate", json={"prompt": "a dog and a cat"})
        assert allowed.status_code == 201, allowed.text  # "# dog" is a comment, not a term
        charged = money(api, token)
        assert charged == (before[0] - 5, before[1] + 1)

        with blocklist.open("a") as file:  # the operator adds a term: no restart needed
            file.write("CAT\n")
        regenerated = c.post(f"/api/videos/{allowed.json()['id']}/regenerate")
        assert_error(regenerated, 400, "Moderation")
        assert_error(c.post("/api/videos/generate", json={"prompt": "a cat"}), 400, "Moderation")
        assert c.get("/api/videos").json()["total"] == 1
    assert money(api, token) == charged


def test_the_moderation_error_is_documented_on_generate(moderated_api: Api) -> None:
    with moderated_api.client() as c:
        document = c.get("/api-docs.json").json()
    assert "400" in document["paths"]["/api/videos/generate"]["post"]["responses"]


# --- the provider's own moderation -----------------------------------------------------------


@pytest.fixture
def provider_api(tmp_path: Path, fake_provider: FakeVideoProvider) -> Iterator[Api]:
    generator = ProviderVideoGenerator(
        fake_provider.base_url, DEFAULT_API_KEY, poll_interval=0.05, max_retries=0
    )
    try:
        yield from start_api(sqlite_settings(tmp_path), generator=generator)
    finally:
        generator.close()


def final_state(api: Api, token: str, video_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with api.client(token) as c:
        while True:
            video = c.get(f"/api/videos/{video_id}").json()
            if video["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return video
            assert time.monotonic() < deadline, video
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        ("UNSAFE_OUTPUT of a parade", "moderation_blocked"),  # the output was flagged
        ("MODERATE this parade", "moderation_blocked"),  # refused when the job was created
        ("a parade that will FAIL", "provider_error"),
    ],
)
def test_a_provider_failure_is_a_failed_video_with_its_code_and_refunded(
    provider_api: Api, prompt: str, code: str
) -> None:
    api = provider_api
    _, token = api.register("pat")
    with api.client(token) as c:
        video = c.post("/api/videos/generate", json={"prompt": prompt})
        assert video.status_code == 201, video.text
        assert video.json()["status"] == "PENDING"  # charged; the job may fail at once

    failed = final_state(api, token, video.json()["id"])

    assert failed["status"] == "FAILED" and failed["errorCode"] == code
    assert failed["error"]
    with api.client(token) as c:
        status = c.get(f"/api/videos/{failed['id']}/status").json()
        assert status["errorCode"] == code
        entries = c.get("/api/credits/transactions").json()["items"]
    assert [(e["type"], e["amount"], e["balance"]) for e in entries[:2]] == [
        ("REFUND", 5, 10),
        ("CONSUME", -5, 5),
    ]


def test_a_completed_video_has_no_error_code(provider_api: Api) -> None:
    _, token = provider_api.register("quinn")
    with provider_api.client(token) as c:
        video = c.post("/api/videos/generate", json={"prompt": "a calm lake"}).json()
    done = final_state(provider_api, token, video["id"])
    assert done["status"] == "COMPLETED"
    assert "errorCode" not in done and "error" not in done
