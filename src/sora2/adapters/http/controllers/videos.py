"""/api/videos: generate (plain and SSE), list, detail, status, cancel, delete, regenerate,
download, thumbnail and share."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any
from uuid import UUID

import anyio
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY, current_user
from sora2.adapters.http.controllers.credits import PageNumber, PageSize
from sora2.adapters.http.controllers.public import Expires, Signature
from sora2.adapters.http.errors import documented
from sora2.adapters.http.handler_thread import SignedIn
from sora2.adapters.http.live_progress import (
    EVENT_ID_PATTERN,
    STREAM_RESPONSES,
    LiveStreams,
    follow,
    parse_event_id,
)
from sora2.adapters.http.schemas import IdempotencyKey
from sora2.adapters.http.streaming import FILE_RESPONSES, IfNoneMatch, RangeHeader, serve_blob
from sora2.application.command_ids import keyed_id
from sora2.application.projections.rows import UserRow
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotFound

LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        pattern=EVENT_ID_PATTERN,
        description="Sent back by an EventSource when it reconnects (`<videoId>:<sequence>`): "
        "the stream resumes after that event; after the final one the answer is 204.",
    ),
]
STREAM_DESCRIPTION = (
    "Events are `event: status` with `id: <videoId>:<sequence>`; the stream opens with "
    "`retry:` and sends a `: heartbeat` comment when quiet (SSE_HEARTBEAT_SECONDS, at most 15 "
    "s). Each event's data is the status JSON (`VideoStatus`) until the final state "
    "(COMPLETED, FAILED or CANCELLED), whose data is the whole `Video` (with `videoUrl`); "
    "then the stream ends. A reconnect with `Last-Event-ID` resumes after that event; once "
    "the client has the final event it answers 204, so an EventSource stops. Disconnecting "
    "does not cancel the job."
)
__all__ = ["LiveStreams", "VideosController"]


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
    def create_video(
        self,
        data: JSONBody[schemas.GenerateRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Video:
        row = sora2.videos.request(
            user.id,
            data.prompt,
            data.duration.value,
            data.aspect_ratio.value,
            video_id=keyed_id(user.id, "videos/generate", idempotency_key),
        )
        return presenters.video(row, sora2.settings.public_url, sora2.links)

    @post(
        "/generate-stream",
        status_code=200,
        media_type="text/event-stream",
        responses={**documented(400, 401, 402, 404, 429), **STREAM_RESPONSES},
        summary="Request a video and follow it: a `text/event-stream` of `status` events",
        description=STREAM_DESCRIPTION
        + " A reconnect that carries `Last-Event-ID`, or the first request's Idempotency-Key, "
        "follows the video the first request made: it never creates or charges another.",
    )
    async def create_video_stream(
        self,
        data: JSONBody[schemas.GenerateRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
        last_event_id: LastEventId = None,
    ) -> Response:
        if last_event_id:  # an EventSource reconnecting: follow, never request again
            video_id, after = parse_event_id(last_event_id)
            row = await anyio.to_thread.run_sync(sora2.videos.get, user.id, video_id)
            return await follow(sora2, row, after)
        request = partial(
            sora2.videos.request,
            video_id=keyed_id(user.id, "videos/generate-stream", idempotency_key),
        )
        row = await anyio.to_thread.run_sync(
            request, user.id, data.prompt, data.duration.value, data.aspect_ratio.value
        )
        return await follow(sora2, row, None)

    @get(
        "/{video_id:uuid}/events",
        media_type="text/event-stream",
        security=[*BEARER_SECURITY, {}],
        responses={**documented(400, 401, 403, 404, 429), **STREAM_RESPONSES},
        summary="Follow a video's progress: a `text/event-stream` of `status` events",
        description=STREAM_DESCRIPTION
        + " Authenticate with Bearer, or without any header through the signed `eventsUrl` "
        "of the Video (`new EventSource(video.eventsUrl)`).",
    )
    async def follow_video_events(
        self,
        request: Request,
        video_id: FromPath[UUID],
        sora2: NamedDependency[Sora2],
        expires: Expires = None,
        signature: Signature = None,
        last_event_id: LastEventId = None,
    ) -> Response:
        after = None
        if last_event_id:
            named, after = parse_event_id(last_event_id)
            if named != video_id:
                raise NotFound("Last-Event-ID names another video")
        if request.headers.get("authorization") or (expires is None and signature is None):
            sign_in = current_user(request, sora2)  # else 401

            def own_video() -> Any:  # the check and the read: one thread hand-off
                return sora2.videos.get(sign_in.user().id, video_id)

            row = await anyio.to_thread.run_sync(own_video)
        else:
            sora2.links.check(presenters.events_path(video_id), expires, signature)
            row = await anyio.to_thread.run_sync(sora2.videos.linked, video_id)
        return await follow(sora2, row, after)

    @get(
        "/",
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="The user's videos, newest first",
    )
    def list_videos(
        self,
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        page: PageNumber = 1,
        limit: PageSize = 20,
        status: Annotated[schemas.VideoState | None, QueryParameter()] = None,
    ) -> schemas.VideoPage:
        result = sora2.videos.list(user.id, status and status.value, page, limit)
        base = sora2.settings.public_url
        return schemas.VideoPage(
            [presenters.video(r, base, sora2.links) for r in result.items],
            **presenters.page_fields(result),
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
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.Video:
        row = sora2.videos.get(user.id, video_id)
        return presenters.video(row, sora2.settings.public_url, sora2.links)

    @get(
        "/{video_id:uuid}/status",
        sync_to_thread=True,
        responses=documented(400, 401, 404, 429),
        summary="Status, progress (0-100) and estimated seconds remaining",
    )
    def get_video_status(
        self,
        video_id: FromPath[UUID],
        user: SignedIn,
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
        user: SignedIn,
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
    def regenerate_video(
        self,
        video_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        idempotency_key: IdempotencyKey = None,
    ) -> schemas.Video:
        new_id = keyed_id(user.id, f"videos/{video_id}/regenerate", idempotency_key)
        row = sora2.videos.regenerate(user.id, video_id, new_id)
        return presenters.video(row, sora2.settings.public_url, sora2.links)

    @post(
        "/{video_id:uuid}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        summary="Cancel a PENDING or PROCESSING video; its credits are refunded",
    )
    def cancel_video(
        self,
        video_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.Video:
        row = sora2.videos.cancel(user.id, video_id)
        return presenters.video(row, sora2.settings.public_url, sora2.links)

    @get(
        "/{video_id:uuid}/download",
        sync_to_thread=True,
        responses={**documented(400, 401, 404, 409, 429), **FILE_RESPONSES},
        media_type="video/mp4",
        summary="The MP4 (Range requests supported) or a redirect to a short-lived signed URL",
    )
    def download_video(
        self,
        request: Request,
        video_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        byte_range: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        return _serve_file(request, sora2, user, video_id, "video")

    @get(
        "/{video_id:uuid}/thumbnail",
        sync_to_thread=True,
        responses={**documented(400, 401, 404, 409, 429), **FILE_RESPONSES},
        media_type="image/jpeg",
        summary="The JPEG thumbnail of a completed video",
    )
    def get_video_thumbnail(
        self,
        request: Request,
        video_id: FromPath[UUID],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
        byte_range: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        return _serve_file(request, sora2, user, video_id, "thumbnail")

    @post(
        "/{video_id:uuid}/share",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 404, 409, 429),
        summary="A public link that plays the video without signing in, until revoked",
    )
    def share_video(
        self,
        video_id: FromPath[UUID],
        user: SignedIn,
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
    def revoke_video_share(
        self,
        video_id: FromPath[UUID],
        user: SignedIn,
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
