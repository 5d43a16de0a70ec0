"""The refresh-token cookie: HttpOnly, SameSite=Strict, Secure in production, auth paths only."""

from __future__ import annotations

from litestar.datastructures import Cookie

from sora2.config import Settings

REFRESH_COOKIE = "refreshToken"
COOKIE_PATH = "/api/auth"


def refresh_cookie(token: str, settings: Settings) -> Cookie:
    return Cookie(
        key=REFRESH_COOKIE,
        value=token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.production,
        max_age=int(settings.jwt_refresh_expires_in.total_seconds()),
    )


def cleared_cookie(settings: Settings) -> Cookie:
    return Cookie(
        key=REFRESH_COOKIE,
        value="",
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.production,
        max_age=0,
    )
