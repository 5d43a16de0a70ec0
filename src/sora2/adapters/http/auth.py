"""Bearer authentication: the access token names a user, a session epoch and a role.

The token is decoded once per request: the rate limiter, the idempotency store and the
auth dependency all read the claims kept in the request's scope.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from sora2.adapters.http.handler_thread import SignIn
from sora2.adapters.security.tokens import AccessClaims
from sora2.application.projections.rows import UserRow
from sora2.bootstrap import Sora2
from sora2.domain.errors import Forbidden, NotAuthenticated

BEARER_SECURITY = [{"BearerAuth": []}]
_CLAIMS = "sora2.access_claims"  # the scope key: AccessClaims, or the NotAuthenticated raised


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("a Bearer access token is required")
    return token.strip()


def access_claims(scope: dict[str, Any], tokens: Any) -> AccessClaims:
    """The request's access claims, decoded on first use; raises NotAuthenticated."""
    known = scope.get(_CLAIMS)
    if known is None:
        header = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"),
            "",
        )
        try:
            known = tokens.read_access(_bearer(header))
        except NotAuthenticated as error:
            known = error
        scope[_CLAIMS] = known
    if isinstance(known, NotAuthenticated):
        raise known
    return known


def signed_in_user(scope: dict[str, Any], tokens: Any) -> str | None:
    """The user id in a valid Bearer token, or None (the route decides what that means)."""
    try:
        return str(access_claims(scope, tokens).user_id)
    except NotAuthenticated:
        return None


def current_user(request: Request, sora2: NamedDependency[Sora2]) -> SignIn:
    """The `user` of a handler: the token is read here, on the loop (401 at once); the
    session is checked in the handler's own thread (`handler_thread.py`)."""
    return SignIn(sora2.accounts, access_claims(request.scope, sora2.tokens))  # type: ignore[arg-type]


def current_admin(request: Request, sora2: NamedDependency[Sora2]) -> UserRow:
    """The signed-in ADMIN: 401 without a valid session, 403 for anyone else. Both the
    token's role and the account's must say ADMIN (a role change also ends the session)."""
    claims = access_claims(request.scope, sora2.tokens)  # type: ignore[arg-type]
    user = sora2.accounts.authenticate(claims.user_id, claims.session_id, claims.epoch)
    if claims.role != "ADMIN" or user.role != "ADMIN":
        raise Forbidden("insufficient permission: this needs the ADMIN role")
    return user
