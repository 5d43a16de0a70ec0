"""`Idempotency-Key` on the POSTs that create or pay: the same key replays the first answer;
the same key with another request body is a 409. Keys are per user and kept for 24 hours.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import anyio
import msgspec

from sora2.adapters.http.errors import error_body
from sora2.adapters.http.rate_limit import user_of

Scope = dict[str, Any]
PAYING = re.compile(
    r"^/api/(videos/generate|videos/generate-stream|videos/[0-9a-fA-F-]{36}/regenerate|orders/create"
    r"|orders/[0-9a-fA-F-]{36}/pay|credits/recharge)$"
)
VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyMiddleware:
    """An ASGI middleware factory: `IdempotencyMiddleware(sora2)(app)`."""

    def __init__(self, sora2: Any) -> None:
        self.sora2 = sora2

    def __call__(self, app: Any) -> Any:
        sora2 = self.sora2

        async def middleware(scope: Scope, receive: Any, send: Any) -> None:
            key = _header(scope, b"idempotency-key")
            if (
                scope["type"] != "http"
                or scope.get("method") != "POST"
                or key is None
                or not PAYING.match(scope.get("path", ""))
            ):
                await app(scope, receive, send)
                return
            if not VALID_KEY.match(key):
                await _answer(
                    send,
                    400,
                    "application/json",
                    msgspec.json.encode(
                        error_body(400, "Idempotency-Key must be 1-255 visible ASCII characters")
                    ),
                )
                return
            user = user_of(scope, sora2)
            if user is None:  # unauthenticated: the route answers 401 by itself
                await app(scope, receive, send)
                return
            body = await _read_body(receive)
            fingerprint = hashlib.sha256(scope["path"].encode() + b"\n" + body).hexdigest()
            store = sora2.idempotency
            stored = await anyio.to_thread.run_sync(
                store.claim, user, key, fingerprint, sora2.clock.now()
            )
            if stored is not None:
                await _replay(send, stored, fingerprint)
                return
            captured: dict[str, Any] = {"status": 500, "type": "application/json", "body": b""}

            async def capture(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    captured["status"] = message["status"]
                    captured["type"] = next(
                        (v.decode() for k, v in message.get("headers", []) if k == b"content-type"),
                        "application/json",
                    )
                elif message["type"] == "http.response.body":
                    captured["body"] += message.get("body", b"")
                await send(message)

            try:
                await app(scope, _replaying(body), capture)
            finally:
                if captured["status"] >= 500:  # our failure: let a retry run again
                    await anyio.to_thread.run_sync(store.release, user, key)
                else:
                    await anyio.to_thread.run_sync(
                        store.complete,
                        user,
                        key,
                        captured["status"],
                        captured["type"],
                        captured["body"].decode("utf-8", "replace"),
                    )

        return middleware


async def _replay(send: Any, stored: Any, fingerprint: str) -> None:
    if stored.fingerprint != fingerprint:
        message = "this Idempotency-Key was used with a different request"
    elif stored.status is None:
        message = "a request with this Idempotency-Key is still being processed"
    else:
        await _answer(
            send,
            stored.status,
            stored.content_type or "application/json",
            (stored.body or "").encode(),
            replayed=True,
        )
        return
    await _answer(send, 409, "application/json", msgspec.json.encode(error_body(409, message)))


async def _answer(
    send: Any, status: int, content_type: str, body: bytes, replayed: bool = False
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replaying(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)
