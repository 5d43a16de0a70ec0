"""A video's progress as Server-Sent Events that a browser's EventSource can rely on.

Every event has `id: <videoId>:<sequence>`. The sequence is a function of the state, not
of the connection (PENDING 0, PROCESSING 1 + progress, final 102), so any process can
resume a stream after the `Last-Event-ID` a client sends back: it sends only what is newer.
A stream opens with `retry:`, sends a comment when it has been quiet for the heartbeat, and
ends after the final event, which carries the whole Video. A reconnect after that final
event gets 204, which tells an EventSource to stop.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from uuid import UUID

import anyio
import msgspec
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sora2.adapters.http import presenters, schemas
from sora2.application.projections.rows import VideoRow
from sora2.bootstrap import Sora2
from sora2.domain.errors import InvalidInput, NotFound

FINAL = ("COMPLETED", "FAILED", "CANCELLED")
FINAL_SEQUENCE = 102
POLL_SECONDS = 0.2
EVENT_ID_PATTERN = r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}:\d{1,3}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)


STREAM_RESPONSES = {
    204: ResponseSpec(
        None, description="The client already has the final event (Last-Event-ID): stop"
    )
}


class LiveStreams:
    """How many status streams are open in this process (a client that left is off it)."""

    count = 0


def sequence(status: str, progress: int) -> int:
    if status in FINAL:
        return FINAL_SEQUENCE
    if status == "PROCESSING":
        return 1 + progress
    return 0


def parse_event_id(text: str) -> tuple[UUID, int]:
    """`<videoId>:<sequence>` → (video id, sequence); InvalidInput (400) if it is not one."""
    if not _EVENT_ID.match(text.strip()):
        raise InvalidInput("Last-Event-ID: must be an event id of this API, <videoId>:<sequence>")
    video, _, number = text.strip().partition(":")
    return UUID(video), min(int(number), FINAL_SEQUENCE)


async def follow(sora2: Sora2, row: VideoRow, after: int | None) -> Response:
    """The video's events after sequence `after` (None: from its current state), or 204
    when the client already has its final event."""
    if after is not None and after >= FINAL_SEQUENCE:
        return Response(None, status_code=204)
    return ServerSentEvent(_counted(sora2, row.user_id, row.id, after))


async def _counted(
    sora2: Sora2, user_id: UUID, video_id: UUID, after: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    LiveStreams.count += 1
    try:
        async for message in _events(sora2, user_id, video_id, after):
            yield message
    finally:
        LiveStreams.count -= 1


async def _events(
    sora2: Sora2, user_id: UUID, video_id: UUID, after: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    settings = sora2.settings
    sent = -1 if after is None else after
    # a follower never sees progress go back, across reconnects too
    progress = max(0, min(100, sent - 1))
    started = last_write = time.monotonic()
    yield ServerSentEventMessage(data=None, retry=settings.sse_retry_ms)
    while True:
        try:
            row = await anyio.to_thread.run_sync(sora2.videos.get, user_id, video_id)
        except NotFound:  # deleted while we watched: report it as cancelled and stop
            gone = schemas.VideoStatus(str(video_id), "CANCELLED", progress, None, "deleted")
            yield _message(video_id, FINAL_SEQUENCE, gone)
            return
        progress = max(progress, row.progress)
        row = replace(row, progress=progress)
        if (number := sequence(row.status, progress)) > sent:
            sent, last_write = number, time.monotonic()
            if row.status in FINAL:
                video = presenters.video(row, settings.public_url, sora2.links)
                yield _message(video_id, number, video)
                return
            yield _message(video_id, number, presenters.video_status(row))
        now = time.monotonic()
        if settings.sse_stream_max_seconds and now - started >= settings.sse_stream_max_seconds:
            return  # the client reconnects with Last-Event-ID and carries on from here
        if now - last_write >= settings.sse_heartbeat_seconds:
            last_write = now
            yield ServerSentEventMessage(data=None, comment="heartbeat")
        await asyncio.sleep(POLL_SECONDS)


def _message(
    video_id: UUID, number: int, body: schemas.VideoStatus | schemas.Video
) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        msgspec.json.encode(body).decode(), event="status", id=f"{video_id}:{number}"
    )
