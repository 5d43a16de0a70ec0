"""VideoGenerator backed by an external provider speaking OpenAI's Videos API (`/v1/videos`).

The provider renders asynchronously: we create a job, poll it until it is `completed` or
`failed`, then download the MP4 and its thumbnail. Everything here is blocking because the
port runs in a worker thread. Three promises shape the code:

* cancel is prompt — waits are sliced and `cancelled()` is checked between slices, and a
  job we abandon (cancel, timeout, error) is best-effort DELETEd so it stops costing money;
* every failure the user can see is a GenerationFailed with a user-safe message — never a
  raw provider payload, and never anything containing the API key;
* transient trouble (429, 5xx, network) is retried with backoff before we give up.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sora2.application.ports import (
    GeneratedVideo,
    GenerationCancelled,
    GenerationFailed,
    GenerationRequest,
    ProgressCallback,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SIZES = {"16:9": "1280x720", "9:16": "720x1280", "1:1": "720x720"}

POLICY_MESSAGE = "The prompt was rejected by the provider's content policy."
UNAVAILABLE_MESSAGE = "The video provider is unavailable right now; please try again later."
TIMEOUT_MESSAGE = "The video provider took too long to generate the video."
CREDENTIALS_MESSAGE = "The video provider is not configured correctly; please try again later."
GENERIC_MESSAGE = "The video provider could not generate this video."

_POLICY_MARKERS = ("moderation", "policy", "safety", "content_filter")
_RETRYABLE_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
_WAIT_SLICE = 0.05  # seconds between cancel checks while sleeping
_CHUNK = 1 << 16
_MAX_MESSAGE = 240
_SECRETISH = re.compile(r"\bsk-[A-Za-z0-9_*.\-]{4,}")  # OpenAI-style keys, even masked


class _Transient(Exception):
    """A failure worth retrying: 429, 5xx or a network error."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _DeadlineExceeded(Exception):
    """The overall `timeout` ran out."""


@dataclass
class _Run:
    """Per-call state threaded through the helpers: when to stop and how to notice cancel."""

    cancelled: Callable[[], bool]
    deadline: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancelled():
            raise GenerationCancelled()
        if self.remaining() <= 0:
            raise _DeadlineExceeded()

    def sleep(self, seconds: float) -> None:
        """Sleep in small slices so a cancel or the deadline interrupts us promptly."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(_WAIT_SLICE, left, max(self.remaining(), 0.001)))


class ProviderVideoGenerator:
    """Generates videos through a remote `/v1/videos` provider (OpenAI Sora or compatible).

    `client` lets tests or the app share a configured httpx.Client; when omitted we make
    (and own) one. `max_retries` / `retry_backoff` tune the transient-error policy.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str = "sora-2",
        poll_interval: float = 2.0,
        timeout: float = 600.0,
        client: httpx.Client | None = None,
        *,
        max_retries: int = 4,
        retry_backoff: float = 1.0,
        request_timeout: float = 30.0,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/v1"):  # accept both "https://host" and "https://host/v1"
            base = base[: -len("/v1")]
        self._videos_url = f"{base}/v1/videos"
        self._api_key = api_key
        self._model = model
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._max_retries = max_retries
        self._retry_backoff = retry_backoff
        self._request_timeout = request_timeout
        self._owns_client = client is None
        self._client = client or httpx.Client(follow_redirects=True)

    def __repr__(self) -> str:  # never show the key, e.g. in tracebacks with locals
        return f"ProviderVideoGenerator(url={self._videos_url!r}, model={self._model!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- the port -----------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        workdir: Path,
        on_progress: ProgressCallback,
        cancelled: Callable[[], bool],
    ) -> GeneratedVideo:
        size = SIZES.get(request.aspect_ratio)
        if size is None:
            raise GenerationFailed(f"Unsupported aspect ratio {request.aspect_ratio!r}.")
        run = _Run(cancelled, time.monotonic() + self._timeout)
        try:
            run.check()
            job = self._create(request, size, run)
        except _DeadlineExceeded:
            raise GenerationFailed(TIMEOUT_MESSAGE, "timeout") from None
        remote_id = job["id"]
        log.info("provider job %s created for video %s", remote_id, request.video_id)
        video_path = workdir / f"{request.video_id}.mp4"
        thumbnail_path = workdir / f"{request.video_id}.jpg"
        try:
            self._wait_until_completed(job, on_progress, run)
            workdir.mkdir(parents=True, exist_ok=True)
            self._download(remote_id, None, video_path, run)
            _check_playable(video_path)
            self._fetch_thumbnail(remote_id, video_path, thumbnail_path, run)
        except BaseException as exc:
            # an abandoned job still costs money and a half-done result must not linger
            self._delete_quietly(remote_id)
            video_path.unlink(missing_ok=True)
            thumbnail_path.unlink(missing_ok=True)
            if isinstance(exc, _DeadlineExceeded):
                raise GenerationFailed(TIMEOUT_MESSAGE, "timeout") from None
            raise
        on_progress(100, 0.0)
        return GeneratedVideo(video_path=video_path, thumbnail_path=thumbnail_path)

    # --- steps --------------------------------------------------------------------------

    def _create(self, request: GenerationRequest, size: str, run: _Run) -> dict[str, Any]:
        body = {
            "model": self._model,
            "prompt": request.prompt,
            "seconds": str(request.duration),
            "size": size,
        }
        # one key per generate() call: a retried POST must not start a second paid job
        headers = {"Idempotency-Key": f"sora2-{request.video_id}-{uuid.uuid4().hex[:12]}"}

        def attempt() -> dict[str, Any]:
            response = self._send("POST", self._videos_url, run, json=body, headers=headers)
            return _video_object(response)

        return self._with_retries(attempt, run)

    def _wait_until_completed(
        self, job: dict[str, Any], on_progress: ProgressCallback, run: _Run
    ) -> None:
        url = f"{self._videos_url}/{job['id']}"
        started = time.monotonic()
        reported = -1
        while True:
            status = job.get("status")
            if status == "completed":
                return
            if status == "failed" or status in ("cancelled", "canceled", "expired"):
                raise _failure(job.get("error"), self._api_key)
            # queued / in_progress / anything new: report and keep polling
            progress = _clamp_progress(job.get("progress"))
            if progress > reported:
                reported = progress
                on_progress(progress, _estimate(started, progress))
            run.sleep(self._poll_interval)
            job = self._with_retries(lambda: _video_object(self._send("GET", url, run)), run)

    def _fetch_thumbnail(self, remote_id: str, video: Path, target: Path, run: _Run) -> None:
        """Use the provider's thumbnail when it has one; otherwise draw the first frame."""
        scratch = target.with_name(f".{target.name}.provider")
        try:
            try:
                found = self._download(remote_id, "thumbnail", scratch, run, missing_ok=True)
            except GenerationFailed as exc:  # the video is what matters; a frame will do
                log.warning("provider thumbnail for %s unavailable: %s", remote_id, exc)
                found = False
            if found and _save_as_jpeg(scratch, target):
                return
            _thumbnail_from_first_frame(video, target)
        finally:
            scratch.unlink(missing_ok=True)

    def _download(
        self,
        remote_id: str,
        variant: str | None,
        target: Path,
        run: _Run,
        *,
        missing_ok: bool = False,
    ) -> bool:
        """Stream `/content` to `target` atomically; False if absent and `missing_ok`."""
        url = f"{self._videos_url}/{remote_id}/content"
        params = {"variant": variant} if variant else None

        def attempt() -> bool:
            with self._stream("GET", url, run, params=params) as response:
                if response.status_code == 404 and missing_ok:
                    return False
                if response.status_code != 200:
                    response.read()
                    _raise_for_error(response, self._api_key)
                    raise GenerationFailed(GENERIC_MESSAGE)  # an odd 2xx/3xx: no file
                with _atomic_file(target) as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        out.write(chunk)
                        run.check()
                return True

        found = self._with_retries(attempt, run)
        if found and target.stat().st_size == 0:
            raise GenerationFailed("The video provider returned an empty file.")
        return found

    def _delete_quietly(self, remote_id: str) -> None:
        """Best effort: tell the provider to drop a job we no longer want."""
        try:
            response = self._client.delete(
                f"{self._videos_url}/{remote_id}", headers=self._auth(), timeout=5.0
            )
            log.info("provider job %s deleted (HTTP %s)", remote_id, response.status_code)
        except Exception as exc:  # never mask the error that made us give up
            log.warning("could not delete provider job %s: %s", remote_id, type(exc).__name__)

    # --- HTTP plumbing ------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def _timeout_for(self, run: _Run) -> httpx.Timeout:
        budget = max(0.5, min(self._request_timeout, run.remaining()))
        return httpx.Timeout(budget, connect=min(budget, 10.0))

    def _send(
        self,
        method: str,
        url: str,
        run: _Run,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.request(
                method,
                url,
                json=json,
                headers={**self._auth(), **(headers or {})},
                timeout=self._timeout_for(run),
                follow_redirects=True,
            )
        except httpx.TransportError as exc:
            raise _Transient(type(exc).__name__) from exc
        if response.status_code >= 400:
            _raise_for_error(response, self._api_key)
        return response

    @contextmanager
    def _stream(
        self, method: str, url: str, run: _Run, *, params: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        try:
            with self._client.stream(
                method,
                url,
                params=params,
                headers=self._auth(),
                timeout=self._timeout_for(run),
                follow_redirects=True,  # content may live behind a signed CDN URL
            ) as response:
                yield response
        except httpx.TransportError as exc:
            raise _Transient(type(exc).__name__) from exc

    def _with_retries(self, attempt: Callable[[], T], run: _Run) -> T:
        failures = 0
        while True:
            run.check()
            try:
                return attempt()
            except _Transient as exc:
                failures += 1
                if failures > self._max_retries:
                    log.warning("video provider still failing after %d tries: %s", failures, exc)
                    raise GenerationFailed(UNAVAILABLE_MESSAGE, "provider_unavailable") from exc
                delay = exc.retry_after
                if delay is None:
                    delay = self._retry_backoff * 2 ** (failures - 1) * random.uniform(0.5, 1.0)
                delay = min(delay, 60.0)
                log.info("video provider hiccup (%s); retry %d in %.2fs", exc, failures, delay)
                run.sleep(delay)


# --- response interpretation -------------------------------------------------------------


def _video_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        # a proxy's HTML page or a truncated body: treat like any other hiccup
        raise _Transient("malformed video object")
    return data


def _raise_for_error(response: httpx.Response, api_key: str) -> None:
    """Turn an HTTP error into _Transient (retry) or GenerationFailed (tell the user)."""
    status = response.status_code
    if status in _RETRYABLE_STATUSES or status >= 500:
        raise _Transient(f"HTTP {status}", _retry_after(response))
    error = _error_body(response)
    log.warning(
        "video provider refused request: HTTP %s code=%s type=%s",
        status,
        error.get("code"),
        error.get("type"),
    )
    if status in (401, 403) and not _is_policy(error):
        raise GenerationFailed(CREDENTIALS_MESSAGE)
    raise _failure(error, api_key)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date; not worth parsing, fall back to our backoff
        return None


def _is_policy(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    tags = f"{error.get('code') or ''} {error.get('type') or ''}".lower()
    return any(marker in tags for marker in _POLICY_MARKERS)


def _failure(error: Any, api_key: str) -> GenerationFailed:
    """The provider's refusal, typed: its content policy, or anything else it reported."""
    code = "moderation_blocked" if _is_policy(error) else "provider_error"
    return GenerationFailed(_failure_message(error, api_key), code)


def _failure_message(error: Any, api_key: str) -> str:
    if _is_policy(error):
        return POLICY_MESSAGE
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return GENERIC_MESSAGE
    return f"{GENERIC_MESSAGE} {_user_safe(message, api_key)}"


def _user_safe(message: str, api_key: str) -> str:
    """Collapse, scrub anything key-like and trim a provider message for display."""
    text = " ".join(message.split())
    if api_key:
        text = text.replace(api_key, "[redacted]")
    text = _SECRETISH.sub("[redacted]", text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1].rstrip() + "…"
    return text


def _clamp_progress(value: Any) -> int:
    """0-99 while the job runs: 100 is reserved for 'files are on disk'."""
    try:
        return max(0, min(99, int(float(value))))
    except (TypeError, ValueError):
        return 0


def _estimate(started: float, progress: int) -> float | None:
    if progress <= 0:
        return None
    elapsed = time.monotonic() - started
    return elapsed * (100 - progress) / progress


# --- files ---------------------------------------------------------------------------------


@contextmanager
def _atomic_file(target: Path) -> Iterator[Any]:
    """Write to a hidden temp file beside `target`, then rename, so readers never see half."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_playable(video: Path) -> None:
    import av  # heavy; imported only where needed

    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise GenerationFailed("The video provider returned a file without video.")
            codec = container.streams.video[0].codec_context.name
            if codec != "h264":
                log.warning("provider video %s uses codec %s, not h264", video.name, codec)
    except av.FFmpegError:
        raise GenerationFailed("The video provider returned an unreadable video.") from None


def _save_as_jpeg(source: Path, target: Path) -> bool:
    """Re-encode the provider's thumbnail (often WebP/PNG) as JPEG; False if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            image.load()
            if image.format == "JPEG":
                os.replace(source, target)
                return True
            with _atomic_file(target) as out:
                image.convert("RGB").save(out, format="JPEG", quality=88)
        return True
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        log.warning("provider thumbnail %s is not a readable image", source.name)
        return False


def _thumbnail_from_first_frame(video: Path, target: Path) -> None:
    import av

    try:
        with av.open(str(video)) as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
    except (av.FFmpegError, StopIteration):
        raise GenerationFailed("The video provider returned an unreadable video.") from None
    with _atomic_file(target) as out:
        image.convert("RGB").save(out, format="JPEG", quality=88)
