"""/api/auth: register, login, logout, refresh (rotation), forgot and reset password."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import anyio
from litestar import Controller, Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import CookieParameter, JSONBody

from sora2.adapters.http import presenters, schemas
from sora2.adapters.http.auth import BEARER_SECURITY, access_claims
from sora2.adapters.http.cookies import REFRESH_COOKIE, cleared_cookie, refresh_cookie
from sora2.adapters.http.errors import documented
from sora2.application.accounts import SessionGrant
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotAuthenticated

FORGOT_ANSWER = "If an account exists for that email, a reset link has been sent."


def _signed_in(sora2: Sora2, grant: SessionGrant, status: int) -> Response[schemas.AuthResponse]:
    now = sora2.clock.now()
    access = sora2.tokens.access_token(
        grant.user.id, grant.session_id, grant.epoch, now, grant.user.role
    )
    refresh = sora2.tokens.refresh_token(grant.session_id, grant.token_id, now)
    body = schemas.AuthResponse(presenters.user(grant.user, sora2.settings.public_url), access)
    return Response(body, status_code=status, cookies=[refresh_cookie(refresh, sora2.settings)])


class AuthController(Controller):
    path = "/api/auth"
    tags = ["Auth"]

    @post(
        "/register",
        status_code=201,
        sync_to_thread=True,
        responses=documented(400, 409, 429),
        summary="Create an account",
        description="Returns the user and an access token; "
        "sets the refresh-token cookie. New accounts receive the signup bonus credits.",
    )
    def register(
        self, data: JSONBody[schemas.RegisterRequest], sora2: NamedDependency[Sora2]
    ) -> Response[schemas.AuthResponse]:
        grant = sora2.accounts.register(data.email, data.username, data.password)
        return _signed_in(sora2, grant, 201)

    @post(
        "/login",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Sign in with email and password",
    )
    def login(
        self, data: JSONBody[schemas.LoginRequest], sora2: NamedDependency[Sora2]
    ) -> Response[schemas.AuthResponse]:
        return _signed_in(sora2, sora2.accounts.login(data.email, data.password), 200)

    @post(
        "/logout",
        status_code=200,
        sync_to_thread=True,
        security=BEARER_SECURITY,
        responses=documented(400, 401, 429),
        summary="Sign out: revoke the session, clear the cookie",
    )
    def logout(
        self,
        request: Request,
        sora2: NamedDependency[Sora2],
        refresh_token: Annotated[str | None, CookieParameter(name=REFRESH_COOKIE)] = None,
    ) -> Response[schemas.Message]:
        # the access token's session, and the refresh cookie's: either proves the caller,
        # so a client whose access token expired can still sign out
        sessions: set[UUID] = set()
        refused: NotAuthenticated | None = None
        try:
            claims = access_claims(request.scope, sora2.tokens)
            sora2.accounts.authenticate(claims.user_id, claims.session_id, claims.epoch)
            sessions.add(claims.session_id)
        except NotAuthenticated as error:
            refused = error
        if refresh_token:
            try:
                sessions.add(sora2.tokens.read_refresh(refresh_token).session_id)
            except NotAuthenticated:
                pass
        if not sessions:
            raise refused or NotAuthenticated("a Bearer access token is required")
        for session_id in sessions:
            sora2.accounts.logout(session_id)
        return Response(schemas.Message("Signed out."), cookies=[cleared_cookie(sora2.settings)])

    @post(
        "/refresh-token",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Swap the refresh cookie for a new access token and a new refresh cookie",
        description="Refresh tokens rotate on every use; presenting a spent one revokes "
        "the whole session.",
    )
    def refresh_token(
        self,
        sora2: NamedDependency[Sora2],
        refresh_token: Annotated[str | None, CookieParameter(name=REFRESH_COOKIE)] = None,
    ) -> Response[schemas.AccessTokenResponse]:
        if not refresh_token:
            raise NotAuthenticated("the refresh-token cookie is missing")
        claims = sora2.tokens.read_refresh(refresh_token)
        grant = sora2.accounts.refresh(claims.session_id, claims.token_id)
        signed = _signed_in(sora2, grant, 200)
        return Response(
            schemas.AccessTokenResponse(signed.content.access_token), cookies=signed.cookies
        )

    @post(
        "/forgot-password",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 429),
        summary="Mail a password-reset link (the answer never says whether the email exists)",
    )
    def forgot_password(
        self, data: JSONBody[schemas.ForgotPasswordRequest], sora2: NamedDependency[Sora2]
    ) -> Response[schemas.Message]:
        # the work (and the mail) happens after the answer, so its time reveals nothing
        task = BackgroundTask(anyio.to_thread.run_sync, sora2.accounts.forgot_password, data.email)
        return Response(schemas.Message(FORGOT_ANSWER), background=task)

    @post(
        "/reset-password",
        status_code=200,
        sync_to_thread=True,
        responses=documented(400, 401, 429),
        summary="Set a new password with a reset token (single use, 30 minutes)",
        description="Every existing session of the account is revoked.",
    )
    def reset_password(
        self, data: JSONBody[schemas.ResetPasswordRequest], sora2: NamedDependency[Sora2]
    ) -> schemas.Message:
        sora2.accounts.reset_password(data.token, data.password)
        return schemas.Message("Your password has been reset. Sign in with the new one.")
