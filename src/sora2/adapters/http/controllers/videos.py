"""/api/videos: generate (plain and SSE), list, detail, status, cancel, delete, regenerate,
download, thumbnail and share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Literal
from uuid import UUID

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY
from sora2.adapters.http.controllers.credits import PageNumber, PageSize
from sora2.adapters.http.errors import documented
from sora2.adapters.http.schemas import IdempotencyKey
from sora2.adapters.http.streaming import serve_blob
from sora2.application.projections.rows import UserRow
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotFound

VideoState = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]
FINAL = ("COMPLETED", "FAILED", "CANCELLED")
POLL_SECONDS = 0.2


class VideosController(Controller):
    path = "/api/videos"
    tags = ["Videos"]
    security = BEARER_SECURITY

    @post(
        "/generate",
        status_code=201,
        sync_to_thread=True,
        responses=documented(400, 401, 402, 429),
        summary="Request a video (PENDING); its cost is reserved from the balance at once",
        description="Cost = duration × VIDEO_CREDITS_PER_SECOND. Not enough credits → 402 "
        "and no video. A failed or cancelled video is refunded.",
    )
    def generate(
        self,
        data: JSONBody[schemas.GenerateRequest],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Video:
        row = sora2.videos.request(user.id, data.prompt, data.duration, data.aspect_ratio)
        return presenters.video(row, sora2.settings.public_url)

    @post(
        "/generate-stream",
        status_code=200,
        responses=documented(400, 401, 402, 429),
        summary="Request a video and follow it: a `text/event-stream` of `status` events",
        description="Each event's data is the status JSON; the stream ends after the final "
        "state (COMPLETED, FAILED or CANCELLED). Disconnecting does not cancel the job.",
    )
    async def generate_stream(
        self,
        data: JSONBody[schemas.GenerateRequest],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> ServerSentEvent:
        row = await anyio.to_thread.run_sync(
            sora2.videos.request, user.id, data.prompt, data.duration, data.aspect_ratio
        )
        return ServerSentEvent(_status_events(sora2, user.id, row.id))

    @get(
        "/",
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="The user's videos, newest first",
    )
    def list_videos(
        self,
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        page: PageNumber = 1,
        limit: PageSize = 20,
        status: Annotated[VideoState | None, QueryParameter()] = None,
    ) -> schemas.VideoPage:
        result = sora2.videos.list(user.id, status, page, limit)
        base = sora2.settings.public_url
        return schemas.VideoPage(
            [presenters.video(r, base) for r in result.items], **presenters.page_fields(result)
        )

    @get(
        "/{video_id:uuid}",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="One of the user's videos",
    )
    def get_video(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.Video:
        return presenters.video(sora2.videos.get(user.id, video_id), sora2.settings.public_url)

    @get(
        "/{video_id:uuid}/status",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="Status, progress (0-100) and estimated seconds remaining",
    )
    def status(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.VideoStatus:
        return presenters.video_status(sora2.videos.get(user.id, video_id))

    @delete(
        "/{video_id:uuid}",
        status_code=204,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="Delete the video and its files; a running job is cancelled (and refunded)",
    )
    def delete_video(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> None:
        sora2.videos.delete(user.id, video_id)

    @post(
        "/{video_id:uuid}/regenerate",
        status_code=201,
        sync_to_thread=True,
        responses=documented(400, 401, 402, 404, 429),
        summary="A new video with the same prompt and settings (charged again)",
    )
    def regenerate(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Video:
        row = sora2.videos.regenerate(user.id, video_id)
        return presenters.video(row, sora2.settings.public_url)

    @post(
        "/{video_id:uuid}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        summary="Cancel a PENDING or PROCESSING video; its credits are refunded",
    )
    def cancel(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.Video:
        return presenters.video(sora2.videos.cancel(user.id, video_id), sora2.settings.public_url)

    @get(
        "/{video_id:uuid}/download",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        media_type="video/mp4",
        summary="The MP4 (Range requests supported) or a redirect to a short-lived signed URL",
    )
    def download(
        self,
        request: Request,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> Response:
        return _serve_file(request, sora2, user, video_id, "video")

    @get(
        "/{video_id:uuid}/thumbnail",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        media_type="image/jpeg",
        summary="The JPEG thumbnail of a completed video",
    )
    def thumbnail(
        self,
        request: Request,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> Response:
        return _serve_file(request, sora2, user, video_id, "thumbnail")

    @post(
        "/{video_id:uuid}/share",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        summary="A public link that plays the video without signing in, until revoked",
    )
    def share(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> schemas.Share:
        shared = sora2.videos.share(user.id, video_id)
        return schemas.Share(f"{sora2.settings.public_url}/api/share/{shared.token}", shared.token)

    @delete(
        "/{video_id:uuid}/share",
        status_code=204,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="Revoke the public link",
    )
    def revoke_share(
        self,
        video_id: FromPath[UUID],
        user: NamedDependency[UserRow],
        sora2: NamedDependency[Sora2],
    ) -> None:
        sora2.videos.revoke_share(user.id, video_id)


def _serve_file(
    request: Request, sora2: Sora2, user: UserRow, video_id: UUID, which: str
) -> Response:
    """The user's completed video file: the MP4 as a download, or its JPEG thumbnail."""
    row = sora2.videos.get(user.id, video_id)
    key = sora2.videos.completed_file(row, which)
    if which == "video":
        return serve_blob(request, sora2.storage, key, "video/mp4", f"sora2-{row.id}.mp4")
    return serve_blob(request, sora2.storage, key, "image/jpeg")


class LiveStreams:
    """How many status streams are open in this process (a client that left is off it)."""

    count = 0


async def _status_events(
    sora2: Sora2, user_id: UUID, video_id: UUID
) -> AsyncIterator[ServerSentEventMessage]:
    """One event per change of status or progress, ending with the final state."""
    LiveStreams.count += 1
    try:
        async for message in _changes(sora2, user_id, video_id):
            yield message
    finally:
        LiveStreams.count -= 1


async def _changes(
    sora2: Sora2, user_id: UUID, video_id: UUID
) -> AsyncIterator[ServerSentEventMessage]:
    last: bytes | None = None
    progress = 0
    while True:
        try:
            row = await anyio.to_thread.run_sync(sora2.videos.get, user_id, video_id)
        except NotFound:  # deleted while we watched: report it as cancelled and stop
            gone = schemas.VideoStatus(str(video_id), "CANCELLED", progress, None, "deleted")
            yield ServerSentEventMessage(msgspec.json.encode(gone).decode(), event="status")
            return
        progress = max(progress, row.progress)  # a follower never sees progress go back
        row = replace(row, progress=progress)
        payload = msgspec.json.encode(presenters.video_status(row))
        if payload != last:
            last = payload
            yield ServerSentEventMessage(payload.decode(), event="status")
        if row.status in FINAL:
            return
        await asyncio.sleep(POLL_SECONDS)
