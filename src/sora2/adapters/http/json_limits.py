"""A JSON body nested deeper than any request of this API is refused before it is parsed.

Every body the API takes is a flat object (or one level of lists), so a limit of 32 levels
costs nobody anything, while a body nested a thousand deep would exhaust the parser's
recursion. The size limit is Litestar's `request_max_body_size` (413).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from sora2.domain.errors import InvalidInput

MAX_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class TooDeeplyNested(InvalidInput):
    """A 400 in the error shape, raised while the body is read."""


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in `body` (brackets inside strings do not count)."""
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(_STEP[b] for b in brackets))


def _is_json(scope: dict[str, Any]) -> bool:
    content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
    media = content_type.split(b";")[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class JsonDepthMiddleware:
    """An ASGI middleware factory: `JsonDepthMiddleware()(app)`."""

    def __call__(self, app: Any) -> Any:
        async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or not _is_json(scope):
                await app(scope, receive, send)
                return
            seen: list[bytes] = []

            async def checked() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    seen.append(message.get("body", b""))
                    if not message.get("more_body") and nesting_depth(b"".join(seen)) > MAX_DEPTH:
                        raise TooDeeplyNested(f"the JSON body nests deeper than {MAX_DEPTH} levels")
                return message

            await app(scope, checked, send)

        return middleware
