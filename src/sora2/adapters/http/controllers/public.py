"""Public, token-free routes: shared videos and avatars."""

from __future__ import annotations

import re

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from sora2.adapters.http.errors import documented
from sora2.adapters.http.streaming import serve_blob
from sora2.application.media import content_type_of
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotFound

# avatars are stored as `avatars/<user id>/<16 hex of the content's digest>.<extension>`
AVATAR_NAME = re.compile(r"[0-9a-f-]{36}/[0-9a-f]{16}\.(png|jpg|jpeg|webp)")


class PublicController(Controller):
    path = "/api"
    tags = ["Public"]

    @get(
        "/share/{token:str}",
        sync_to_thread=True,
        responses=documented(400, 404, 429),
        media_type="video/mp4",
        summary="Play a shared video (no sign-in; Range supported)",
    )
    def shared_video(
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
    def shared_thumbnail(
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
    def avatar(
        self, request: Request, name: FromPath[str], sora2: NamedDependency[Sora2]
    ) -> Response:
        if not AVATAR_NAME.fullmatch(name.lstrip("/")):  # names we never hand out
            raise NotFound("no such file")
        key = f"avatars/{name.lstrip('/')}"
        try:
            return serve_blob(request, sora2.storage, key, content_type_of(key))
        except ValueError:  # a key the storage refuses (escapes its root): nothing there
            raise NotFound("no such file") from None
