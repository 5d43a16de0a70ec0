"""Public, token-free routes: signed media links, shared videos and avatars."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from sora2.adapters.http.errors import documented
from sora2.adapters.http.presenters import MEDIA_PATH
from sora2.adapters.http.streaming import FILE_RESPONSES, IfNoneMatch, RangeHeader, serve_blob
from sora2.application.media import content_type_of
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotFound

# avatars are stored as `avatars/<user id>/<16 hex of the content's digest>.<extension>`
AVATAR_NAME = re.compile(r"[0-9a-f-]{36}/[0-9a-f]{16}\.(png|jpg|jpeg|webp)")

Expires = Annotated[
    int | None,
    QueryParameter(
        description="When the signed link stops working (Unix seconds); part of the signature",
        ge=0,
    ),
]
Signature = Annotated[
    str | None,
    QueryParameter(
        description="HMAC-SHA256 (hex) over the path and `expires`, made by the server",
        max_length=128,
    ),
]


class PublicController(Controller):
    path = "/api"
    tags = ["Public"]

    @get(
        "/media/{key:path}",
        sync_to_thread=True,
        # no route media type: it would win over the file's own (Litestar's Stream)
        responses={
            200: ResponseSpec(
                bytes,
                media_type="application/octet-stream",
                generate_examples=False,
                description="The file: video/mp4 or image/jpeg",
            ),
            **documented(400, 403, 404, 429),
            **FILE_RESPONSES,
        },
        summary="A video or thumbnail through the signed link in `videoUrl`/`thumbnailUrl`",
        description="No header needed, so `<video src>` and `<img src>` can use it. Range "
        "requests answer 206 with Content-Range; an ETag and If-None-Match answer 304. On S3 "
        "the link redirects (302) to a presigned URL of the bucket. An expired or altered "
        "link answers 403.",
    )
    def get_media(
        self,
        request: Request,
        key: FromPath[str],
        sora2: NamedDependency[Sora2],
        expires: Expires = None,
        signature: Signature = None,
        byte_range: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        key = key.lstrip("/")
        left = sora2.links.check(MEDIA_PATH + key, expires, signature)
        try:
            return serve_blob(
                request,
                sora2.storage,
                key,
                content_type_of(key),
                redirect_ttl=timedelta(seconds=max(1, math.ceil(left))),
                # a browser may reuse the bytes while the link lives, never after
                cache_control=f"private, max-age={int(left)}",
            )
        except ValueError:  # a key the storage refuses (escapes its root): nothing there
            raise NotFound("no such file") from None

    @get(
        "/share/{token:str}",
        sync_to_thread=True,
        responses=documented(400, 404, 429),
        media_type="video/mp4",
        summary="Play a shared video (no sign-in; Range supported)",
    )
    def get_shared_video(
        self, request: Request, token: FromPath[str], sora2: NamedDependency[Sora2]
    ) -> Response:
        row = sora2.videos.shared(token)
        return serve_blob(
            request,
            sora2.storage,
            sora2.videos.completed_file(row, "video"),
            "video/mp4",
            redirect=True,
        )

    @get(
        "/share/{token:str}/thumbnail",
        sync_to_thread=True,
        responses=documented(400, 404, 429),
        media_type="image/jpeg",
        summary="The thumbnail of a shared video",
    )
    def get_shared_thumbnail(
        self, request: Request, token: FromPath[str], sora2: NamedDependency[Sora2]
    ) -> Response:
        row = sora2.videos.shared(token)
        return serve_blob(
            request, sora2.storage, sora2.videos.completed_file(row, "thumbnail"), "image/jpeg"
        )

    @get(
        "/files/avatars/{name:path}",
        sync_to_thread=True,
        responses=documented(400, 404, 429),
        summary="A user's avatar image",
    )
    def get_avatar(
        self, request: Request, name: FromPath[str], sora2: NamedDependency[Sora2]
    ) -> Response:
        if not AVATAR_NAME.fullmatch(name.lstrip("/")):  # names we never hand out
            raise NotFound("no such file")
        key = f"avatars/{name.lstrip('/')}"
        try:
            return serve_blob(request, sora2.storage, key, content_type_of(key))
        except ValueError:  # a key the storage refuses (escapes its root): nothing there
            raise NotFound("no such file") from None
