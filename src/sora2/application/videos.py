"""Video commands and queries: request (reserving credits), cancel and delete (refunding),
regenerate, share; plus the job-side transitions the renderer drives.

Every step that moves money saves the video and the ledger in one atomic write, so a
crash can never leave a charged video without its job or a failed video unrefunded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

from sora2.application.event_log import EventLog, retry_on_conflict
from sora2.application.follower import Follower
from sora2.application.ports import BlobStorage, Clock, GeneratedVideo
from sora2.application.projections.rows import Page, VideoRow
from sora2.application.projections.view import ReadModelView
from sora2.domain.credits.ledger import CreditLedger
from sora2.domain.errors import Conflict, NotFound
from sora2.domain.videos.video import Video

log = logging.getLogger("sora2.videos")


@dataclass(frozen=True)
class Shared:
    token: str
    video: VideoRow


class Videos:
    def __init__(
        self,
        log: EventLog,
        views: ReadModelView,
        follower: Follower,
        storage: BlobStorage,
        clock: Clock,
        credits_per_second: int,
        share_secret: bytes,
    ) -> None:
        self.log = log
        self.views = views
        self.follower = follower
        self.storage = storage
        self.clock = clock
        self.credits_per_second = credits_per_second
        self.share_secret = share_secret
        self.on_requested: Callable[[UUID], None] = lambda video_id: None
        self.on_cancelled: Callable[[UUID], None] = lambda video_id: None

    # --- the user's commands -------------------------------------------------------------

    def request(
        self,
        user_id: UUID,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        regenerated_from: UUID | None = None,
    ) -> VideoRow:
        """Create the video and reserve its cost together; InsufficientCredits → neither."""
        video_id = uuid4()

        def decide() -> int | None:
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
            return self.log.commit(video, ledger)

        self.follower.wait_for(retry_on_conflict(decide))
        self.on_requested(video_id)
        return self.get(user_id, video_id)

    def regenerate(self, user_id: UUID, video_id: UUID) -> VideoRow:
        """A new video with the same prompt and settings, charged again."""
        original = self.get(user_id, video_id)
        return self.request(
            user_id,
            original.prompt,
            original.duration,
            original.aspect_ratio,
            regenerated_from=original.id,
        )

    def cancel(self, user_id: UUID, video_id: UUID) -> VideoRow:
        self._own(user_id, video_id)
        self.follower.wait_for(retry_on_conflict(lambda: self._end(video_id, None)))
        self.on_cancelled(video_id)
        return self.get(user_id, video_id)

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
        self.on_cancelled(video_id)
        self.follower.wait_for(position)
        for key in (video.video_key, video.thumbnail_key):
            if key:
                _remove_quietly(self.storage, key)

    def share(self, user_id: UUID, video_id: UUID) -> Shared:
        """A public link token; the same one until it is revoked."""
        self._own(user_id, video_id)

        def decide() -> tuple[int | None, str]:
            video = self.log.load(Video, video_id, "video")
            token = self._share_token(video)
            video.share(_digest(token), self.clock.now())
            return self.log.commit(video), token

        position, token = retry_on_conflict(decide)
        self.follower.wait_for(position)
        return Shared(token, self.get(user_id, video_id))

    def revoke_share(self, user_id: UUID, video_id: UUID) -> None:
        self._own(user_id, video_id)

        def decide() -> int | None:
            video = self.log.load(Video, video_id, "video")
            video.revoke_share(self.clock.now())
            return self.log.commit(video)

        self.follower.wait_for(retry_on_conflict(decide))

    # --- queries -------------------------------------------------------------------------

    def list(self, user_id: UUID, status: str | None, page: int, limit: int) -> Page[VideoRow]:
        return self.views.videos(user_id, status, page, limit)

    def get(self, user_id: UUID, video_id: UUID) -> VideoRow:
        row = self.views.video(video_id)
        if row is None or row.user_id != user_id:  # another user's video does not exist for you
            raise NotFound("video not found")
        return row

    def shared(self, token: str) -> VideoRow:
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

        PENDING is started. PROCESSING is taken over only from ourselves (a restart), from a
        runner known to be gone, or from one silent for longer than the lease. Two runners
        claiming at once write to the same version: the loser re-reads and leaves it.
        """

        def decide() -> Video | None:
            video = self.log.find(Video, video_id)
            if video is None or video.is_final or video.deleted:
                return None
            now = self.clock.now()
            if video.status == "PENDING":
                video.start(now, worker)
            elif (
                video.worker == worker
                or runner_is_gone(video.worker)
                or video.is_abandoned(now, lease)
            ):
                video.resume(worker, now)
            else:
                return None  # its runner is alive
            self.follower.wait_for(self.log.commit(video))
            return video

        return retry_on_conflict(decide)

    def heartbeat(self, video_id: UUID, worker: str = "") -> bool:
        """Tell other runners this job is alive; False once it is no longer PROCESSING or
        another runner took it over (this one must stop)."""
        video = self.log.find(Video, video_id)
        if video is None or (worker and video.worker != worker):
            return False
        return self.report_progress(video_id, video.progress, video.seconds_remaining)

    def report_progress(self, video_id: UUID, progress: int, seconds_remaining: int | None) -> bool:
        """Record progress; False once the video is no longer PROCESSING (stop rendering)."""

        def decide() -> bool:
            video = self.log.find(Video, video_id)
            if video is None or video.status != "PROCESSING":
                return False
            video.report_progress(progress, seconds_remaining, self.clock.now())
            self.follower.wait_for(self.log.commit(video))
            return True

        return retry_on_conflict(decide)

    def is_active(self, video_id: UUID) -> bool:
        video = self.log.find(Video, video_id)
        return video is not None and not video.is_final

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
            self.follower.wait_for(self.log.commit(fresh, ledger))
            return True

        if retry_on_conflict(decide):
            return True
        current = self.log.load(Video, video_id, "video")
        if current.status == "COMPLETED" and not current.deleted and current.video_key == video_key:
            return False  # the winner's files, same keys: keep them
        self.storage.delete(video_key)
        self.storage.delete(thumbnail_key)
        return False

    def fail_job(self, video_id: UUID, error: str) -> bool:
        """FAILED and refunded, atomically; False if the video had already ended."""

        def decide() -> int | None | bool:
            video = self.log.find(Video, video_id)
            if video is None or video.is_final:
                return False
            return self._end(video_id, error)

        result = retry_on_conflict(decide)
        if result is False:
            return False
        self.follower.wait_for(result)  # type: ignore[arg-type]
        return True

    # --- helpers ---------------------------------------------------------------------------

    def _end(self, video_id: UUID, error: str | None) -> int | None:
        """Cancel (error None) or fail the video and refund its credits in one write."""
        video = self.log.load(Video, video_id, "video")
        now = self.clock.now()
        if error is None:
            video.cancel(now)
        else:
            video.fail(error, now)
        return self.log.commit(video, self._refund(video, now))

    def _refund(self, video: Video, now: object) -> CreditLedger:
        ledger = self.log.load(CreditLedger, CreditLedger.create_id(video.user_id), "ledger")
        ledger.refund(video.id, now)  # type: ignore[arg-type]
        return ledger

    def _own(self, user_id: UUID, video_id: UUID) -> None:
        video = self.log.find(Video, video_id)
        if video is None or video.user_id != user_id or video.deleted:
            raise NotFound("video not found")

    def _share_token(self, video: Video) -> str:
        message = f"{video.id}:{video.share_generation}".encode()
        return hmac.new(self.share_secret, message, hashlib.sha256).hexdigest()[:40]


def _remove_quietly(storage: BlobStorage, key: str) -> None:
    """The video is already gone from the log; a file left behind is only logged."""
    try:
        storage.delete(key)
    except Exception:
        log.exception("could not remove %s from storage", key)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
