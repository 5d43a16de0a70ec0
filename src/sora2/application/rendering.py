"""Background video jobs: render each requested video in a worker thread.

At most `concurrency` jobs render at once; the rest wait, and a job some runner had already
claimed (a crashed runner's, to take over) goes before every new one, so a survivor resumes
it within the lease, however long the queue. New requests arrive through the job-dispatch
processor (`submit`), cancels too (`cancel`), from any process. On start-up, `resume()`
picks up every video a crash left PENDING or PROCESSING, so no paid job is lost; a sweeper
keeps doing so. Each runner has an id; a job is claimed on the job board (see
`Videos.start_job`) and kept alive by heartbeats there, so two runners never render one
video unless its runner is gone or silent past the lease.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
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
        progress_every: float = 0.5,
        worker: str = "",
        lease: timedelta = timedelta(seconds=60),
        runner_is_gone: Callable[[str], bool] = lambda worker: False,
        take_new_jobs: bool = True,
    ) -> None:
        self.videos = videos
        self.generator = generator
        self.workdir = workdir
        self.progress_every = progress_every
        self.worker = worker
        self.lease = lease
        self.take_new_jobs = take_new_jobs
        self.heartbeat_every = min(lease.total_seconds() / 4, 5.0)
        self.runner_is_gone = runner_is_gone
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="video-job")
        # progress goes to the board from here, so a slow write never holds up a render
        self._progress_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-progress")
        self._cancelled: dict[UUID, threading.Event] = {}
        self._futures: dict[UUID, Future[None]] = {}
        self._waiting: list[tuple[int, int, UUID]] = []  # (priority, arrival, video): a heap
        self._arrivals = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self.sweeps = 0  # sweeps finished: operators (and drills) see the sweeper alive
        self.claims_refused = 0  # jobs left to a live runner elsewhere

    def submit(self, video_id: UUID, takeover: bool = False) -> None:
        """Queue the video's job; `takeover`: some runner claimed it before (it goes first)."""
        with self._lock:
            if self._closed or video_id in self._futures:
                return
            self._cancelled[video_id] = threading.Event()
            heapq.heappush(self._waiting, (0 if takeover else 1, next(self._arrivals), video_id))
            self._futures[video_id] = Future()  # done when this video's job is
            # each task the pool runs takes the first waiting job, not the one it was made for
            self._pool.submit(self._run_next)

    def cancel(self, video_id: UUID) -> None:
        with self._lock:
            if (flag := self._cancelled.get(video_id)) is not None:
                flag.set()

    def resume(self) -> int:
        """Queue every unfinished video again (the claim decides who renders); how many."""
        self._remove_abandoned_folders()
        unfinished = self.videos.views.unfinished_videos()
        claimed = self.videos.board.states(unfinished) if unfinished else {}
        for video_id in unfinished:
            self.submit(video_id, takeover=video_id in claimed)
        return len(unfinished)

    def sweep_forever(self, interval: float = 2.0) -> None:
        """Resume now, then look for unclaimed or abandoned jobs every `interval` seconds,
        in a background thread, until `shutdown()`."""

        def sweep() -> None:
            while not self._stop.is_set():
                try:
                    self.resume()
                    self.sweeps += 1
                except Exception:  # the database may be away for a moment: try again
                    log.exception("job sweep failed")
                self._stop.wait(interval)

        self._sweeper = threading.Thread(target=sweep, name="video-job-sweeper", daemon=True)
        self._sweeper.start()

    @property
    def sweeping(self) -> bool:
        return self._sweeper is not None

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
        self._stop.set()
        with self._lock:
            self._closed = True
            for flag in self._cancelled.values():
                flag.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._progress_pool.shutdown(wait=wait, cancel_futures=True)
        with self._lock:  # jobs that never started will not: their waiters are told
            for _, _, video_id in self._waiting:
                if (future := self._futures.get(video_id)) is not None:
                    future.cancel()
        if self._sweeper is not None and wait:
            self._sweeper.join(timeout=10)

    def _run_next(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            _, _, video_id = heapq.heappop(self._waiting)
        self._run(video_id)

    def _run(self, video_id: UUID) -> None:
        try:
            self._render(video_id)
        except Exception:  # a job must never die silently with the user's credits held
            log.exception("video job %s failed unexpectedly", video_id)
            if not self._closed:
                self.videos.fail_job(video_id, INTERNAL_FAILURE, "internal_error")
        finally:
            with self._lock:
                self._cancelled.pop(video_id, None)
                done = self._futures.pop(video_id, None)
            if done is not None and not done.done():
                done.set_result(None)

    def _render(self, video_id: UUID) -> None:
        flag = self._cancelled[video_id]
        video = self.videos.start_job(video_id, self.worker, self.lease, self.runner_is_gone)
        if video is None:
            self.claims_refused += 1
            return
        if flag.is_set():
            return
        began = time.monotonic()
        request = GenerationRequest(video.id, video.prompt, video.duration, video.aspect_ratio)
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = f"{_folder_safe(self.worker)}~{video_id}~"
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))
        try:
            files = self.generator.generate(
                request,
                workdir,
                self._progress_reporter(video_id, flag),
                self._cancel_check(video_id, flag),
            )
            if self.videos.complete_job(video_id, files):  # refuses if cancelled meanwhile
                self._record_rate(time.monotonic() - began, video.duration)
        except GenerationCancelled:
            log.info("video job %s stopped", video_id)  # cancel/delete already refunded
        except GenerationFailed as failure:
            self.videos.fail_job(video_id, str(failure) or "generation failed", failure.code)
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
            writes.offer(int(progress), eta)

        def write(progress: int, eta: int | None) -> None:
            if not flag.is_set() and not self.videos.report_progress(
                video_id, self.worker, progress, eta
            ):
                flag.set()  # cancelled, deleted or taken over elsewhere

        writes = _NewestOnly(write, self._progress_pool)
        return on_progress

    def _cancel_check(self, video_id: UUID, flag: threading.Event):  # noqa: ANN202
        """True once the job must stop. A cancel anywhere reaches us through the dispatch
        processor (`cancel`); a heartbeat also tells us if our claim was lost."""
        last = {"beat": time.monotonic()}

        def cancelled() -> bool:
            if flag.is_set():
                return True
            now = time.monotonic()
            if now - last["beat"] >= self.heartbeat_every:  # keep our claim alive
                last["beat"] = now
                if not self.videos.heartbeat(video_id, self.worker):
                    flag.set()
            return flag.is_set()

        return cancelled

    def _record_rate(self, elapsed: float, duration: int) -> None:
        try:
            self.videos.board.record_rate(elapsed / max(1, duration))
        except Exception:  # only the estimate suffers
            log.warning("could not record the render rate", exc_info=True)

    def _remove_abandoned_folders(self) -> None:
        """Working folders of runners that are gone (a crash): their renders start over."""
        if self.workdir is None or not self.workdir.exists():
            return
        for folder in self.workdir.iterdir():
            owner = folder.name.split("~", 1)[0]
            if owner == _folder_safe(self.worker) and not self._owns_folder(folder):
                shutil.rmtree(folder, ignore_errors=True)
            elif owner != _folder_safe(self.worker) and self.runner_is_gone(_worker_of(owner)):
                shutil.rmtree(folder, ignore_errors=True)

    def _owns_folder(self, folder: Path) -> bool:
        with self._lock:
            return any(folder.name.split("~")[1] == str(v) for v in self._futures)


class _NewestOnly:
    """One job's progress writes, done on `pool` one at a time: while one is being written
    only the newest value offered waits, the ones it replaces are never written."""

    def __init__(self, write: Callable[[int, int | None], None], pool: ThreadPoolExecutor) -> None:
        self._write, self._pool = write, pool
        self._lock = threading.Lock()
        self._newest: tuple[int, int | None] | None = None
        self._busy = False

    def offer(self, progress: int, seconds_remaining: int | None) -> None:
        with self._lock:
            self._newest = (progress, seconds_remaining)
            if self._busy:
                return
            self._busy = True
        try:
            self._pool.submit(self._drain)
        except RuntimeError:  # shutting down: progress no longer matters
            with self._lock:
                self._busy = False

    def _drain(self) -> None:
        while True:
            with self._lock:
                value, self._newest = self._newest, None
                if value is None:
                    self._busy = False
                    return
            try:
                self._write(*value)
            except Exception:  # the database may be away a moment: only the bar suffers
                log.warning("could not record a job's progress", exc_info=True)


def _folder_safe(worker: str) -> str:
    return worker.replace(":", "+").replace("/", "_").replace("~", "_") or "runner"


def _worker_of(folder_owner: str) -> str:
    return folder_owner.replace("+", ":")
