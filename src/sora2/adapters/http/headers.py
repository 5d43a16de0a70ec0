"""Security headers on every response, whichever handler (or the router's 404) made it.

Tokens and personal data must never rest in a shared or browser cache, so anything that did
not choose its own caching is `no-store`. Nothing is sniffed, framed or referred onwards (a
share link's token is in its path). Served files get a CSP that runs nothing, so an
uploaded file opened directly can never act as a page of this origin.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
FILE_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; sandbox"
)
DOCS_POLICY = "frame-ancestors 'none'"  # Swagger UI runs its own scripts and styles
FILE_TYPES = ("image/", "video/", "audio/", "application/octet-stream")
HSTS = "max-age=31536000; includeSubDomains"
# what every answer gets, whatever it is
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def security_headers(production: bool):  # noqa: ANN201 - a Litestar before_send hook
    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        content_type = (headers.get("content-type") or "").lower()
        if "cache-control" not in headers:
            headers["Cache-Control"] = "no-store"
        for name, value in ALWAYS.items():
            headers[name] = value
        if "content-security-policy" not in headers:
            headers["Content-Security-Policy"] = _policy(scope.get("path", ""), content_type)
        if production:
            headers["Strict-Transport-Security"] = HSTS

    return add_headers


def json_error_headers(production: bool) -> list[tuple[bytes, bytes]]:
    """What `security_headers` gives a JSON error that chose no caching or policy itself: for
    the answers the HTTP protocol writes before the app sees a request (`protocol.py`)."""
    headers = {"Cache-Control": "no-store", **ALWAYS, "Content-Security-Policy": JSON_POLICY}
    if production:
        headers["Strict-Transport-Security"] = HSTS
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def _policy(path: str, content_type: str) -> str:
    if path.startswith("/api-docs") and content_type.startswith("text/html"):
        return DOCS_POLICY
    if content_type.startswith(FILE_TYPES):
        return FILE_POLICY
    return JSON_POLICY
