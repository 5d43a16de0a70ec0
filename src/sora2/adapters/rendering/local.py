"""The embedded default video generator: renders the video on this machine, on the CPU.

The platform's real generator is a remote AI model; this adapter lets the whole product run,
be demonstrated and be tested end to end without one. It draws a short animation derived
from the prompt (see `frames`), encodes it with PyAV's bundled libx264 into an H.264 MP4
whose index (moov atom) is at the front so browsers can play it while it downloads, and
saves a JPEG thumbnail. A fast x264 preset keeps it well ahead of real time on two cores:
for these smooth synthetic pictures "ultrafast" encodes twice as fast as "veryfast", with
the same quality and no bigger files (bench/bench_renderer.py measures it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Colorspace
from PIL import ImageFont

from sora2.adapters.rendering.frames import Picture, Scene
from sora2.application.ports import (
    GeneratedVideo,
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
    ProgressCallback,
)

logger = logging.getLogger(__name__)

FRAME_SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
CANCEL_CHECK_EVERY = 4  # frames; at typical speeds a check every few tens of milliseconds
THUMBNAIL_AT = 1 / 3  # of the way through the clip
THUMBNAIL_SCALE = 2  # the thumbnail is the frame at half its width and height
FAILED_MESSAGE = "The video could not be rendered. Please try again."


class LocalRenderer:
    """A `VideoGenerator` that needs nothing but PyAV, numpy and Pillow.

    `preset` and `crf` are libx264's speed/size trade-off and quality (lower is better).
    `font_path` names a TrueType/OpenType font for the caption; by default Pillow's bundled
    font, which shows characters it lacks (Chinese, for one) as boxes.
    Safe to share between threads: each `generate` call keeps its own state.
    """

    def __init__(
        self,
        fps: int = 24,
        preset: str = "ultrafast",
        crf: int = 23,
        font_path: Path | None = None,
    ) -> None:
        self.encoding = H264Settings(fps=fps, preset=preset, crf=crf)
        if font_path is not None:
            ImageFont.truetype(str(font_path), size=12)  # fail at startup, not per video
        self.font_path = font_path

    def generate(
        self,
        request: GenerationRequest,
        workdir: Path,
        on_progress: ProgressCallback,
        cancelled: Callable[[], bool],
    ) -> GeneratedVideo:
        width, height = _frame_size(request)
        frame_count = request.duration * self.encoding.fps
        files = _OutputFiles.for_request(workdir, request)
        finished = False
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            _raise_if(cancelled)
            scene = Scene(
                request.prompt, width, height, self.encoding.fps, frame_count, self.font_path
            )
            progress = _Progress(on_progress, frame_count)
            pictures = _watched(scene, progress, cancelled)
            encode_h264(pictures, files.video_part, width, height, self.encoding)
            _write_thumbnail(scene, files.thumbnail_part)
            _raise_if(cancelled)
            files.publish()
            progress.finished()
            finished = True
        except GenerationCancelled:
            raise
        except Exception as exc:
            logger.exception("local rendering of video %s failed", request.video_id)
            raise GenerationFailed(FAILED_MESSAGE, "render_error") from exc
        finally:
            if not finished:
                files.remove()
        return GeneratedVideo(video_path=files.video, thumbnail_path=files.thumbnail)


def _frame_size(request: GenerationRequest) -> tuple[int, int]:
    """The (width, height) for the request; GenerationFailed if it asks the impossible."""
    duration = request.duration
    if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0:
        raise GenerationFailed(
            f"The duration must be a positive number of seconds, not {duration!r}.",
            "render_error",
        )
    try:
        return FRAME_SIZES[request.aspect_ratio]
    except KeyError:
        supported = ", ".join(FRAME_SIZES)
        raise GenerationFailed(
            f"Unsupported aspect ratio {request.aspect_ratio!r}; choose one of {supported}.",
            "render_error",
        ) from None


def _watched(
    scene: Scene, progress: _Progress, cancelled: Callable[[], bool]
) -> Iterator[av.VideoFrame]:
    """The scene's frames, reporting progress and checking for cancellation as the encoder
    pulls them: when it asks for frame n, frames 0..n-1 have been encoded."""
    progress.started()
    for index in range(scene.frame_count):
        if index % CANCEL_CHECK_EVERY == 0:
            _raise_if(cancelled)
        if index:
            progress.frames_done(index)
        frame = av.VideoFrame(scene.width, scene.height, "yuv420p")
        scene.draw(index, Picture.of_video_frame(frame))  # straight into the encoder's buffers
        yield frame
    progress.frames_done(scene.frame_count)
    _raise_if(cancelled)


def _write_thumbnail(scene: Scene, path: Path) -> None:
    """One swscale pass scales the drawn frame down and converts it to RGB."""
    frame = av.VideoFrame(scene.width, scene.height, "yuv420p")
    scene.draw(int(scene.frame_count * THUMBNAIL_AT), Picture.of_video_frame(frame))
    small = frame.reformat(
        width=scene.width // THUMBNAIL_SCALE,
        height=scene.height // THUMBNAIL_SCALE,
        format="rgb24",
        src_colorspace=Colorspace.ITU709,
        interpolation="LANCZOS",
    )
    small.to_image().save(path, format="JPEG", quality=85)


def _raise_if(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise GenerationCancelled("The video generation was cancelled.")


# --- encoding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class H264Settings:
    fps: int = 24
    preset: str = "ultrafast"
    crf: int = 23  # 0..51, lower is better quality and bigger files

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, not {self.fps}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown x264 preset {self.preset!r}; one of {X264_PRESETS}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be within 0..51, not {self.crf}")


def encode_h264(
    pictures: Iterable[np.ndarray | av.VideoFrame],
    path: Path,
    width: int,
    height: int,
    settings: H264Settings,
) -> None:
    """Write pictures as a browser-streamable H.264 MP4: each either an RGB
    (height, width, 3) uint8 array, converted here, or already BT.709 yuv420p, as a
    (height * 3 / 2, width) array or an `av.VideoFrame`, which x264 takes as it is.

    Whatever `pictures` raises (cancellation included) propagates, after the file is closed.
    """
    container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
    try:
        stream = _add_h264_stream(container, width, height, settings)
        for index, picture in enumerate(pictures):
            container.mux(stream.encode(_yuv_frame(picture, index)))
        container.mux(stream.encode(None))  # flush the frames x264 still holds
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        raise
    container.close()  # writes the index and moves it to the front


def _add_h264_stream(
    container: av.container.OutputContainer, width: int, height: int, settings: H264Settings
) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=settings.fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {
        "preset": settings.preset,
        "crf": str(settings.crf),
        "g": str(2 * settings.fps),  # a keyframe every 2 s, for quick seeking
        # With macroblock-tree rate control on (presets from "superfast" down), libx264 as
        # bundled with PyAV 18 gave different bytes for the same frames from the second
        # encode in a process on; off, the same prompt always gives the same video.
        "x264-params": "mbtree=0",
    }
    codec = stream.codec_context
    codec.thread_type = "FRAME"  # x264's frame threads: faster than PyAV's default slices
    # tag BT.709, matching the conversion in _yuv_frame
    codec.colorspace = codec.color_primaries = codec.color_trc = Colorspace.ITU709.value
    codec.color_range = 1  # limited ("TV") range, what players expect
    return stream


def _yuv_frame(picture: np.ndarray | av.VideoFrame, index: int) -> av.VideoFrame:
    if isinstance(picture, av.VideoFrame):
        frame = picture
    elif picture.ndim == 2:
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    else:
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709)
    frame.pts = index
    return frame


# --- bookkeeping ------------------------------------------------------------------------


@dataclass(frozen=True)
class _OutputFiles:
    """The finished files, and the `.part` files written first so that a finished-looking
    file is never a partial one."""

    video: Path
    thumbnail: Path

    @staticmethod
    def for_request(workdir: Path, request: GenerationRequest) -> _OutputFiles:
        return _OutputFiles(
            video=workdir / f"{request.video_id}.mp4",
            thumbnail=workdir / f"{request.video_id}.jpg",
        )

    @property
    def video_part(self) -> Path:
        return self.video.with_name(self.video.name + ".part")

    @property
    def thumbnail_part(self) -> Path:
        return self.thumbnail.with_name(self.thumbnail.name + ".part")

    def publish(self) -> None:
        os.replace(self.video_part, self.video)
        os.replace(self.thumbnail_part, self.thumbnail)

    def remove(self) -> None:
        """Best effort: a file that cannot be removed must not hide why we are removing it."""
        for path in (self.video_part, self.thumbnail_part, self.video, self.thumbnail):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove %s", path, exc_info=True)


class _Progress:
    """Turns "n frames encoded" into `on_progress` calls: 0 first, 100 last, and in between
    only once both MIN_STEP percent and MIN_INTERVAL seconds have passed since the last call
    (at most 50 calls, at most 4 a second). Percent stops at 99 until the files are done."""

    MIN_STEP = 2
    MIN_INTERVAL = 0.25

    def __init__(
        self,
        on_progress: ProgressCallback,
        total_frames: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_progress, self._total, self._clock = on_progress, total_frames, clock
        self._start = self._last_time = clock()
        self._last_percent = 0

    def started(self) -> None:
        self._start = self._last_time = self._clock()
        self._on_progress(0, None)

    def frames_done(self, done: int) -> None:
        percent = done * 99 // self._total
        now = self._clock()
        if (
            percent - self._last_percent < self.MIN_STEP
            or now - self._last_time < self.MIN_INTERVAL
        ):
            return
        seconds_per_frame = (now - self._start) / done
        self._last_percent, self._last_time = percent, now
        self._on_progress(percent, round(seconds_per_frame * (self._total - done), 1))

    def finished(self) -> None:
        self._on_progress(100, 0.0)


def bundled_cjk_font() -> Path | None:
    """Noto Sans CJK from the `cvttf-notosanscjk-regular` package, when it is installed:
    the captions then show Chinese, Japanese and Korean prompts instead of boxes."""
    try:
        import cvttf_NotoSansCJK_Regular as noto  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        return Path(noto.get_TTF_path())
    except FileNotFoundError:
        return None
