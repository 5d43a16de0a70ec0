"""A video generation request and its life: PENDING → PROCESSING → COMPLETED | FAILED | CANCELLED.

The video knows its cost; the ledger holds the credits. The application saves a video and
its ledger together whenever money moves, so the two never disagree.
"""

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from sora2.domain.errors import Conflict, InvalidInput
from sora2.domain.flat_copy import FlatCopy
from sora2.domain.text import check_text, scrub_text

DURATIONS = (5, 10, 15, 20)
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
PROMPT_MAX_LENGTH = 2000
FINAL = ("COMPLETED", "FAILED", "CANCELLED")
# Why a video failed, for clients to act on (the error text is for people).
FAILURE_CODES = (
    "moderation_blocked",  # the provider's content policy refused the prompt or the output
    "provider_error",  # the provider could not make it
    "provider_unavailable",  # the provider did not answer, even after retries
    "timeout",  # the provider took longer than allowed
    "render_error",  # the local renderer could not make it
    "internal_error",  # a fault on our side
)


class Video(FlatCopy, Aggregate):
    error_code = None  # for snapshots taken before failure codes existed

    class Requested(Aggregate.Created):
        user_id: UUID
        prompt: str
        duration: int
        aspect_ratio: str
        cost: int
        regenerated_from: UUID | None

    class Started(Aggregate.Event):
        worker: str = ""  # which job runner took it first (the lease is on the job board)

    # Heartbeats and progress live on the job board now; these two stay so that logs
    # written before that still replay.
    class Resumed(Aggregate.Event):
        worker: str

    class ProgressReported(Aggregate.Event):
        progress: int
        seconds_remaining: int | None

    class Completed(Aggregate.Event):
        video_key: str
        thumbnail_key: str

    class Failed(Aggregate.Event):
        error: str
        code: str = ""  # FAILURE_CODES; "" in events written before codes existed

    class Cancelled(Aggregate.Event):
        admin_id: UUID | None = None  # an admin's cancel names them; the owner's does not

    class Shared(Aggregate.Event):
        token_hash: str

    class ShareRevoked(Aggregate.Event):
        pass

    class Deleted(Aggregate.Event):
        pass

    @event(Requested)
    def __init__(
        self,
        id: UUID,
        user_id: UUID,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        cost: int,
        regenerated_from: UUID | None,
        timestamp: datetime,
    ) -> None:
        self.user_id = user_id
        self.prompt = prompt
        self.duration = duration
        self.aspect_ratio = aspect_ratio
        self.cost = cost
        self.regenerated_from = regenerated_from
        self.status = "PENDING"
        self.progress = 0
        self.seconds_remaining: int | None = None
        self.video_key: str | None = None
        self.thumbnail_key: str | None = None
        self.error: str | None = None
        self.error_code: str | None = None
        self.share_token_hash: str | None = None
        self.share_generation = 0
        self.deleted = False
        self.worker = ""
        self.last_active = timestamp  # the job's last sign of life

    @classmethod
    def request(
        cls,
        video_id: UUID,
        user_id: UUID,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        credits_per_second: int,
        timestamp: datetime,
        regenerated_from: UUID | None = None,
    ) -> "Video":
        check_text(prompt, "prompt", multiline=True)
        if not prompt.strip() or len(prompt) > PROMPT_MAX_LENGTH:
            raise InvalidInput(f"prompt must be 1 to {PROMPT_MAX_LENGTH} characters")
        if duration not in DURATIONS:
            raise InvalidInput("duration must be 5, 10, 15 or 20 seconds")
        if aspect_ratio not in ASPECT_RATIOS:
            raise InvalidInput("aspectRatio must be 16:9, 9:16 or 1:1")
        return cls(
            id=video_id,
            user_id=user_id,
            prompt=prompt,
            duration=duration,
            aspect_ratio=aspect_ratio,
            cost=duration * credits_per_second,
            regenerated_from=regenerated_from,
            timestamp=timestamp,
        )

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def start(self, timestamp: datetime, worker: str = "") -> None:
        if self.status != "PENDING":
            raise Conflict(f"a {self.status} video cannot start")
        self._started(timestamp=timestamp, worker=worker)

    def complete(self, video_key: str, thumbnail_key: str, timestamp: datetime) -> None:
        if self.status != "PROCESSING":
            raise Conflict(f"a {self.status} video cannot complete")
        self._completed(video_key, thumbnail_key, timestamp)

    def fail(self, error: str, timestamp: datetime, code: str = "provider_error") -> None:
        if self.is_final:
            raise Conflict(f"a {self.status} video cannot fail")
        if code not in FAILURE_CODES:
            code = "provider_error"
        self._failed(scrub_text(error)[:500] or "generation failed", timestamp, code)

    def cancel(self, timestamp: datetime, admin_id: UUID | None = None) -> None:
        if self.status not in ("PENDING", "PROCESSING"):
            raise Conflict(f"a {self.status} video cannot be cancelled")
        self._cancelled(timestamp, admin_id)

    def share(self, token_hash: str, timestamp: datetime) -> None:
        if self.status != "COMPLETED":
            raise Conflict("only a completed video can be shared")
        if self.share_token_hash != token_hash:
            self._shared(token_hash, timestamp)

    def revoke_share(self, timestamp: datetime) -> None:
        if self.share_token_hash is not None:
            self._share_revoked(timestamp)

    def delete(self, timestamp: datetime) -> None:
        if not self.is_final:
            raise Conflict("cancel the video before deleting it")
        if not self.deleted:
            self._deleted(timestamp)

    @event(Started)
    def _started(self, timestamp: datetime, worker: str = "") -> None:  # "" in older events
        self.status = "PROCESSING"
        self.worker = worker
        self.last_active = timestamp

    @event(Resumed)
    def _resumed(self, worker: str, timestamp: datetime) -> None:
        self.worker = worker
        self.last_active = timestamp

    @event(ProgressReported)
    def _progress_reported(
        self, progress: int, seconds_remaining: int | None, timestamp: datetime
    ) -> None:
        self.progress = progress
        self.seconds_remaining = seconds_remaining
        self.last_active = timestamp

    @event(Completed)
    def _completed(self, video_key: str, thumbnail_key: str, timestamp: datetime) -> None:
        self.status = "COMPLETED"
        self.progress = 100
        self.seconds_remaining = 0
        self.video_key = video_key
        self.thumbnail_key = thumbnail_key

    @event(Failed)
    def _failed(self, error: str, timestamp: datetime, code: str = "") -> None:
        self.status = "FAILED"
        self.error = error
        self.error_code = code or None
        self.seconds_remaining = None

    @event(Cancelled)
    def _cancelled(self, timestamp: datetime, admin_id: UUID | None = None) -> None:
        self.status = "CANCELLED"
        self.seconds_remaining = None

    @event(Shared)
    def _shared(self, token_hash: str, timestamp: datetime) -> None:
        self.share_token_hash = token_hash

    @event(ShareRevoked)
    def _share_revoked(self, timestamp: datetime) -> None:
        self.share_token_hash = None
        self.share_generation += 1

    @event(Deleted)
    def _deleted(self, timestamp: datetime) -> None:
        self.deleted = True
        self.share_token_hash = None
