"""Request limits per client IP and per signed-in user, with the X-RateLimit-* headers.

A route's own rule (register, login, video generation) applies instead of the general one.
A signed-in request counts against its user's budget only, wherever it comes from, so users
behind one address (an office, a carrier's NAT) each get their own; an anonymous request
counts against its client IP's.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from sora2.adapters.http.auth import signed_in_user
from sora2.adapters.http.errors import error_body

Scope = dict[str, Any]


class RateLimitStore(Protocol):
    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]: ...


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_seconds: int


GENERAL = Rule("api", 100, 15 * 60)
LOGIN = Rule("login", 100, 15 * 60)
REGISTER = Rule("register", 3, 60 * 60)
GENERATE = Rule("generate", 10, 60 * 60)
# a page of thumbnails and a player seeking through a video make many small requests
MEDIA = Rule("media", 2000, 15 * 60)
GENERATE_PATHS = ("/api/videos/generate", "/api/videos/generate-stream")


def rule_for(method: str, path: str, resuming: bool = False) -> Rule | None:
    """`resuming`: the request carries Last-Event-ID, an EventSource reconnecting to the
    stream of a video it already asked for (it never creates another one)."""
    if not path.startswith("/api/") or path.startswith("/api-docs"):
        return None
    if path.startswith("/api/payments/"):  # providers' signed callbacks, from few addresses
        return None
    if path.startswith("/api/media/"):
        return MEDIA
    if method == "POST" and not resuming:
        if path == "/api/auth/register":
            return REGISTER
        if path == "/api/auth/login":
            return LOGIN
        if path in GENERATE_PATHS or (
            path.startswith("/api/videos/") and path.endswith("/regenerate")
        ):
            return GENERATE
    if method == "OPTIONS":
        return None
    return GENERAL


def client_ip(scope: Scope, trusted_proxies: tuple[str, ...]) -> str:
    """The peer address, or the last untrusted X-Forwarded-For hop behind trusted proxies."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    forwarded = next(
        (v.decode() for k, v in scope.get("headers", []) if k == b"x-forwarded-for"), ""
    )
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _trusted(hop, trusted_proxies):
            return hop
    return peer


def _trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(t, strict=False) for t in trusted)


class RateLimitMiddleware:
    """An ASGI middleware factory: `RateLimitMiddleware(sora2)(app)`."""

    def __init__(self, sora2: Any) -> None:
        self.sora2 = sora2

    def __call__(self, app: Any) -> Any:
        sora2 = self.sora2

        async def middleware(scope: Scope, receive: Any, send: Any) -> None:
            rule = (
                rule_for(
                    scope.get("method", ""),
                    scope.get("path", ""),
                    any(k == b"last-event-id" for k, _ in scope.get("headers", [])),
                )
                if scope["type"] == "http"
                else None
            )
            if rule is None:
                await app(scope, receive, send)
                return
            store: RateLimitStore = sora2.rate_limits
            if (user := user_of(scope, sora2)) is not None:
                key = f"{rule.name}:user:{user}"
            else:
                key = f"{rule.name}:ip:{client_ip(scope, sora2.settings.trusted_proxies)}"
            count, reset = await store.hit(key, rule.window_seconds)
            headers = [
                (b"x-ratelimit-limit", str(rule.limit).encode()),
                (b"x-ratelimit-remaining", str(max(0, rule.limit - count)).encode()),
                (b"x-ratelimit-reset", str(math.ceil(reset)).encode()),
            ]
            if count > rule.limit:
                await _too_many(send, headers, max(1, math.ceil(reset - time.time())))
                return

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *headers]
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware


def user_of(scope: Scope, sora2: Any) -> str | None:
    """The user id in a valid Bearer token, or None."""
    return signed_in_user(scope, sora2.tokens)


async def _too_many(send: Any, headers: list[tuple[bytes, bytes]], retry_after: int) -> None:
    body = msgspec.json.encode(error_body(429, "Too many requests; try again later."))
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
