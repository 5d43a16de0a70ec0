"""ProviderVideoGenerator against the fake `/v1/videos` provider, over real HTTP.

Real sockets (not mocked transports) so auth headers, retries, streaming downloads and
timeouts are exercised the way they will be in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import av
import pytest
from PIL import Image

from sora2.adapters.rendering.provider import (
    CREDENTIALS_MESSAGE,
    POLICY_MESSAGE,
    TIMEOUT_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ProviderVideoGenerator,
)
from sora2.application.ports import (
    GeneratedVideo,
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
)
from tests.support.fake_video_provider import (
    DEFAULT_API_KEY,
    FILL_RGB,
    FakeVideoProvider,
    running_fake_provider,
)

MakeGenerator = Callable[..., ProviderVideoGenerator]


@pytest.fixture
def provider() -> Iterator[FakeVideoProvider]:
    with running_fake_provider() as fake:
        yield fake


@pytest.fixture
def make_generator(provider: FakeVideoProvider) -> Iterator[MakeGenerator]:
    made: list[ProviderVideoGenerator] = []

    def make(**overrides: object) -> ProviderVideoGenerator:
        options: dict[str, object] = {
            "base_url": provider.base_url,
            "api_key": DEFAULT_API_KEY,
            "poll_interval": 0.02,
            "timeout": 15.0,
            "retry_backoff": 0.01,
        }
        options.update(overrides)
        generator = ProviderVideoGenerator(**options)  # type: ignore[arg-type]
        made.append(generator)
        return generator

    yield make
    for generator in made:
        generator.close()


def request(prompt: str = "a red fox in the snow", *, aspect: str = "16:9", duration: int = 10):
    return GenerationRequest(
        video_id=uuid4(), prompt=prompt, duration=duration, aspect_ratio=aspect
    )


class Progress:
    """Collects on_progress calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float | None]] = []

    def __call__(self, percent: int, remaining: float | None) -> None:
        self.calls.append((percent, remaining))

    @property
    def percents(self) -> list[int]:
        return [p for p, _ in self.calls]


def never() -> bool:
    return False


def run(generator: ProviderVideoGenerator, req: GenerationRequest, workdir: Path, **kw):
    progress = kw.pop("progress", Progress())
    cancelled = kw.pop("cancelled", never)
    return generator.generate(req, workdir, progress, cancelled)


def failure_of(generator: ProviderVideoGenerator, req: GenerationRequest, workdir: Path) -> str:
    with pytest.raises(GenerationFailed) as info:
        run(generator, req, workdir)
    return str(info.value)


# --- happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aspect", "size"), [("16:9", (1280, 720)), ("9:16", (720, 1280)), ("1:1", (720, 720))]
)
def test_generates_video_and_thumbnail(
    provider: FakeVideoProvider,
    make_generator: MakeGenerator,
    tmp_path: Path,
    aspect: str,
    size: tuple[int, int],
) -> None:
    req = request(aspect=aspect, duration=10)
    progress = Progress()

    result = run(make_generator(), req, tmp_path / "work", progress=progress)

    assert result == GeneratedVideo(
        video_path=tmp_path / "work" / f"{req.video_id}.mp4",
        thumbnail_path=tmp_path / "work" / f"{req.video_id}.jpg",
    )
    with av.open(str(result.video_path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == size
        assert stream.codec_context.name == "h264"
    with Image.open(result.thumbnail_path) as thumb:
        assert thumb.format == "JPEG"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(
        [result.video_path.name, result.thumbnail_path.name]
    ), "no temp files left behind"

    assert progress.percents == sorted(progress.percents), "progress never goes backwards"
    assert progress.percents[-1] == 100 and progress.percents.count(100) == 1
    assert progress.calls[-1] == (100, 0.0)
    assert any(0 < p < 100 for p in progress.percents), "intermediate progress was reported"

    (create,) = provider.requests_to("POST")
    assert create.json() == {
        "model": "sora-2",
        "prompt": req.prompt,
        "seconds": "10",
        "size": f"{size[0]}x{size[1]}",
    }
    assert all(r.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}" for r in provider.requests)
    assert not provider.requests_to("DELETE")


def test_custom_model_and_base_url_with_v1_suffix(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    generator = make_generator(base_url=provider.base_url + "/v1/", model="sora-2-pro")
    run(generator, request(), tmp_path)
    (create,) = provider.requests_to("POST")
    assert create.path == "/v1/videos"
    assert create.json()["model"] == "sora-2-pro"


def test_missing_thumbnail_is_drawn_from_first_frame(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.thumbnail = None
    result = run(make_generator(), request(aspect="9:16"), tmp_path)
    with Image.open(result.thumbnail_path) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (720, 1280)
        pixel = thumb.convert("RGB").getpixel((360, 640))
    assert all(abs(a - b) < 12 for a, b in zip(pixel, FILL_RGB, strict=True))
    assert provider.requests_to("GET", "/v1/videos/")[-1].path.endswith("variant=thumbnail")


def test_non_jpeg_thumbnail_is_converted(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.thumbnail = "webp"
    result = run(make_generator(), request(), tmp_path)
    with Image.open(result.thumbnail_path) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (1280, 720)


# --- refusals and failures -------------------------------------------------------------------


def test_moderation_at_create_is_a_policy_failure(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    message = failure_of(make_generator(), request("MODERATE this please"), tmp_path)
    assert message == POLICY_MESSAGE
    assert [r.method for r in provider.requests] == ["POST"], "a refusal is not retried"
    assert not any(tmp_path.iterdir())


def test_moderation_in_failed_status_is_a_policy_failure(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    message = failure_of(make_generator(), request("UNSAFE_OUTPUT"), tmp_path)
    assert message == POLICY_MESSAGE


def test_failed_status_reports_the_provider_error(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    progress = Progress()
    with pytest.raises(GenerationFailed) as info:
        run(make_generator(), request("please FAIL"), tmp_path, progress=progress)
    assert "ran out of memory" in str(info.value)
    assert 100 not in progress.percents
    assert not list(tmp_path.glob("*.mp4"))


def test_wrong_api_key_fails_without_echoing_it(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    wrong = "sk-wrong-key-abcdef0123456789"
    message = failure_of(make_generator(api_key=wrong), request(), tmp_path)
    assert message == CREDENTIALS_MESSAGE
    assert provider.requests[0].headers["authorization"] == f"Bearer {wrong}"
    assert wrong not in message


def test_unsupported_aspect_ratio_fails_before_calling_out(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    failure_of(make_generator(), request(aspect="4:3"), tmp_path)
    assert provider.requests == []


# --- transient trouble ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path, status: int
) -> None:
    provider.fail_next(2, status)
    result = run(make_generator(), request(), tmp_path)
    assert result.video_path.exists()
    assert len(provider.requests_to("POST")) == 3
    keys = {r.headers.get("idempotency-key") for r in provider.requests_to("POST")}
    assert len(keys) == 1 and None not in keys, "retried creates carry one idempotency key"
    assert len(provider.jobs) == 1


def test_transient_errors_while_polling_and_downloading_are_retried(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    generator = make_generator()
    polls = 0

    def flaky_progress(percent: int, remaining: float | None) -> None:
        nonlocal polls
        polls += 1
        provider.fail_next(1, 502)  # the next poll (or the download) hiccups once

    result = generator.generate(request(), tmp_path, flaky_progress, never)
    assert result.video_path.exists() and result.thumbnail_path.exists()
    assert polls >= 3


def test_persistent_server_errors_mean_unavailable(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.fail_next(1000, 500)
    message = failure_of(make_generator(max_retries=3), request(), tmp_path)
    assert message == UNAVAILABLE_MESSAGE
    assert "unavailable" in message
    assert len(provider.requests_to("POST")) == 4


def test_unreachable_provider_means_unavailable(tmp_path: Path) -> None:
    with running_fake_provider() as fake:
        dead_url = fake.base_url  # the port is free again once the fake stops
    generator = ProviderVideoGenerator(
        dead_url, DEFAULT_API_KEY, poll_interval=0.02, retry_backoff=0.01, max_retries=2
    )
    try:
        assert failure_of(generator, request(), tmp_path) == UNAVAILABLE_MESSAGE
    finally:
        generator.close()


# --- cancel and timeout ---------------------------------------------------------------------


def test_cancel_mid_poll_is_prompt_and_deletes_the_job(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.polls_to_complete = None  # render forever
    generator = make_generator(poll_interval=0.5)
    stop = threading.Event()
    cancelled_at: list[float] = []

    def cancel_during_second_wait() -> None:
        deadline = time.monotonic() + 5
        while not provider.requests_to("GET") and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # now inside the wait before the second poll
        cancelled_at.append(time.monotonic())
        stop.set()

    threading.Thread(target=cancel_during_second_wait, daemon=True).start()
    with pytest.raises(GenerationCancelled):
        generator.generate(request(), tmp_path, Progress(), stop.is_set)
    assert time.monotonic() - cancelled_at[0] < 0.3, "cancel did not wait out the poll interval"
    assert len(provider.requests_to("GET")) == 1

    (delete,) = provider.requests_to("DELETE")
    (job,) = provider.jobs.values()
    assert delete.path == f"/v1/videos/{job.id}"
    assert delete.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert job.deleted
    assert not list(tmp_path.glob("*.mp4"))


def test_cancel_before_start_calls_nothing(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    with pytest.raises(GenerationCancelled):
        run(make_generator(), request(), tmp_path, cancelled=lambda: True)
    assert provider.requests == []


def test_overall_timeout_fails_and_deletes_the_job(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.polls_to_complete = None
    started = time.monotonic()
    message = failure_of(make_generator(timeout=0.3), request(), tmp_path)
    assert message == TIMEOUT_MESSAGE
    assert time.monotonic() - started < 3.0
    assert len(provider.requests_to("DELETE")) == 1


def test_a_stalled_provider_counts_toward_the_timeout(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    provider.response_delay = 2.0
    started = time.monotonic()
    message = failure_of(make_generator(timeout=0.3), request(), tmp_path)
    assert message == TIMEOUT_MESSAGE
    assert time.monotonic() - started < 2.0


# --- the key stays secret ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario", ["moderated", "failed", "unavailable", "timeout", "wrong key", "cancelled"]
)
def test_api_key_never_appears_in_errors(
    provider: FakeVideoProvider,
    make_generator: MakeGenerator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    scenario: str,
) -> None:
    key = DEFAULT_API_KEY
    prompt = {"moderated": "MODERATE", "failed": "FAIL"}.get(scenario, "a cat")
    provider.failure_message = f"Worker crashed while using credential {key}."
    overrides: dict[str, object] = {"max_retries": 1}
    cancelled = never
    if scenario == "unavailable":
        provider.fail_next(1000, 503)
    if scenario == "timeout":
        provider.polls_to_complete = None
        overrides["timeout"] = 0.2
    if scenario == "wrong key":
        key = "sk-not-the-right-one-987654321"
        overrides["api_key"] = key
    if scenario == "cancelled":
        cancelled = lambda: len(provider.requests) >= 2  # noqa: E731
    generator = make_generator(**overrides)

    caplog.set_level("DEBUG")
    with pytest.raises((GenerationFailed, GenerationCancelled)) as info:
        generator.generate(request(prompt), tmp_path, Progress(), cancelled)

    chain: list[BaseException] = []
    error: BaseException | None = info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for error in chain:
        assert key not in str(error) and key not in repr(error)
    assert key not in repr(generator)
    assert key not in caplog.text


# --- failure codes ---------------------------------------------------------------------------


def code_of(generator: ProviderVideoGenerator, req: GenerationRequest, workdir: Path) -> str:
    with pytest.raises(GenerationFailed) as info:
        run(generator, req, workdir)
    return info.value.code


def test_each_kind_of_failure_carries_its_code(
    provider: FakeVideoProvider, make_generator: MakeGenerator, tmp_path: Path
) -> None:
    generator = make_generator(max_retries=1)
    assert code_of(generator, request("MODERATE this"), tmp_path) == "moderation_blocked"
    assert code_of(generator, request("UNSAFE_OUTPUT"), tmp_path) == "moderation_blocked"
    assert code_of(generator, request("please FAIL"), tmp_path) == "provider_error"
    provider.fail_next(1000, 503)
    assert code_of(generator, request(), tmp_path) == "provider_unavailable"
    provider.fail_next(0)
    provider.polls_to_complete = None
    assert code_of(make_generator(timeout=0.3), request(), tmp_path) == "timeout"
