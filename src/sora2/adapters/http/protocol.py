"""uvicorn's httptools protocol, refusing in the API's error shape and writing each response
in one piece.

httptools (llhttp, in C) parses a request in a fraction of h11's time, but uvicorn answers
what it refuses (a control character in a header, a bad request line) with a bare text 400
before the app sees the request. Here such a request gets the body every other failure gets,
`{error, message, statusCode}`, with the app's security headers, a request id and one access
line; a head over 16 KiB is a 431 (as h11's limit, which answered a 400).

uvicorn writes a response's status line and headers, then its body, each with its own
`transport.write`: two syscalls per response. `OneWrite` holds writes until the response
completes or the loop turn ends (so a streamed chunk waits no longer), then writes them as one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sora2.adapters.http.errors import error_body
from sora2.adapters.http.headers import json_error_headers

log = logging.getLogger("sora2.access")

MAX_HEAD = 16 * 1024  # h11's default limit on a request's head
FLUSH_AT = 64 * 1024  # held bytes beyond this are written at once
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSHOWN = re.compile(rb"[^\x21-\x7e]")


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops parsing and raises its own error from it."""


class OneWrite:
    """A transport that holds what is written until `flush` or the end of the loop's turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: list[bytes] = []
        self._size = 0
        self._flush_soon: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if not data or self._transport.is_closing():
            return
        self._held.append(data)
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()
        elif self._flush_soon is None:
            self._flush_soon = self._loop.call_soon(self._flush_later)

    def flush(self) -> None:
        if self._held:
            held = self._held[0] if len(self._held) == 1 else b"".join(self._held)
            self._held.clear()
            self._size = 0
            if not self._transport.is_closing():
                self._transport.write(held)

    def _flush_later(self) -> None:
        self._flush_soon = None
        self.flush()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # the rest is the transport's
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=HttpProtocol)`, or its import string (`sora2 serve --workers`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = OneWrite(transport, self.loop)  # type: ignore[assignment]
        self._head: int | None = 0  # bytes of a head still being read; None in a body

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._head is not None:
            self._head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as error:
            self._refuse(*_problem(error, data))
        else:
            if self._head is not None and self._head > MAX_HEAD:  # a head still arriving
                self._refuse(431, _TOO_LARGE)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD:  # the whole head came in one read
            raise HeadTooLarge
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` in the error shape and close, unless an answer is under way."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            # a pipelined request behind one being answered: that answer ends, then the
            # connection (an answer now would land inside it)
            cycle.keep_alive = False
            self.pipeline.clear()
            return
        if cycle is not None and not cycle.response_complete:  # its own body is malformed
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        request_id = str(uuid.uuid4())
        body = msgspec.json.encode(error_body(status, message))
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *_refusal_headers(self.app),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.transport.close()
        log.info(
            "- - %s",
            status,
            extra={"status": status, "refused": message, "request_id": request_id},
        )


_TOO_LARGE = f"the request's head (request line and headers) is over {MAX_HEAD // 1024} KiB"


def _problem(error: httptools.HttpParserError, data: bytes) -> tuple[int, str]:
    """The status and message for what httptools refused, naming the header if it can."""
    if isinstance(error.__context__, HeadTooLarge):
        return 431, _TOO_LARGE
    if isinstance(error, httptools.HttpParserInvalidMethodError):
        return 400, "malformed request line: unknown method"
    if isinstance(error, httptools.HttpParserInvalidURLError):
        return 400, "malformed request line: the path has a character that must be encoded"
    reason = str(error)
    if reason.startswith("Unexpected whitespace after header value"):
        return 400, "malformed request: a header line must not be folded onto the next"
    line = _bad_header_line(data) if "header" in reason else None
    if line is None:
        return 400, f"malformed request: {reason}"
    name, colon, _ = line.partition(b":")
    shown = _UNSHOWN.sub(b"?", name[:64]).decode("ascii")
    if colon and _TOKEN.fullmatch(name):
        return 400, f"{shown}: must not contain control characters"
    return 400, f"malformed header name {shown!r}"


def _bad_header_line(data: bytes) -> bytes | None:
    """The first header line in `data` (the read that failed) that httptools would refuse."""
    for line in data.split(b"\r\n")[1:]:
        if not line:
            return None  # the end of the head
        name, colon, _ = line.partition(b":")
        if _CONTROL.search(line) or not colon or not _TOKEN.fullmatch(name):
            return line
    return None


def _refusal_headers(app: Any) -> list[tuple[bytes, bytes]]:
    """The security headers the app gives an error (`create_app` leaves them in its state),
    found through uvicorn's wrappers of it."""
    for _ in range(8):
        state = getattr(app, "state", None)
        if state is not None and state.get("refusal_headers") is not None:
            return state.get("refusal_headers")
        app = getattr(app, "app", None)
    return json_error_headers(production=False)
