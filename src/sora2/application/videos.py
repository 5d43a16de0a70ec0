"""Video commands and queries: request (reserving credits), cancel and delete (refunding),
regenerate, share; plus the job-side transitions the renderer drives.

Every step that moves money saves the video and the ledger in one atomic write, so a
crash can never leave a charged video without its job or a failed video unrefunded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

from sora2.application.answers import video_row
from sora2.application.event_log import EventLog, retry_on_conflict
from sora2.application.moderation import ALLOW_ALL, PromptPolicy
from sora2.application.ports import BlobStorage, Clock, GeneratedVideo, JobBoard
from sora2.application.processing.consistency import ReadYourWrites
from sora2.application.projections.rows import Page, VideoRow
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, NotFound
from sora2.domain.videos.video import FINAL, Video

log = logging.getLogger("sora2.videos")

DEFAULT_RENDER_RATE = 1.0  # seconds of rendering per second of video, until one is measured
RATE_REFRESH_SECONDS = 10.0


@dataclass(frozen=True)
class Shared:
    token: str
    video: VideoRow


class Videos:
    def __init__(
        self,
        log: EventLog,
        views: ReadModelView,
        seen: ReadYourWrites,
        board: JobBoard,
        storage: BlobStorage,
        clock: Clock,
        credits_per_second: int,
        share_secret: bytes,
        policy: PromptPolicy = ALLOW_ALL,
    ) -> None:
        self.log = log
        self.views = views
        self.seen = seen
        self.board = board
        self.storage = storage
        self.clock = clock
        self.credits_per_second = credits_per_second
        self.share_secret = share_secret
        self.policy = policy
        self._rate: tuple[float, float] | None = None  # (seconds per second, read at)

    # --- the user's commands -------------------------------------------------------------

    def request(
        self,
        user_id: UUID,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        regenerated_from: UUID | None = None,
        video_id: UUID | None = None,
    ) -> VideoRow:
        """Create the video and reserve its cost together; InsufficientCredits → neither.
        The answer is the video as requested: PENDING, whatever a job does next.
        A prompt the policy blocks is refused before anything is recorded.

        `video_id` (a keyed command's, see `command_ids`): if that video exists already,
        the command ran before and its video is the answer; nothing is created or charged."""
        self.policy.check(prompt)
        keyed = video_id is not None  # a fresh id names no earlier video: nothing to look up
        video_id = video_id or uuid4()

        def decide() -> tuple[int | None, Video]:
            if keyed and (earlier := self.log.find(Video, video_id)) is not None:
                if earlier.user_id != user_id:
                    raise Conflict("this Idempotency-Key names another request")
                return None, earlier
            now = self.clock.now()
            video = Video.request(
                video_id,
                user_id,
                prompt,
                duration,
                aspect_ratio,
                self.credits_per_second,
                now,
                regenerated_from,
            )
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(user_id), "ledger")
            ledger.reserve(video.id, video.cost, now)
            return self.log.commit(video, ledger), video

        position, video = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        return self._estimated([video_row(video)])[0]

    def regenerate(self, user_id: UUID, video_id: UUID, new_id: UUID | None = None) -> VideoRow:
        """A new video with the same prompt and settings, charged again."""
        original = self._own(user_id, video_id)
        return self.request(
            user_id,
            original.prompt,
            original.duration,
            original.aspect_ratio,
            regenerated_from=original.id,
            video_id=new_id,
        )

    def cancel(self, user_id: UUID, video_id: UUID) -> VideoRow:
        self._own(user_id, video_id)
        position, video = retry_on_conflict(lambda: self._end(video_id, None))
        self._ended(video, position)
        return video_row(video)

    def cancel_for_admin(self, admin_id: UUID, video_id: UUID) -> VideoRow:
        """Any user's running video, cancelled and refunded as its owner's cancel is; the
        Cancelled event names the admin."""
        video = self.log.find(Video, video_id)
        if video is None or video.deleted:
            raise NotFound("video not found")
        position, video = retry_on_conflict(lambda: self._end(video_id, None, admin_id=admin_id))
        self._ended(video, position)
        self.seen.note(admin_id, position)
        return video_row(video)

    def all(self, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        """Every user's videos (admins), newest first."""
        self.seen.wait_latest()
        result = self.views.all_videos(status, page, limit)
        return replace(result, items=self._estimated(result.items))

    def delete(self, user_id: UUID, video_id: UUID) -> None:
        """Cancel a running job first (refunding it), then remove the video and its files."""
        self._own(user_id, video_id)

        def decide() -> tuple[int | None, Video]:
            video = self.log.load(Video, video_id, "video")
            now = self.clock.now()
            changed: list[object] = [video]
            if not video.is_final:
                video.cancel(now)
                changed.append(self._refund(video, now))
            video.delete(now)
            return self.log.commit(*changed), video  # type: ignore[arg-type]

        position, video = retry_on_conflict(decide)
        self._ended(video, position)
        for key in (video.video_key, video.thumbnail_key):
            if key:
                _remove_quietly(self.storage, key)

    def share(self, user_id: UUID, video_id: UUID) -> Shared:
        """A public link token; the same one until it is revoked."""
        self._own(user_id, video_id)

        def decide() -> tuple[int | None, str, Video]:
            video = self.log.load(Video, video_id, "video")
            token = self._share_token(video)
            video.share(_digest(token), self.clock.now())
            return self.log.commit(video), token, video

        position, token, video = retry_on_conflict(decide)
        self.seen.note(user_id, position)
        return Shared(token, video_row(video))

    def revoke_share(self, user_id: UUID, video_id: UUID) -> None:
        self._own(user_id, video_id)

        def decide() -> int | None:
            video = self.log.load(Video, video_id, "video")
            video.revoke_share(self.clock.now())
            return self.log.commit(video)

        self.seen.note(user_id, retry_on_conflict(decide))

    # --- queries -------------------------------------------------------------------------

    def list(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        self.seen.wait(user_id)
        result = self.views.videos(user_id, status, page, limit)
        return replace(result, items=self._estimated(result.items))

    def get(self, user_id: UUID, video_id: UUID) -> VideoRow:
        self.seen.wait(user_id)
        row = self.views.video(video_id)
        if row is None or row.user_id != user_id:  # another user's video does not exist for you
            raise NotFound("video not found")
        return self._estimated([row])[0]

    def linked(self, video_id: UUID) -> VideoRow:
        """A video whose signed link the caller holds: the link is the permission."""
        self.seen.wait_latest()
        row = self.views.video(video_id)
        if row is None:
            raise NotFound("video not found")
        return self._estimated([row])[0]

    def shared(self, token: str) -> VideoRow:
        self.seen.wait_latest()
        row = self.views.video_by_share(_digest(token))
        if row is None or row.status != "COMPLETED":
            raise NotFound("this share link does not exist or was revoked")
        return row

    def completed_file(self, row: VideoRow, which: str) -> str:
        """The storage key of a completed video's MP4 or thumbnail."""
        key = row.video_key if which == "video" else row.thumbnail_key
        if row.status != "COMPLETED" or not key:
            raise Conflict(f"the video is {row.status}; files exist once it is COMPLETED")
        return key

    # --- the job's transitions (called by the renderer's worker) ------------------------

    def start_job(
        self,
        video_id: UUID,
        worker: str = "",
        lease: timedelta = timedelta(seconds=60),
        runner_is_gone: Callable[[str], bool] = lambda worker: False,
    ) -> Video | None:
        """Claim the video's job for `worker`: the video to render, or None to leave it.

        The claim is the job board's (free, ours, or its runner gone or silent past the
        lease); a PENDING video is then started in the log, once.
        """
        video = self.log.find(Video, video_id)
        if video is None or video.is_final or video.deleted:
            self.board.release(video_id)
            return None
        if not self.board.claim(video_id, worker, self.clock.now(), lease, runner_is_gone):
            return None

        def decide() -> Video | None:
            fresh = self.log.find(Video, video_id)
            if fresh is None or fresh.is_final or fresh.deleted:
                return None
            if fresh.status == "PENDING":
                fresh.start(self.clock.now(), worker)
                self.seen.note(fresh.user_id, self.log.commit(fresh))
            return fresh

        started = retry_on_conflict(decide)
        if started is None:
            self.board.release(video_id)
        return started

    def heartbeat(self, video_id: UUID, worker: str = "") -> bool:
        """Tell other runners this job is alive; False once another runner took it over or
        the video ended (this one must stop)."""
        return self.board.beat(video_id, worker, self.clock.now())

    def report_progress(
        self, video_id: UUID, worker: str, progress: int, seconds_remaining: int | None
    ) -> bool:
        """Record progress (a heartbeat too); False once the job is no longer ours."""
        return self.board.beat(video_id, worker, self.clock.now(), progress, seconds_remaining)

    def complete_job(self, video_id: UUID, files: GeneratedVideo) -> bool:
        """Store the files, then COMPLETED and the reservation settled, atomically.

        If the video was cancelled meanwhile, the files are removed and False returned.
        If another process (one that resumed the same job) completed it first, its files
        (under the same keys) are left alone.
        """
        video = self.log.load(Video, video_id, "video")
        if video.status != "PROCESSING":  # cancelled, or completed elsewhere: store nothing
            return False
        video_key = f"videos/{video.user_id}/{video_id}.mp4"
        thumbnail_key = f"thumbnails/{video.user_id}/{video_id}.jpg"
        self.storage.put_file(video_key, Path(files.video_path), "video/mp4")
        self.storage.put_file(thumbnail_key, Path(files.thumbnail_path), "image/jpeg")

        def decide() -> bool:
            fresh = self.log.load(Video, video_id, "video")
            if fresh.status != "PROCESSING":
                return False
            now = self.clock.now()
            fresh.complete(video_key, thumbnail_key, now)
            ledger = self.log.load(CreditLedger, CreditLedger.create_id(fresh.user_id), "ledger")
            ledger.settle(video_id, now)
            self._ended(fresh, self.log.commit(fresh, ledger))
            return True

        if retry_on_conflict(decide):
            return True
        current = self.log.load(Video, video_id, "video")
        if current.status == "COMPLETED" and not current.deleted and current.video_key == video_key:
            return False  # the winner's files, same keys: keep them
        self.storage.delete(video_key)
        self.storage.delete(thumbnail_key)
        return False

    def fail_job(self, video_id: UUID, error: str, code: str = "provider_error") -> bool:
        """FAILED (with its failure code) and refunded, atomically; False if the video had
        already ended."""

        def decide() -> tuple[int | None, Video] | None:
            video = self.log.find(Video, video_id)
            if video is None or video.is_final:
                return None
            return self._end(video_id, error, code)

        result = retry_on_conflict(decide)
        if result is None:
            return False
        position, video = result
        self._ended(video, position)
        return True

    # --- helpers ---------------------------------------------------------------------------

    def _end(
        self,
        video_id: UUID,
        error: str | None,
        code: str = "provider_error",
        admin_id: UUID | None = None,
    ) -> tuple[int | None, Video]:
        """Cancel (error None) or fail the video and refund its credits in one write."""
        video = self.log.load(Video, video_id, "video")
        now = self.clock.now()
        if error is None:
            video.cancel(now, admin_id)
        else:
            video.fail(error, now, code)
        return self.log.commit(video, self._refund(video, now)), video

    def _ended(self, video: Video, position: int | None) -> None:
        self.seen.note(video.user_id, position)
        try:
            self.board.release(video.id)
        except Exception:  # the job row is ephemeral: a stale one is swept, never harmful
            log.warning("could not release the job of video %s", video.id, exc_info=True)

    def _refund(self, video: Video, now: object) -> CreditLedger:
        ledger = self.log.load(CreditLedger, CreditLedger.create_id(video.user_id), "ledger")
        ledger.refund(video.id, now)  # type: ignore[arg-type]
        return ledger

    def _own(self, user_id: UUID, video_id: UUID) -> Video:
        video = self.log.find(Video, video_id)
        if video is None or video.user_id != user_id or video.deleted:
            raise NotFound("video not found")
        return video

    def _share_token(self, video: Video) -> str:
        message = f"{video.id}:{video.share_generation}".encode()
        return hmac.new(self.share_secret, message, hashlib.sha256).hexdigest()[:40]

    def _estimated(self, rows: list[VideoRow]) -> list[VideoRow]:
        """Rows with the running jobs' progress, and a whole number of seconds remaining
        for every video that is not final (from its duration and the measured render rate)."""
        running = [r.id for r in rows if r.status == "PROCESSING"]
        jobs = self.board.states(running) if running else {}
        rate = self._render_rate() if any(r.status not in FINAL for r in rows) else 0.0
        estimated = []
        for row in rows:
            if row.status in FINAL:  # nothing remains
                estimated.append(replace(row, seconds_remaining=None))
                continue
            job = jobs.get(row.id)
            progress = job.progress if job is not None and row.status == "PROCESSING" else 0
            own = job.seconds_remaining if job is not None else None
            remaining = own if own is not None else row.duration * rate * (100 - progress) / 100
            seconds = max(1, math.ceil(remaining))
            estimated.append(replace(row, progress=progress, seconds_remaining=seconds))
        return estimated

    def _render_rate(self) -> float:
        now = time.monotonic()
        if self._rate is None or now - self._rate[1] > RATE_REFRESH_SECONDS:
            try:
                measured = self.board.render_rate()
            except Exception:
                measured = None
            self._rate = (measured if measured is not None else DEFAULT_RENDER_RATE, now)
        return self._rate[0]


def _remove_quietly(storage: BlobStorage, key: str) -> None:
    """The video is already gone from the log; a file left behind is only logged."""
    try:
        storage.delete(key)
    except Exception:
        log.exception("could not remove %s from storage", key)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
