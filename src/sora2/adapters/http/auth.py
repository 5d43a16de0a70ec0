"""Bearer authentication: the access token names a user and a session epoch."""

from __future__ import annotations

from litestar import Request
from litestar.di import NamedDependency

from sora2.application.projections.rows import UserRow
from sora2.bootstrap import Sora2
from sora2.domain.errors import NotAuthenticated

BEARER_SECURITY = [{"BearerAuth": []}]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("a Bearer access token is required")
    return token.strip()


def current_user(request: Request, sora2: NamedDependency[Sora2]) -> UserRow:
    claims = sora2.tokens.read_access(bearer_token(request))
    return sora2.accounts.authenticate(claims.user_id, claims.session_id, claims.epoch)
