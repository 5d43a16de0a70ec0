"""LocalRenderer: real, playable H.264 MP4s and JPEG thumbnails, progress, cancellation.

Tests marked slow encode real video with libx264 (a few seconds in all); the others check
the drawing, wrapping and progress helpers directly.
"""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from sora2.adapters.rendering import local
from sora2.adapters.rendering.frames import Scene, displayable, wrap_text
from sora2.adapters.rendering.local import FRAME_SIZES, LocalRenderer
from sora2.application.ports import (
    GeneratedVideo,
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
)

PROMPT = "A corgi surfing a giant wave at sunset, cinematic lighting, slow motion"
OTHER_PROMPT = "Neon jellyfish drifting through a rainy cyberpunk alley at night"
CHINESE_PROMPT = "一只橘猫在月球上跳舞，电影感，慢动作，4K 超清"


@dataclass
class ProgressLog:
    calls: list[tuple[int, float | None]] = field(default_factory=list)

    def __call__(self, percent: int, seconds_remaining: float | None) -> None:
        self.calls.append((percent, seconds_remaining))

    @property
    def percents(self) -> list[int]:
        return [percent for percent, _ in self.calls]


@dataclass
class Rendered:
    request: GenerationRequest
    result: GeneratedVideo
    progress: ProgressLog


def never() -> bool:
    return False


def request(
    prompt: str = PROMPT, duration: int = 5, aspect_ratio: str = "16:9"
) -> GenerationRequest:
    return GenerationRequest(uuid.uuid4(), prompt, duration, aspect_ratio)


def render(workdir: Path, req: GenerationRequest) -> Rendered:
    progress = ProgressLog()
    result = LocalRenderer().generate(req, workdir, progress, never)
    return Rendered(req, result, progress)


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (ftyp, moov, mdat, ...)."""
    boxes, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def files_for(workdir: Path, req: GenerationRequest) -> list[Path]:
    return sorted(workdir.glob(f"{req.video_id}*")) if workdir.exists() else []


# --- the real videos -------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_second_clips(tmp_path_factory) -> dict[str, Rendered]:
    workdir = tmp_path_factory.mktemp("clips") / "not-yet-created"
    return {ratio: render(workdir, request(aspect_ratio=ratio)) for ratio in FRAME_SIZES}


@pytest.mark.slow
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_the_video_is_h264_at_the_requested_size_rate_and_duration(five_second_clips, aspect_ratio):
    clip = five_second_clips[aspect_ratio]
    video = clip.result.video_path
    assert video == video.parent / f"{clip.request.video_id}.mp4"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == FRAME_SIZES[aspect_ratio]
        assert stream.average_rate == 24
        assert float(stream.duration * stream.time_base) == pytest.approx(5, abs=0.1)
        assert container.duration / 1_000_000 == pytest.approx(5, abs=0.1)
        assert sum(1 for _ in container.decode(video=0)) == 5 * 24


@pytest.mark.slow
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_the_index_is_at_the_front_so_browsers_can_stream(five_second_clips, aspect_ratio):
    boxes = top_level_boxes(five_second_clips[aspect_ratio].result.video_path)
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.slow
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_the_thumbnail_is_a_jpeg_with_the_video_aspect(five_second_clips, aspect_ratio):
    clip = five_second_clips[aspect_ratio]
    thumbnail = clip.result.thumbnail_path
    assert thumbnail == thumbnail.parent / f"{clip.request.video_id}.jpg"
    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG"
        width, height = FRAME_SIZES[aspect_ratio]
        assert picture.width / picture.height == pytest.approx(width / height, rel=0.01)
        assert picture.width >= 320
        assert np.asarray(picture).std() > 5  # a picture, not a blank


@pytest.mark.slow
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_progress_rises_from_0_to_100(five_second_clips, aspect_ratio):
    progress = five_second_clips[aspect_ratio].progress
    percents = progress.percents
    assert percents[0] == 0
    assert percents[-1] == 100
    assert percents == sorted(percents)
    assert len(percents) <= 52
    assert all(seconds is None or seconds >= 0 for _, seconds in progress.calls)
    assert progress.calls[-1] == (100, 0.0)


@pytest.mark.slow
def test_only_the_two_files_are_left_in_the_workdir(five_second_clips):
    clip = five_second_clips["16:9"]
    names = {path.name for path in files_for(clip.result.video_path.parent, clip.request)}
    assert names == {f"{clip.request.video_id}.mp4", f"{clip.request.video_id}.jpg"}


@pytest.mark.slow
def test_the_same_prompt_gives_the_same_video_and_another_prompt_a_different_one(tmp_path):
    first = decoded_frames(
        render(tmp_path, request(duration=1, aspect_ratio="1:1")).result.video_path
    )
    again = decoded_frames(
        render(tmp_path, request(duration=1, aspect_ratio="1:1")).result.video_path
    )
    other_request = request(OTHER_PROMPT, duration=1, aspect_ratio="1:1")
    other = decoded_frames(render(tmp_path, other_request).result.video_path)
    assert len(first) == len(again) == len(other) == 24
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    for a, b in zip(first, other, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 10


@pytest.mark.slow
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16"])
def test_the_video_shows_the_drawn_frames_in_their_true_colours(five_second_clips, aspect_ratio):
    width, height = FRAME_SIZES[aspect_ratio]
    scene = Scene(PROMPT, width, height, 24, 5 * 24)
    decoded = decoded_frames(five_second_clips[aspect_ratio].result.video_path)
    for index in (0, 60, 119):
        difference = decoded[index].astype(int) - scene.frame(index)
        assert np.abs(difference).mean() < 3
        channel_means = difference.mean(axis=(0, 1))
        assert np.abs(channel_means).max() < 2
        # no colour cast, as when the colour matrix is not the one tagged (0.8 for BT.601)
        assert np.ptp(channel_means) < 0.5


@pytest.mark.slow
def test_the_picture_moves(five_second_clips):
    frames = decoded_frames(five_second_clips["1:1"].result.video_path)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 3


@pytest.mark.slow
def test_a_chinese_prompt_renders(tmp_path):
    clip = render(tmp_path, request(CHINESE_PROMPT + "\n\t🎬\x00", duration=1, aspect_ratio="9:16"))
    assert len(decoded_frames(clip.result.video_path)) == 24
    with Image.open(clip.result.thumbnail_path) as picture:
        assert picture.format == "JPEG"


@pytest.mark.slow
def test_cancelling_stops_promptly_and_leaves_no_files(tmp_path):
    req = request(duration=20)  # 480 frames: seconds of work if it did not stop
    requested_at: list[float] = []
    checks_after_request: list[float] = []

    def on_progress(percent: int, seconds_remaining: float | None) -> None:
        progress(percent, seconds_remaining)
        if len(progress.calls) == 2:  # the user presses "cancel" now
            requested_at.append(time.monotonic())

    def cancelled() -> bool:
        if requested_at:
            checks_after_request.append(time.monotonic())
        return bool(requested_at)

    progress = ProgressLog()
    with pytest.raises(GenerationCancelled):
        LocalRenderer().generate(req, tmp_path, on_progress, cancelled)
    stopped = time.monotonic()
    assert len(checks_after_request) == 1  # it stopped at the first "yes"
    assert stopped - requested_at[0] < 1.0  # typically a few milliseconds
    assert progress.percents[-1] < 50
    assert files_for(tmp_path, req) == []


def test_cancelled_before_starting_writes_nothing(tmp_path):
    req = request()
    progress = ProgressLog()
    with pytest.raises(GenerationCancelled):
        LocalRenderer().generate(req, tmp_path, progress, lambda: True)
    assert files_for(tmp_path, req) == []
    assert 100 not in progress.percents


@pytest.mark.parametrize("aspect_ratio", ["4:3", "", "16:10", "16/9"])
def test_an_unknown_aspect_ratio_fails(tmp_path, aspect_ratio):
    with pytest.raises(GenerationFailed, match="aspect ratio"):
        LocalRenderer().generate(request(aspect_ratio=aspect_ratio), tmp_path, ProgressLog(), never)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("duration", [0, -5])
def test_a_non_positive_duration_fails(tmp_path, duration):
    with pytest.raises(GenerationFailed, match="duration"):
        LocalRenderer().generate(request(duration=duration), tmp_path, ProgressLog(), never)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_error_midway_fails_with_a_safe_message_and_removes_partial_files(tmp_path, monkeypatch):
    original_draw = Scene.draw  # what the renderer draws with

    def broken_draw(self, index, picture):
        if index == 30:
            raise RuntimeError("internal detail /secret/path")
        return original_draw(self, index, picture)

    monkeypatch.setattr(Scene, "draw", broken_draw)
    req = request(duration=5, aspect_ratio="1:1")
    with pytest.raises(GenerationFailed) as failure:
        LocalRenderer().generate(req, tmp_path, ProgressLog(), never)
    assert "secret" not in str(failure.value)
    assert str(failure.value) == local.FAILED_MESSAGE
    assert files_for(tmp_path, req) == []


def test_an_unusable_workdir_fails(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(GenerationFailed):
        LocalRenderer().generate(request(), not_a_directory / "work", ProgressLog(), never)


@pytest.mark.parametrize(
    "kwargs", [{"fps": 0}, {"preset": "ludicrous"}, {"crf": 52}, {"font_path": Path("/no/font")}]
)
def test_a_bad_configuration_is_refused_at_construction(kwargs):
    with pytest.raises((ValueError, OSError)):
        LocalRenderer(**kwargs)


# --- drawing, without encoding ---------------------------------------------------------


def test_scene_frames_are_deterministic_and_differ_between_prompts():
    first, again, other = (Scene(p, 320, 180, 24, 48) for p in (PROMPT, PROMPT, OTHER_PROMPT))
    for index in (0, 20, 47):
        assert first.frame(index).shape == (180, 320, 3)
        assert first.frame(index).dtype == np.uint8
        assert np.array_equal(first.frame(index), again.frame(index))
        assert not np.array_equal(first.frame(index), other.frame(index))


def test_scene_returns_a_new_array_each_time():
    scene = Scene(PROMPT, 320, 180, 24, 48)
    frame = scene.frame(0)
    frame[:] = 0
    assert scene.frame(0).any()


@pytest.mark.parametrize("prompt", ["", "   \n\t", "\x00\x01", "\ud800"])
def test_blank_or_odd_prompts_still_draw(prompt):
    assert Scene(prompt, 320, 180, 24, 24).frame(0).shape == (180, 320, 3)


def fits_in(width: int):
    return lambda line: len(line) <= width


def test_wrap_breaks_between_words():
    assert wrap_text("the quick brown fox jumps", fits_in(10), 4) == [
        "the quick",
        "brown fox",
        "jumps",
    ]


def test_wrap_breaks_inside_text_without_spaces():
    assert wrap_text("一只橘猫在月球上跳舞", fits_in(4), 4) == ["一只橘猫", "在月球上", "跳舞"]


def test_wrap_ends_with_an_ellipsis_when_the_text_is_too_long():
    lines = wrap_text("aaaa bbbb cccc dddd eeee ffff", fits_in(9), 2)
    assert lines == ["aaaa bbbb", "cccc ddd…"]


def test_displayable_drops_control_characters_and_collapses_whitespace():
    assert displayable(" a\x00b\n\n c\u200b\td ") == "ab c d"


@given(
    st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=300),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=1, max_value=5),
)
def test_wrapped_lines_fit_and_keep_the_text(text, width, max_lines):
    text = " ".join(text.split())
    lines = wrap_text(text, fits_in(width), max_lines)
    assert len(lines) <= max_lines
    assert all(len(line) <= width or len(line) == 1 for line in lines)
    if lines and lines[-1].endswith("…"):
        kept = "".join(lines)[:-1].replace(" ", "")
        assert text.replace(" ", "").startswith(kept)
    else:
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")


# --- progress throttling -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_throttled_by_step_and_time():
    calls, clock = ProgressLog(), FakeClock()
    progress = local._Progress(calls, total_frames=1000, clock=clock)
    progress.started()
    for done in range(1, 1001):
        clock.now += 0.01  # 100 frames a second: 10 s in all
        progress.frames_done(done)
    progress.finished()
    percents = calls.percents
    assert percents[0] == 0 and percents[-1] == 100
    assert percents == sorted(percents)
    assert all(b - a >= 2 for a, b in zip(percents[1:-1], percents[2:-1], strict=False))
    assert 30 <= len(percents) <= 52
    remaining = [seconds for _, seconds in calls.calls[1:-1]]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[0] == pytest.approx(10 * (1 - percents[1] / 99), abs=0.3)


def test_progress_reports_at_most_four_times_a_second():
    calls, clock = ProgressLog(), FakeClock()
    progress = local._Progress(calls, total_frames=100, clock=clock)
    progress.started()
    for done in range(1, 101):
        clock.now += 0.005  # all 100 frames in half a second
        progress.frames_done(done)
    assert len(calls.calls) <= 3
