"""Serving stored files: whole, or the byte range a player asks for (HTTP 206), with an
ETag so a browser that has them gets a 304."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter
from litestar.response import Redirect, Stream

from sora2.adapters.http.errors import error_body
from sora2.adapters.http.schemas import ErrorBody
from sora2.application.ports import BlobNotFound, BlobStorage
from sora2.domain.errors import NotFound

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SIGNED_URL_TTL = timedelta(minutes=5)
PRIVATE_CACHE = "private, max-age=300"


FILE_RESPONSES = {
    206: ResponseSpec(None, description="The byte range asked for (`Range`), with Content-Range"),
    302: ResponseSpec(None, description="On S3: a redirect to a short-lived presigned URL"),
    304: ResponseSpec(None, description="Not modified: the `If-None-Match` ETag is current"),
    416: ResponseSpec(
        ErrorBody, description="The range lies outside the file", generate_examples=False
    ),
}
"""What a file route answers besides 200: for the OpenAPI document."""

# The request headers a file route honours, declared so the OpenAPI document shows them
# (serve_blob reads them from the request, with If-Range, as RFC 9110 asks).
RangeHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Range",
        required=False,
        description="`bytes=<start>-<end>`, `bytes=<start>-` or `bytes=-<length>`: answers 206",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        required=False,
        description="The ETag of a copy the client has: 304 while it is current",
    ),
]


class RangeNotSatisfiable(Exception):
    pass


def serve_blob(
    request: Request,
    storage: BlobStorage,
    key: str,
    content_type: str,
    filename: str | None = None,
    redirect: bool = True,
    redirect_ttl: timedelta = SIGNED_URL_TTL,
    cache_control: str = PRIVATE_CACHE,
) -> Response:
    """The object's bytes with Range and If-None-Match support, or a redirect to a
    short-lived signed URL of the storage (S3), which supports both itself."""
    if redirect and (url := storage.signed_url(key, redirect_ttl)):
        # our own media type: the route's (video/mp4, image/jpeg) is not one Redirect accepts
        return Redirect(url, status_code=302, media_type=MediaType.TEXT)
    try:
        info = storage.stat(key)
    except BlobNotFound:
        raise NotFound("the file is no longer stored") from None
    size = info.size
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": cache_control,
        "ETag": info.etag,
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), info.etag):
        return Response(b"", status_code=304, headers=headers, media_type=content_type)
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    requested = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != info.etag:
        requested = None  # the client's part is of other bytes: send them all (RFC 9110)
    span = _parse_range(requested, size) if requested else None
    if span is False:
        body = error_body(416, f"the range lies outside the file's {size} bytes")
        return Response(
            body,
            status_code=416,
            media_type=MediaType.JSON,
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    if span is None:
        headers["Content-Length"] = str(size)
        return Stream(storage.read(key), media_type=content_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return Stream(
        storage.read(key, start, end), status_code=206, media_type=content_type, headers=headers
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as If-None-Match wants: `*`, or any listed tag, W/ or not."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive; None to send everything; False if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or "," in header:
        return None  # unsupported forms (multiple ranges): send the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range at all: ignore it (RFC 9110), send everything
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        return False
    return start, end
