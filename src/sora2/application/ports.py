"""The ports: what the application needs from the outside world, as Protocols.

Adapters in `sora2.adapters` implement these; `sora2.bootstrap` picks which.
Services receive them in `__init__` and never import an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from uuid import UUID


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""


# --- blob storage -----------------------------------------------------------------------


class BlobNotFound(Exception):
    """The key names no stored object."""


@dataclass(frozen=True)
class BlobInfo:
    size: int  # bytes
    etag: str  # a quoted HTTP entity tag; another one whenever the bytes change


class BlobStorage(Protocol):
    """Where video files, thumbnails and avatars live (local folder or S3)."""

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` under `key`, replacing any object there."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any object there."""

    def size(self, key: str) -> int:
        """Bytes stored under `key`; BlobNotFound if none."""

    def stat(self, key: str) -> BlobInfo:
        """Size and entity tag of the object under `key`; BlobNotFound if none."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Chunks of the object from byte `start` to `end` inclusive (None: to the end)."""

    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""

    def signed_url(self, key: str, expires: timedelta) -> str | None:
        """A short-lived public URL for the object, or None when we serve the bytes ourselves."""


# --- video generation -------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    video_id: UUID
    prompt: str
    duration: int  # seconds: 5, 10, 15 or 20
    aspect_ratio: str  # "16:9", "9:16" or "1:1"


@dataclass(frozen=True)
class GeneratedVideo:
    video_path: Path  # an H.264 MP4
    thumbnail_path: Path  # a JPEG


class GenerationFailed(Exception):
    """The generator could not make the video; the message is safe to show the user, the
    code (one of `domain.videos.video.FAILURE_CODES`) tells programs why."""

    def __init__(self, message: str = "", code: str = "provider_error") -> None:
        super().__init__(message)
        self.code = code


class GenerationCancelled(Exception):
    """The generator stopped because `cancelled()` became true."""


# progress in percent (0-100) and, when known, seconds remaining
ProgressCallback = Callable[[int, float | None], None]


class VideoGenerator(Protocol):
    """Turns a prompt into an MP4 and a thumbnail; blocking, run in a worker thread."""

    def generate(
        self,
        request: GenerationRequest,
        workdir: Path,
        on_progress: ProgressCallback,
        cancelled: Callable[[], bool],
    ) -> GeneratedVideo:
        """Write the files under `workdir`; report progress as it goes; stop promptly
        (raising GenerationCancelled) once `cancelled()` is true; raise GenerationFailed
        on any failure the user should hear about."""


# --- security ---------------------------------------------------------------------------


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, password_hash: str, password: str) -> bool: ...


# --- attempt counters (failed sign-ins, reset mails): shared by every process -----------


class AttemptCounter(Protocol):
    """Attempts per key in fixed windows."""

    def count(self, key: str, window: timedelta, now: datetime) -> tuple[int, datetime]:
        """Attempts in the key's current window, and when that window ends."""

    def add(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one attempt; the attempts in the window so far, this one included."""

    def clear(self, key: str) -> None:
        """Forget the key's attempts."""


# --- mail ---------------------------------------------------------------------------------


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


# --- payments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentInstructions:
    """What the client does next: nothing (paid at once), follow `redirect_url`, or show
    `qr_code` (Alipay's QR link, WeChat's `weixin://` code_url) to scan before `expires_at`."""

    provider: str
    paid: bool
    redirect_url: str | None = None
    provider_reference: str | None = None
    qr_code: str | None = None
    expires_at: datetime | None = None


class PaymentProvider(Protocol):
    def start_payment(
        self,
        order_id: UUID,
        amount: str,
        credits: int,
        method: str,
        expires_at: datetime | None = None,
    ) -> PaymentInstructions:
        """Ask the provider to take `amount` for the order; a provider that can should stop
        taking it at `expires_at` (the order's deadline), and say so in the answer."""

    def refund(self, order_id: UUID, amount: str, provider_reference: str | None) -> None:
        """Give the order's whole payment (`amount`) back to the payer; `provider_reference`
        names the payment as its notify did (None: find it by the order). Idempotent: a
        payment already refunded is not refunded twice. Raises Unavailable when the
        provider cannot do it now (nothing was refunded, try later)."""

    def query(self, order_id: UUID, amount: str) -> str | None:
        """Ask the provider whether the order was paid (its notify may never have come):
        the payment's reference if it was paid `amount` in full, else None. Raises
        Unavailable when the provider cannot be asked now."""


# --- video jobs: leases, heartbeats and progress (ephemeral: not in the log) -------------


@dataclass(frozen=True)
class JobState:
    """A running job as its runner last reported it."""

    video_id: UUID
    worker: str
    progress: int  # percent, 0-99 while running
    seconds_remaining: int | None  # the generator's own estimate, if it gives one
    heartbeat_at: datetime


class JobBoard(Protocol):
    """Who renders which video, how far it got, and how fast renders go.

    The log records that a video started; this board holds what changes every second and
    matters to nobody once the video is final.
    """

    def claim(
        self,
        video_id: UUID,
        worker: str,
        now: datetime,
        lease: timedelta,
        runner_is_gone: Callable[[str], bool],
    ) -> bool:
        """Take the job for `worker`: free, ours already, or its runner gone or silent for
        longer than the lease. Two runners claiming at once: one wins."""

    def beat(
        self,
        video_id: UUID,
        worker: str,
        now: datetime,
        progress: int | None = None,
        seconds_remaining: int | None = None,
    ) -> bool:
        """A sign of life (and progress); False once the job is no longer `worker`'s."""

    def release(self, video_id: UUID) -> None:
        """The video is final (or gone): forget its job."""

    def states(self, video_ids: list[UUID]) -> dict[UUID, JobState]:
        """The jobs of these videos that are running."""

    def record_rate(self, seconds_per_video_second: float) -> None:
        """A render finished: how long it took per second of video."""

    def render_rate(self) -> float | None:
        """Seconds of rendering per second of video, averaged over recent renders."""
