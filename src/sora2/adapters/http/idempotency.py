"""`Idempotency-Key` on the POSTs that create or pay: the same key replays the first answer;
the same key with another request (the body as parsed, not its bytes) is a 409; a replay
carries `Idempotent-Replayed: true`. Keys are per user and kept for 24 hours.

Every answer is kept, 5xx included: a failure after the command committed must not let a
retry charge again. A retry after such a failure needs a new key; a 503 (the database was
away: nothing was committed) is forgotten instead, so the retry runs. A key whose request's
process died before answering is taken over by the next retry (see the store), which runs
the command again: keyed commands name what they create after the key, so a command that
had committed answers with what it made, and one that had not runs now.

A stream (`text/event-stream`) is kept as soon as its first event with an `id:` is out; a
replay does not repeat those bytes (a stream cut short would end at the cut) but enters
the route again with that `Last-Event-ID`, so the route follows what the first request
started, to its end, instead of starting it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from typing import Any

import anyio
import msgspec
from litestar.utils.scope.state import CONNECTION_STATE_KEY

from sora2.adapters.http.errors import error_body
from sora2.adapters.http.rate_limit import user_of
from sora2.adapters.http.schemas import IDEMPOTENCY_KEY_PATTERN

Scope = dict[str, Any]
PAYING = re.compile(
    r"^/api/(videos/generate|videos/generate-stream|videos/[0-9a-fA-F-]{36}/regenerate|orders/create"
    r"|orders/[0-9a-fA-F-]{36}/pay|credits/recharge)$"
)
VALID_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
MAX_BODY = 1024 * 1024  # as the app's own limit: these routes take small JSON bodies

log = logging.getLogger("sora2.idempotency")


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
                        error_body(400, "Idempotency-Key: must be 1-255 visible ASCII characters")
                    ),
                )
                return
            user = user_of(scope, sora2)
            if user is None:  # unauthenticated: the route answers 401 by itself
                await app(scope, receive, send)
                return
            body = await _read_body(receive, MAX_BODY)
            if body is None:
                await _answer(
                    send,
                    413,
                    "application/json",
                    msgspec.json.encode(
                        error_body(413, f"the request body must be at most {MAX_BODY} bytes")
                    ),
                )
                return
            fingerprint = _fingerprint(scope["path"], body)
            store = sora2.idempotency
            stored = await anyio.to_thread.run_sync(
                store.claim, user, key, fingerprint, sora2.clock.now()
            )
            if stored is not None:
                if (
                    _is_stream(stored.content_type)
                    and stored.fingerprint == fingerprint
                    and (event_id := _first_event_id(stored.body or ""))
                ):
                    await _follow(app, scope, _replaying(body, receive), send, event_id)
                    return
                await _replay(send, stored, fingerprint)
                return
            beating = asyncio.ensure_future(_beat(store, user, key, sora2.clock))
            captured: dict[str, Any] = {
                "status": 500,
                "type": "application/json",
                "body": b"",
                "stored": False,
            }

            async def keep() -> None:
                if captured["stored"]:
                    return
                captured["stored"] = True
                beating.cancel()
                try:
                    if captured["status"] == 503:  # nothing was committed: a retry runs anew
                        await anyio.to_thread.run_sync(store.release, user, key)
                        return
                    await anyio.to_thread.run_sync(
                        store.complete,
                        user,
                        key,
                        captured["status"],
                        captured["type"],
                        captured["body"].decode("utf-8", "replace"),
                    )
                except Exception:  # the answer still reaches the client; only a replay is lost
                    log.exception("could not keep the answer of an Idempotency-Key")

            async def capture(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    captured["status"] = message["status"]
                    captured["type"] = next(
                        (v.decode() for k, v in message.get("headers", []) if k == b"content-type"),
                        "application/json",
                    )
                elif message["type"] == "http.response.body" and not captured["stored"]:
                    captured["body"] += message.get("body", b"")
                    if not message.get("more_body", False):
                        await keep()  # before the client learns the answer is whole
                    elif _is_stream(captured["type"]) and _first_event_id(captured["body"]):
                        await keep()  # what a replay needs to follow this stream
                await send(message)

            try:
                await app(scope, _replaying(body, receive), capture)
            finally:  # every answer is kept, 5xx too: it may have come after the commit
                await keep()

        return middleware


def _is_stream(content_type: str | None) -> bool:
    return (content_type or "").startswith("text/event-stream")


def _first_event_id(body: bytes | str) -> str | None:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    for line in text.splitlines():
        if line.startswith("id:"):
            return line[3:].strip()
    return None


async def _follow(app: Any, scope: Scope, receive: Any, send: Any, event_id: str) -> None:
    """Replay a kept stream: the route again, resuming after its first event, unless the
    client says itself where it got to (an EventSource's Last-Event-ID)."""
    headers = list(scope.get("headers", []))
    if _header(scope, b"last-event-id") is None:
        headers.append((b"last-event-id", event_id.encode("latin-1")))

    async def replayed(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"idempotent-replayed", b"true")]
        await send(message)

    # a fresh connection state: Litestar caches the headers it parsed (CORS did) there
    state = {k: v for k, v in scope.get("state", {}).items() if k != CONNECTION_STATE_KEY}
    await app({**scope, "headers": headers, "state": state}, receive, replayed)


async def _beat(store: Any, user: str, key: str, clock: Any) -> None:
    """Renew this request's lease on its key while it runs: silence past the lease means
    its process died, and the key is taken over."""
    while True:
        await asyncio.sleep(store.lease.total_seconds() / 3)
        try:
            await anyio.to_thread.run_sync(store.beat, user, key, clock.now())
        except Exception:  # the database is away for a moment: the next beat may reach it
            log.warning("could not renew the lease of an Idempotency-Key", exc_info=True)


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


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _fingerprint(path: str, body: bytes) -> str:
    """The request as parsed: the same JSON with other spacing or key order is the same
    request (a replay), not another one (a 409)."""
    try:
        body = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:  # not JSON: the route refuses it; compare the bytes
        pass
    return hashlib.sha256(path.encode() + b"\n" + body).hexdigest()


def _replaying(body: bytes, receive: Any) -> Any:
    """Hand the app the body we read, then the real channel (an SSE stream listens on it
    for the client's disconnect)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)
