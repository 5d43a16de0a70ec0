"""A fake video provider speaking OpenAI's Videos API (`/v1/videos`) over real HTTP.

ProviderVideoGenerator is tested against this instead of mocks so that headers, status
codes, JSON bodies, streaming downloads and timeouts all go through a real socket.
The fake is scriptable through plain attributes and by magic words in the prompt:

* a normal prompt: queued at create, in_progress with rising progress on each poll,
  completed after `polls_to_complete` polls (None: never completes);
* "MODERATE" in the prompt: HTTP 400 `moderation_blocked` at create;
* "UNSAFE_OUTPUT": the job ends `failed` with a `moderation_blocked` error;
* "FAIL": the job ends `failed` with a generic error;
* `fail_next(n, status)`: the next n requests, whatever they are, answer 500/429/...;
* `thumbnail`: "jpeg", "webp" or None (404, so the client must make its own);
* a wrong `Authorization` header gets 401 (echoing the key it was given, as some
  providers do, so tests can prove the client never repeats it).

Every request is recorded (method, path, headers, body) in `requests`.
Use `running_fake_provider()` as a context manager, or the `fake_provider` fixture.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.fake_http import serving

DEFAULT_API_KEY = "sk-fake-provider-key-0123456789"
SIZES = {"1280x720", "720x1280", "720x720", "1024x1792", "1792x1024"}
FILL_RGB = (40, 110, 200)  # the colour of every fake frame, so tests can check pixels


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with query string
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeJob:
    id: str
    prompt: str
    model: str
    size: str
    seconds: str
    created_at: int
    polls: int = 0
    deleted: bool = False

    @property
    def dimensions(self) -> tuple[int, int]:
        width, height = self.size.split("x")
        return int(width), int(height)


@dataclass
class FakeVideoProvider:
    """State and knobs of the fake; the HTTP handler below reads and mutates it."""

    api_key: str = DEFAULT_API_KEY
    polls_to_complete: int | None = 3
    thumbnail: str | None = "jpeg"
    retry_after: str | None = "0"  # Retry-After sent with 429s
    response_delay: float = 0.0  # seconds to stall every response (for timeout tests)
    failure_message: str = "The renderer ran out of memory."  # error of "FAIL" jobs
    requests: list[RecordedRequest] = field(default_factory=list)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    base_url: str = ""
    _fail_remaining: int = 0
    _fail_status: int = 500
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (500, 429, 503, ...)."""
        with self._lock:
            self._fail_remaining = count
            self._fail_status = status

    def requests_to(self, method: str, path_prefix: str = "/v1/videos") -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    # --- request handling (called from server threads) ------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return self._injected_failure()
            given = headers.get("authorization", "")
            if given != f"Bearer {self.api_key}":
                shown = given.removeprefix("Bearer ")
                return _error(401, f"Incorrect API key provided: {shown}.", "invalid_api_key")
            return self._route(method, path, headers, body)

    def _injected_failure(self) -> tuple[int, dict[str, str], bytes]:
        status = self._fail_status
        status, headers, body = _error(status, "The server had an error.", None, "server_error")
        if status == 429 and self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        return status, headers, body

    def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:2] != ["v1", "videos"]:
            return _error(404, f"Unknown path {url.path}", "not_found")
        if len(parts) == 2 and method == "POST":
            return self._create(headers, body)
        job = self.jobs.get(parts[2]) if len(parts) > 2 else None
        if job is None or job.deleted:
            return _error(404, "Video not found.", "video_not_found")
        if len(parts) == 3 and method == "GET":
            job.polls += 1
            return _json(200, self._video_object(job))
        if len(parts) == 3 and method == "DELETE":
            job.deleted = True
            return _json(200, {"id": job.id, "object": "video.deleted", "deleted": True})
        if len(parts) == 4 and parts[3] == "content" and method == "GET":
            variant = parse_qs(url.query).get("variant", ["video"])[0]
            return self._content(job, variant)
        return _error(405, f"{method} not allowed on {url.path}", "method_not_allowed")

    def _create(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            fields = _form_fields(headers.get("content-type", ""), body)
        except ValueError:
            return _error(400, "Could not parse the request body.", "invalid_body")
        prompt, size, seconds = fields.get("prompt"), fields.get("size"), fields.get("seconds")
        if not fields.get("model") or not prompt:
            return _error(400, "Missing required parameter: 'model' or 'prompt'.", "missing")
        if size not in SIZES:
            return _error(400, f"Invalid size {size!r}.", "invalid_value")
        if not str(seconds).isdigit():
            return _error(400, f"Invalid seconds {seconds!r}.", "invalid_value")
        if "MODERATE" in prompt:
            return _error(
                400,
                "Your request was blocked by our moderation system.",
                "moderation_blocked",
            )
        job = FakeJob(
            id=f"video_{uuid.uuid4().hex}",
            prompt=prompt,
            model=fields["model"],
            size=size,
            seconds=str(seconds),
            created_at=int(time.time()),
        )
        self.jobs[job.id] = job
        return _json(200, self._video_object(job))

    def _video_object(self, job: FakeJob) -> dict[str, Any]:
        status, progress, error = self._state(job)
        return {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": status,
            "progress": progress,
            "created_at": job.created_at,
            "completed_at": int(time.time()) if status == "completed" else None,
            "expires_at": None,
            "prompt": job.prompt,
            "size": job.size,
            "seconds": job.seconds,
            "remixed_from_video_id": None,
            "error": error,
        }

    def _state(self, job: FakeJob) -> tuple[str, int, dict[str, str] | None]:
        if job.polls == 0:
            return "queued", 0, None
        target = self.polls_to_complete
        if target is None or job.polls < target:
            steps = target or 20
            return "in_progress", min(95, 100 * job.polls // steps), None
        if "UNSAFE_OUTPUT" in job.prompt:
            error = {"code": "moderation_blocked", "message": "Output flagged by moderation."}
            return "failed", 100, error
        if "FAIL" in job.prompt:
            error = {"code": "generation_failed", "message": self.failure_message}
            return "failed", 100, error
        return "completed", 100, None

    def _content(self, job: FakeJob, variant: str) -> tuple[int, dict[str, str], bytes]:
        status, _, _ = self._state(job)
        if status != "completed":
            return _error(404, "Video is not ready.", "video_not_ready")
        width, height = job.dimensions
        if variant == "video":
            return 200, {"Content-Type": "video/mp4"}, fake_mp4(width, height)
        if variant == "thumbnail" and self.thumbnail is not None:
            kind = self.thumbnail
            return 200, {"Content-Type": f"image/{kind}"}, fake_image(width, height, kind)
        return _error(404, f"No {variant} for this video.", "not_found")


# --- media -------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def fake_mp4(width: int, height: int) -> bytes:
    """One second of solid frames, H.264 yuv420p in MP4; made once per size."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        pixels = np.full((height, width, 3), FILL_RGB, dtype=np.uint8)
        for _ in range(12):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@lru_cache(maxsize=8)
def fake_image(width: int, height: int, kind: str = "jpeg") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), FILL_RGB).save(buffer, format=kind.upper())
    return buffer.getvalue()


# --- HTTP glue ---------------------------------------------------------------------------


def _json(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _error(
    status: int, message: str, code: str | None, kind: str = "invalid_request_error"
) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"message": message, "type": kind, "code": code}})


def _form_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """The create parameters, whether sent as JSON or multipart/form-data."""
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        return {
            part.get_param("name", header="content-disposition"): part.get_content()
            for part in message.iter_parts()
        }
    data = json.loads(body or b"null")
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def running_fake_provider(**knobs: Any) -> AbstractContextManager[FakeVideoProvider]:
    """Serve a FakeVideoProvider on 127.0.0.1 (a free port) for the `with` block."""
    return serving(FakeVideoProvider(**knobs), "fake-video-provider")


@pytest.fixture
def fake_provider() -> Iterator[FakeVideoProvider]:
    """A running fake; register with `pytest_plugins = ["tests.support.fake_video_provider"]`."""
    with running_fake_provider() as provider:
        yield provider
