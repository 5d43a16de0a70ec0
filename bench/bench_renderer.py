"""The local renderer's speed: a 5 s 16:9 clip, against real time and against a baseline
measured in the same run, on this machine: encoding as many plain solid-colour frames with
the same x264 settings. Ours/baseline is what the prompt's animation costs: drawing it, and
x264 having real pictures to compress; the drawing alone is timed too, to tell them apart.
The renderer draws in x264's own format (yuv420p), so it skips the RGB to YUV conversion the
baseline's RGB frames pay for; the same solid frames handed over as yuv420p are timed as well,
the floor of x264 alone.

Each figure is the median of 3 runs after a short warm-up.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sora2.adapters.rendering.frames import Picture, Scene  # noqa: E402
from sora2.adapters.rendering.local import (  # noqa: E402
    FRAME_SIZES,
    LocalRenderer,
    encode_h264,
)
from sora2.application.ports import GenerationRequest  # noqa: E402

PROMPT = "A corgi surfing a giant wave at sunset, cinematic lighting, slow motion, 35mm film"
SECONDS, ASPECT_RATIO, RUNS = 5, "16:9", 3


def main() -> None:
    renderer = LocalRenderer()
    width, height = FRAME_SIZES[ASPECT_RATIO]
    frame_count = SECONDS * renderer.encoding.fps
    with tempfile.TemporaryDirectory(prefix="sora2-bench-renderer-") as folder:
        workdir = Path(folder)

        def render(seconds: int = SECONDS) -> None:
            request = GenerationRequest(uuid.uuid4(), PROMPT, seconds, ASPECT_RATIO)
            renderer.generate(request, workdir, lambda percent, remaining: None, lambda: False)

        def solid_frames() -> None:
            picture = np.empty((height, width, 3), dtype=np.uint8)
            picture[:] = (40, 90, 160)
            pictures = (picture for _ in range(frame_count))
            encode_h264(pictures, workdir / "solid.mp4", width, height, renderer.encoding)

        def solid_yuv_frames() -> None:
            picture = np.empty((height * 3 // 2, width), dtype=np.uint8)
            picture[:height], picture[height:] = 90, 140  # Y, then U and V
            pictures = (picture for _ in range(frame_count))
            encode_h264(pictures, workdir / "solid-yuv.mp4", width, height, renderer.encoding)

        def draw_only() -> None:  # as the renderer draws: into the encoder's frames
            scene = Scene(PROMPT, width, height, renderer.encoding.fps, frame_count)
            for index in range(frame_count):
                scene.draw(index, Picture.of_video_frame(av.VideoFrame(width, height)))

        render(seconds=1)  # warm-up: first-call costs (x264, fonts, numpy) are not the point
        ours = median_seconds(render)
        baseline = median_seconds(solid_frames)
        x264_alone = median_seconds(solid_yuv_frames)
        drawing = median_seconds(draw_only)

    label = f"{SECONDS}s {ASPECT_RATIO}"
    print(f"renderer {label}: {ours:.2f} s wall = {SECONDS / ours:.2f}x real time")
    print(
        f"baseline {frame_count} solid {width}x{height} frames, same x264 settings: "
        f"{baseline:.2f} s wall = {SECONDS / baseline:.2f}x real time"
    )
    print(
        f"ours/baseline: {ours / baseline:.2f}; of our {ours:.2f} s, drawing alone: {drawing:.2f} s"
    )
    print(
        f"the same solid frames as yuv420p (x264 alone, no conversion): {x264_alone:.2f} s; "
        f"ours/that: {ours / x264_alone:.2f}"
    )


def median_seconds(work: Callable[[], None]) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


if __name__ == "__main__":
    main()
