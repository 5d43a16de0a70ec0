"""Background video jobs: render each requested video in a worker thread.

At most `concurrency` jobs render at once; the rest wait in the pool's queue. On start-up,
`resume()` picks up every video a crash left PENDING or PROCESSING, so no paid job is lost.
A job stops promptly when its video is cancelled or deleted, in this process or another.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

from sora2.application.ports import (
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
    VideoGenerator,
)
from sora2.application.videos import Videos

log = logging.getLogger("sora2.jobs")

INTERNAL_FAILURE = "Video generation failed because of an internal error."


class VideoJobs:
    def __init__(
        self,
        videos: Videos,
        generator: VideoGenerator,
        concurrency: int = 2,
        workdir: Path | None = None,
        progress_every: float = 1.0,
        cancel_check_every: float = 0.5,
    ) -> None:
        self.videos = videos
        self.generator = generator
        self.workdir = workdir
        self.progress_every = progress_every
        self.cancel_check_every = cancel_check_every
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="video-job")
        self._cancelled: dict[UUID, threading.Event] = {}
        self._futures: dict[UUID, Future[None]] = {}
        self._lock = threading.Lock()
        self._closed = False
        videos.on_requested = self.submit
        videos.on_cancelled = self.cancel

    def submit(self, video_id: UUID) -> None:
        with self._lock:
            if self._closed or video_id in self._futures:
                return
            self._cancelled[video_id] = threading.Event()
            self._futures[video_id] = self._pool.submit(self._run, video_id)

    def cancel(self, video_id: UUID) -> None:
        with self._lock:
            if (flag := self._cancelled.get(video_id)) is not None:
                flag.set()

    def resume(self) -> int:
        """Queue every unfinished video again; how many. Working folders a crash left
        behind are removed first: their renders start over."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir(parents=True, exist_ok=True)
        unfinished = self.videos.views.unfinished_videos()
        for video_id in unfinished:
            self.submit(video_id)
        return len(unfinished)

    def wait(self, video_id: UUID, timeout: float | None = None) -> None:
        """Block until the video's job has finished (for tests and drills)."""
        future = self._futures.get(video_id)
        if future is not None:
            future.result(timeout=timeout)

    @property
    def running(self) -> int:
        return sum(1 for f in self._futures.values() if not f.done())

    def shutdown(self, wait: bool = False) -> None:
        """Stop taking jobs; running ones are told to stop (they resume on next start)."""
        with self._lock:
            self._closed = True
            for flag in self._cancelled.values():
                flag.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _run(self, video_id: UUID) -> None:
        try:
            self._render(video_id)
        except Exception:  # a job must never die silently with the user's credits held
            log.exception("video job %s failed unexpectedly", video_id)
            if not self._closed:
                self.videos.fail_job(video_id, INTERNAL_FAILURE)
        finally:
            with self._lock:
                self._cancelled.pop(video_id, None)
                self._futures.pop(video_id, None)

    def _render(self, video_id: UUID) -> None:
        flag = self._cancelled[video_id]
        video = self.videos.start_job(video_id)
        if video is None or flag.is_set():
            return
        request = GenerationRequest(video.id, video.prompt, video.duration, video.aspect_ratio)
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"sora2-{video_id}-", dir=self.workdir))
        try:
            files = self.generator.generate(
                request,
                workdir,
                self._progress_reporter(video_id, flag),
                self._cancel_check(video_id, flag),
            )
            self.videos.complete_job(video_id, files)  # refuses if cancelled meanwhile
        except GenerationCancelled:
            log.info("video job %s stopped", video_id)  # cancel/delete already refunded
        except GenerationFailed as failure:
            self.videos.fail_job(video_id, str(failure) or "generation failed")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _progress_reporter(self, video_id: UUID, flag: threading.Event):  # noqa: ANN202
        last = {"progress": -1, "at": 0.0}

        def on_progress(progress: int, seconds_remaining: float | None) -> None:
            now = time.monotonic()
            due = progress - last["progress"] >= 10 or now - last["at"] >= self.progress_every
            if flag.is_set() or not due or progress >= 100 or progress == last["progress"]:
                return
            last.update(progress=progress, at=now)
            eta = None if seconds_remaining is None else max(0, round(seconds_remaining))
            if not self.videos.report_progress(video_id, int(progress), eta):
                flag.set()  # cancelled or deleted elsewhere

        return on_progress

    def _cancel_check(self, video_id: UUID, flag: threading.Event):  # noqa: ANN202
        last = {"at": time.monotonic()}

        def cancelled() -> bool:
            if flag.is_set():
                return True
            now = time.monotonic()
            if now - last["at"] >= self.cancel_check_every:
                last["at"] = now
                if not self.videos.is_active(video_id):  # cancelled by another process
                    flag.set()
            return flag.is_set()

        return cancelled
