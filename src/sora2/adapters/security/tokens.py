"""Signed JWTs for access (short) and refresh (long, rotating) tokens.

Each kind has its own secret and a `typ` claim, so one can never pass for the other.
An access token carries the user's role when it was issued; a role change ends the
session (a new epoch), so a token never outlives the role it names.

A client sends the same access token with every request until it refreshes: its claims,
once verified, are kept (by the token's exact text, until the token's own expiry) instead
of checking its signature again, which cost a tenth of a signed-in read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import jwt

from sora2.domain.errors import NotAuthenticated

ALGORITHM = "HS256"
MAX_REMEMBERED = 50_000  # verified access tokens kept; past it the memory starts again empty


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID
    epoch: int
    role: str = "USER"


@dataclass(frozen=True)
class RefreshClaims:
    session_id: UUID
    token_id: UUID


class TokenSigner:
    def __init__(
        self,
        access_secret: str,
        refresh_secret: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
    ) -> None:
        self.access_secret = access_secret
        self.refresh_secret = refresh_secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: dict[str, tuple[AccessClaims, float]] = {}  # token: claims, expiry

    def access_token(
        self, user_id: UUID, session_id: UUID, epoch: int, now: datetime, role: str = "USER"
    ) -> str:
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "epoch": epoch,
            "role": role,
            "typ": "access",
            "iat": now,
            "exp": now + self.access_ttl,
        }
        return jwt.encode(claims, self.access_secret, algorithm=ALGORITHM)

    def refresh_token(self, session_id: UUID, token_id: UUID, now: datetime) -> str:
        claims = {
            "sid": str(session_id),
            "jti": str(token_id),
            "typ": "refresh",
            "iat": now,
            "exp": now + self.refresh_ttl,
        }
        return jwt.encode(claims, self.refresh_secret, algorithm=ALGORITHM)

    def read_access(self, token: str) -> AccessClaims:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        claims = self._decode(token, self.access_secret, "access", ("sub", "sid", "epoch"))
        try:
            role = claims.get("role", "USER")
            if not isinstance(role, str):
                raise TypeError("role")
            access = AccessClaims(
                UUID(claims["sub"]), UUID(claims["sid"]), int(claims["epoch"]), role
            )
            expiry = float(claims["exp"])
        except (ValueError, TypeError):
            raise NotAuthenticated("invalid access token") from None
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (access, expiry)
        return access

    def read_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, self.refresh_secret, "refresh", ("sid", "jti"))
        try:
            return RefreshClaims(UUID(claims["sid"]), UUID(claims["jti"]))
        except (ValueError, TypeError):
            raise NotAuthenticated("invalid refresh token") from None

    @staticmethod
    def _decode(token: str, secret: str, kind: str, required: tuple[str, ...]) -> dict:
        try:
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={"require": ["exp", *required]}
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated(f"the {kind} token has expired") from None
        except jwt.PyJWTError:
            raise NotAuthenticated(f"invalid {kind} token") from None
        if claims.get("typ") != kind:
            raise NotAuthenticated(f"invalid {kind} token")
        return claims
