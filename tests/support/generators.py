"""Controllable VideoGenerators for tests that need a job to be slow, stuck or failing.

`ScriptedGenerator` writes a real (tiny) H.264 MP4 and JPEG, so a video it finishes can be
downloaded and played like a rendered one, but it takes only as long as the test wants.
Its behaviour is chosen per video by magic words in the prompt, like the fake provider's:

* a normal prompt: progress in `steps` steps of `step_seconds`, then COMPLETED;
* "HOLD": after the progress steps, wait until `release` is set (or the job is cancelled);
* "FAIL": after the progress steps, raise GenerationFailed(`failure_message`).

Every step honours `cancelled()` within a few milliseconds, as the port demands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from sora2.application.ports import (
    GeneratedVideo,
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
    ProgressCallback,
)
from tests.support.fake_video_provider import fake_image, fake_mp4

FRAME_SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
HOLD = "HOLD"
FAIL = "FAIL"
DEFAULT_FAILURE = "The renderer ran out of memory."
_SLICE = 0.01


class ScriptedGenerator:
    def __init__(
        self,
        steps: int = 3,
        step_seconds: float = 0.05,
        failure_message: str = DEFAULT_FAILURE,
    ) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.failure_message = failure_message
        self.release = threading.Event()  # lets every HOLD job finish
        self.requests: list[GenerationRequest] = []
        self.cancelled_ids: list[UUID] = []
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)

    # --- what tests look at -----------------------------------------------------------

    def wait_started(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until `count` jobs have reached the generator."""
        with self._started:
            if not self._started.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{count} jobs did not start within {timeout}s")

    # --- the port ---------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        workdir: Path,
        on_progress: ProgressCallback,
        cancelled: Callable[[], bool],
    ) -> GeneratedVideo:
        with self._started:
            self.requests.append(request)
            self._started.notify_all()
        try:
            on_progress(0, None)
            for step in range(1, self.steps + 1):
                self._sleep(self.step_seconds, cancelled)
                left = (self.steps - step) * self.step_seconds
                on_progress(step * 90 // self.steps, left)
            if HOLD in request.prompt:
                while not self.release.is_set():
                    self._sleep(_SLICE, cancelled)
            if FAIL in request.prompt:
                raise GenerationFailed(self.failure_message)
        except GenerationCancelled:
            with self._lock:
                self.cancelled_ids.append(request.video_id)
            raise
        width, height = FRAME_SIZES[request.aspect_ratio]
        workdir.mkdir(parents=True, exist_ok=True)
        video = workdir / f"{request.video_id}.mp4"
        thumbnail = workdir / f"{request.video_id}.jpg"
        video.write_bytes(fake_mp4(width, height))
        thumbnail.write_bytes(fake_image(width // 2, height // 2, "jpeg"))
        on_progress(100, 0.0)
        return GeneratedVideo(video_path=video, thumbnail_path=thumbnail)

    @staticmethod
    def _sleep(seconds: float, cancelled: Callable[[], bool]) -> None:
        end = time.monotonic() + seconds
        while True:
            if cancelled():
                raise GenerationCancelled("cancelled")
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_SLICE, left))
