"""/api/users: the signed-in user's profile, password and avatar."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, JSONBody

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY
from sora2.adapters.http.cookies import refresh_cookie
from sora2.adapters.http.errors import documented
from sora2.adapters.http.handler_thread import SignedIn
from sora2.application.accounts import AVATAR_MAX_BYTES
from sora2.bootstrap import Sora2
from sora2.domain.errors import InvalidInput, TooLarge


class AvatarUpload(schemas.Body):
    file: UploadFile


class UsersController(Controller):
    path = "/api/users"
    tags = ["Users"]
    security = BEARER_SECURITY

    @get(
        "/profile",
        sync_to_thread=True,
        responses=documented(401, 429),
        summary="The signed-in user's profile",
    )
    def get_profile(self, user: SignedIn, sora2: NamedDependency[Sora2]) -> schemas.User:
        return presenters.user(sora2.accounts.profile(user.id), sora2.settings.public_url)

    @put(
        "/profile",
        sync_to_thread=True,
        responses=documented(400, 401, 409, 429),
        summary="Change username and/or email (role and ids cannot be changed here)",
        description="Changing the email needs `currentPassword`; the old address receives "
        "a notice with the time of the change and a way to report it.",
    )
    def update_profile(
        self,
        data: JSONBody[schemas.UpdateProfileRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.User:
        row = sora2.accounts.update_profile(
            user.id, data.username, data.email, data.current_password
        )
        return presenters.user(row, sora2.settings.public_url)

    @put(
        "/password",
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Change the password; every other session is revoked",
        description="Answers with a fresh access token and refresh cookie for this client.",
    )
    def change_password(
        self,
        data: JSONBody[schemas.ChangePasswordRequest],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> Response[schemas.PasswordChanged]:
        grant = sora2.accounts.change_password(user.id, data.current_password, data.new_password)
        now = sora2.clock.now()
        access = sora2.tokens.access_token(
            user.id, grant.session_id, grant.epoch, now, grant.user.role
        )
        refresh = sora2.tokens.refresh_token(grant.session_id, grant.token_id, now)
        return Response(
            schemas.PasswordChanged("Password changed.", access),
            cookies=[refresh_cookie(refresh, sora2.settings)],
        )

    @post(
        "/avatar",
        status_code=200,
        sync_to_thread=True,
        request_max_body_size=AVATAR_MAX_BYTES + 64 * 1024,
        responses=documented(400, 401, 413, 415, 429),
        summary="Upload an avatar (multipart field `file`: PNG, JPEG or WebP, at most 5 MB)",
    )
    def upload_avatar(
        self,
        data: Annotated[AvatarUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        user: SignedIn,
        sora2: NamedDependency[Sora2],
    ) -> schemas.User:
        upload = data.file
        if not isinstance(upload, UploadFile):
            raise InvalidInput("send the image as the multipart field `file`")
        content = upload.file.read(AVATAR_MAX_BYTES + 1)
        if len(content) > AVATAR_MAX_BYTES:
            raise TooLarge("the avatar must be at most 5 MB")
        row = sora2.accounts.set_avatar(user.id, content)
        return presenters.user(row, sora2.settings.public_url)
