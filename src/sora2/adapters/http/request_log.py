"""Every request gets an id and one access-log line; every response says the id.

The id is the client's `X-Request-ID` when it sends a usable one (visible ASCII letters,
digits and `-_.:/+=@`, at most 128 of them: anything else is dropped, so a header cannot
forge log lines), else a new UUID. It is bound to the request's context, so every log line
written while serving the request (in the handler's thread too) carries it, and it is echoed
in `X-Request-ID` on every response, errors and rate-limited ones included.

This wraps the whole app (outside routing, errors and CORS), so a 404 of the router is
logged like any other answer. The line shows the path with share tokens and signed-URL
query values masked; never a header, a body or the client's address.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from sora2.adapters.logs import REQUEST_ID, masked

log = logging.getLogger("sora2.access")

HEADER = b"x-request-id"
MAX_LENGTH = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.:/+=@]")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's id, cleaned, or a new one."""
    given = next((v for k, v in headers if k == HEADER), b"")
    cleaned = _UNSAFE.sub("", given.decode("latin-1"))[:MAX_LENGTH]
    return cleaned or str(uuid.uuid4())


def loggable_path(scope: dict[str, Any]) -> str:
    """The request's path and query as a log line may show them."""
    path = scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    return masked(f"{path}?{query}" if query else path)


class RequestLog:
    """ASGI: wraps the app's handler; `RequestLog(app.asgi_handler)`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, request_id.encode())]
            await send(message)

        bound = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = loggable_path(scope)
            log.info(
                "%s %s %s",
                scope.get("method", ""),
                path,
                status or "-",
                extra={
                    "method": scope.get("method", ""),
                    "path": path,
                    "status": status or None,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            REQUEST_ID.reset(bound)
