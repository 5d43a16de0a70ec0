"""Helpers for the video tests: polling a video's status, reading SSE, checking MP4s,
the ledger seen over HTTP, and topping up a balance."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from tests.support.errors import assert_error  # noqa: F401 (re-exported for video tests)

FINAL = ("COMPLETED", "FAILED", "CANCELLED")
STATUS_RANK = {"PENDING": 0, "PROCESSING": 1, "COMPLETED": 2, "FAILED": 2, "CANCELLED": 2}


def wait_for_status(
    client: httpx.Client,
    video_id: str,
    until: Iterable[str] | Callable[[dict[str, Any]], bool] = FINAL,
    timeout: float = 60.0,
    interval: float = 0.05,
    seen: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Poll GET /api/videos/{id}/status until `until` (statuses, or a predicate) holds."""
    if callable(until):
        check = until
    else:
        wanted = set(until)
        check = lambda body: body["status"] in wanted  # noqa: E731
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/videos/{video_id}/status")
        assert response.status_code == 200, response.text
        body = response.json()
        if seen is not None:
            seen.append(body)
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"video {video_id} still {body} after {timeout}s")
        time.sleep(interval)


def generate(client: httpx.Client, prompt: str = "a red fox", **fields: Any) -> dict[str, Any]:
    response = client.post("/api/videos/generate", json={"prompt": prompt, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def balance(client: httpx.Client) -> int:
    response = client.get("/api/credits/balance")
    assert response.status_code == 200, response.text
    return response.json()["balance"]


def transactions(client: httpx.Client) -> list[dict[str, Any]]:
    """Every credit entry of the user, oldest first."""
    response = client.get("/api/credits/transactions", params={"limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] <= 100, "more entries than one page"
    return list(reversed(body["items"]))


def entry_types(client: httpx.Client) -> list[tuple[str, int]]:
    return [(t["type"], t["amount"]) for t in transactions(client)]


def assert_ledger_consistent(client: httpx.Client) -> None:
    """The balance equals the sum of the entries, and each running balance adds up and is
    never negative."""
    entries = transactions(client)
    running = 0
    for entry in entries:
        running += entry["amount"]
        assert entry["balance"] == running >= 0, entries
    assert balance(client) == running


def recharge(api: Any, user: dict[str, Any], credits: int) -> None:
    """Top up through a paid order, as the payment callback would."""
    order = api.sora2.orders.create(UUID(user["id"]), credits, "STRIPE")
    assert api.sora2.orders.confirm_payment(order.id, f"ref-{order.id}")


@dataclass(frozen=True)
class Mp4Info:
    format_names: str
    codec: str
    width: int
    height: int
    duration: float  # seconds
    frames: int


def mp4_info(data: bytes) -> Mp4Info:
    """Open the bytes with PyAV (the library the renderer writes with) and decode them all."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return Mp4Info(
            format_names=container.format.name,
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=float(container.duration) / av.time_base,
            frames=frames,
        )


def jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.size


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str
    id: str | None = None  # the `id:` field of this event, if it had one

    def json(self) -> Any:
        return json.loads(self.data)


def sse_events(response: httpx.Response) -> Iterator[SseEvent]:
    """Parse a text/event-stream body as it arrives (comments and retry lines skipped)."""
    name: str | None = None
    event_id: str | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield SseEvent(name, "\n".join(data), event_id)
            name, event_id, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)
    if data:
        yield SseEvent(name, "\n".join(data), event_id)
